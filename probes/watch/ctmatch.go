package watch

// Matching raw ctnetlink events against the watched flow.

import (
	"bytes"
	"fmt"

	"asym/flow"
	"asym/probes/ctentry"

	"golang.org/x/sys/unix"
)

// ctHit says which of an entry's tuples the watched flow matched, and how.
type ctHit uint8

const (
	ctNoHit       ctHit = iota
	ctHitOrig           // the original tuple is the flow
	ctHitReply          // the reply tuple is the flow
	ctHitReplyRev       // the reply tuple is the flow reversed: the flow goes the original way, seen after NAT
	ctHitOrigRev        // the original tuple is the flow reversed: the flow is the reply, seen before NAT
)

// ctMatcher compares raw ctnetlink event messages with the watched flow.
type ctMatcher struct {
	family       uint8  // AF_INET or AF_INET6, as in nfgenmsg
	proto        uint8  // IPPROTO_*
	src, dst     []byte // the flow's addresses, 4 or 16 bytes, network order
	sport, dport uint16 // 0 matches any port: a flow given without ports
}

func newCtMatcher(f flow.Flow) (*ctMatcher, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("the flow %q needs a source and a destination of the same IP version", f)
	}
	m := &ctMatcher{proto: uint8(f.Proto), family: unix.AF_INET6}
	if src.Is4() {
		m.family = unix.AF_INET
	}
	m.src, m.dst = src.AsSlice(), dst.AsSlice()
	if ctentry.HasPorts(f.Proto) {
		m.sport, m.dport = f.Src.Port(), f.Dst.Port()
	}
	return m, nil
}

// is reports whether tuple t is the flow (rev: the flow reversed).
func (m *ctMatcher) is(t *ctRawTuple, rev bool) bool {
	src, dst, sp, dp := m.src, m.dst, m.sport, m.dport
	if rev {
		src, dst, sp, dp = dst, src, dp, sp
	}
	return t.proto == m.proto && bytes.Equal(t.src, src) && bytes.Equal(t.dst, dst) &&
		(sp == 0 || t.sport == sp) && (dp == 0 || t.dport == dp)
}

// match decides whether one ctnetlink message (header included) is about
// the flow. It runs for every event in the namespace, so it only walks the
// attributes up to the two tuples and compares bytes in place: no
// allocation, no decoding of what does not match.
func (m *ctMatcher) match(msg []byte) ctHit {
	if len(msg) < nlmsgHdrLen+nfgenmsgLen || msg[nlmsgHdrLen] != m.family {
		return ctNoHit
	}
	var orig, reply ctRawTuple
	haveOrig, haveReply := ctTuples(msg[nlmsgHdrLen+nfgenmsgLen:], &orig, &reply)
	// The order is ctentry.Flatten's, so both name the direction alike.
	switch {
	case haveOrig && m.is(&orig, false):
		return ctHitOrig
	case haveReply && m.is(&reply, false):
		return ctHitReply
	case haveReply && m.is(&reply, true):
		return ctHitReplyRev
	case haveOrig && m.is(&orig, true):
		return ctHitOrigRev
	}
	return ctNoHit
}

// ctTuples reads an event's two tuples. ctnetlink puts both first
// (ctnetlink_conntrack_event), so the walk stops after two attributes.
func ctTuples(b []byte, orig, reply *ctRawTuple) (haveOrig, haveReply bool) {
	for len(b) > 0 && !(haveOrig && haveReply) {
		typ, val, rest, ok := nlAttr(b)
		if !ok {
			break
		}
		b = rest
		switch typ {
		case ctaTupleOrig:
			*orig, haveOrig = ctParseTuple(val)
		case ctaTupleReply:
			*reply, haveReply = ctParseTuple(val)
		}
	}
	return haveOrig, haveReply
}

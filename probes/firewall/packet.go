package firewall

// The packet a path walk follows: what the rules of one hook can read of
// it, and what asym cannot know statically.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

// tri is what asym knows of a condition: it cannot hold, it may, it does.
type tri uint8

const (
	no tri = iota
	maybe
	yes
)

func (t tri) and(u tri) tri { return min(t, u) }
func (t tri) or(u tri) tri  { return max(t, u) }
func (t tri) not() tri      { return yes - t }

func triOf(b bool) tri {
	if b {
		return yes
	}
	return no
}

// bytesKnown are bytes of which some may be unknown.
type bytesKnown struct {
	b     []byte
	known []bool
}

func newBytes(n int) bytesKnown { return bytesKnown{b: make([]byte, n), known: make([]bool, n)} }

// set fills bytes from off as known.
func (h bytesKnown) set(off int, v []byte) {
	copy(h.b[off:], v)
	for i := range v {
		if off+i < len(h.known) {
			h.known[off+i] = true
		}
	}
}

// load reads n bytes at off; ok is false when any of them is unknown or
// out of the header.
func (h bytesKnown) load(off, n int) ([]byte, bool) {
	if off < 0 || n < 0 || off+n > len(h.b) {
		return nil, false
	}
	for _, k := range h.known[off : off+n] {
		if !k {
			return nil, false
		}
	}
	return h.b[off : off+n], true
}

// value32 is a 32-bit value the walk may or may not know.
type value32 struct {
	v     uint32
	known bool
}

func known32(v uint32) value32 { return value32{v, true} }

// ifRef is an interface as a hook sees it: named and indexed, none at all
// (a packet this host sends has no input interface), or unknown.
type ifRef struct {
	name  string
	index int
	known bool
}

var noIface = ifRef{known: true}

// ctView is the connection as the rules see it.
type ctView struct {
	// present: the packet has a conntrack entry. A packet before the
	// conntrack hook, an invalid one and an untracked one have none.
	present tri
	state   value32 // ct state bits (expr.CtStateBit*)
	dir     uint8   // 0 original, 1 reply; meaningful when present
	mark    value32
	// orig is the connection's original tuple (the request as it arrived).
	orig flow.Flow
	// reply is its reply tuple: orig reversed, as NAT translated it.
	reply flow.Flow
}

// packet is one packet of the flow as the rules of one hook see it.
type packet struct {
	v6       bool
	proto    uint8
	src, dst netip.Addr // invalid: unknown (an ICMP error's local source)
	sport    uint16     // TCP and UDP ports; ICMP type and code below
	dport    uint16
	// sportKnown and dportKnown: a NAT statement the walk could not
	// follow exactly may have rewritten the port.
	sportKnown, dportKnown bool
	translated             bool // a NAT statement rewrote (or may have) the tuple
	icmpType               uint8
	icmpCode               uint8
	icmp                   bool       // the ICMP fields are known
	tcpFlags               uint8      // known when tcp is set
	hasFlags               bool       // tcpFlags is known
	unknown                bool       // nothing of the packet is known (no flow was given)
	iif, oif               ifRef      // as the current hook sees them
	back                   ifRef      // the interface the way back to its source leaves by
	mark                   value32    // skb->mark
	ct                     ctView     // its connection
	hook                   string     // the hook being walked
	priority               int        // the base chain's priority
	family                 uint8      // NFPROTO_IPV4 or NFPROTO_IPV6
	network                bytesKnown // the network header as far as asym knows it
	trans                  bytesKnown // the transport header
}

// TCP flags (the byte at offset 13 of the TCP header).
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

// newPacket is the flow's packet going from f.Src to f.Dst.
func newPacket(f flow.Flow) packet {
	p := packet{v6: f.Is6(), proto: uint8(f.Proto), src: f.Src.Addr(), dst: f.Dst.Addr(), sport: f.Src.Port(), dport: f.Dst.Port(),
		sportKnown: true, dportKnown: true}
	p.unknown = !p.src.IsValid() || !p.dst.IsValid()
	p.family = unix.NFPROTO_IPV4
	if p.v6 {
		p.family = unix.NFPROTO_IPV6
	}
	if f.Proto == flow.ICMP {
		// An echo request, its reply an echo reply: the flow's ports
		// carry nothing for ICMP.
		p.icmp, p.icmpType = true, 8
		if p.v6 {
			p.icmpType = 128
		}
	}
	p.iif, p.oif = ifRef{}, ifRef{}
	p.mark = known32(0)
	return p
}

// headers builds the header bytes payload loads read, from the fields.
func (p *packet) headers() {
	if p.unknown {
		p.network, p.trans = newBytes(40), newBytes(20)
		return
	}
	if p.v6 {
		p.network = newBytes(40)
		p.network.b[0] = 0x60 // version; traffic class and flow label stay unknown
		p.network.set(6, []byte{p.proto})
		if p.src.IsValid() {
			p.network.set(8, p.src.AsSlice())
		}
		if p.dst.IsValid() {
			p.network.set(24, p.dst.AsSlice())
		}
	} else {
		p.network = newBytes(20)
		p.network.set(0, []byte{0x45}) // version 4, no options
		p.network.set(9, []byte{p.proto})
		if p.src.IsValid() {
			p.network.set(12, p.src.AsSlice())
		}
		if p.dst.IsValid() {
			p.network.set(16, p.dst.AsSlice())
		}
	}
	p.trans = newBytes(20)
	switch {
	case p.icmp:
		p.trans.set(0, []byte{p.icmpType, p.icmpCode})
	case p.proto == unix.IPPROTO_TCP || p.proto == unix.IPPROTO_UDP || p.proto == unix.IPPROTO_SCTP:
		if p.sportKnown {
			p.trans.set(0, binary.BigEndian.AppendUint16(nil, p.sport))
		}
		if p.dportKnown {
			p.trans.set(2, binary.BigEndian.AppendUint16(nil, p.dport))
		}
	}
	if p.proto == unix.IPPROTO_TCP && p.hasFlags {
		p.trans.set(13, []byte{p.tcpFlags})
	}
}

// reply is the packet going back: the reverse of p's tuple.
func (p packet) reply() packet {
	r := p
	r.src, r.dst, r.sport, r.dport = p.dst, p.src, p.dport, p.sport
	r.sportKnown, r.dportKnown = p.dportKnown, p.sportKnown
	if p.icmp {
		r.icmpType = 0 // echo reply
		if p.v6 {
			r.icmpType = 129
		}
	}
	return r
}

// tuple is the packet's tuple as a flow.
func (p *packet) tuple() flow.Flow {
	return flow.Flow{Proto: flow.Proto(p.proto), Src: netip.AddrPortFrom(p.src, p.sport), Dst: netip.AddrPortFrom(p.dst, p.dport)}
}

// String renders the packet for a path's heading.
func (p *packet) String() string {
	if p.unknown {
		return "any packet (no flow given)"
	}
	var b strings.Builder
	b.WriteString(evidence.ProtoName(p.proto) + " ")
	src := "a local address"
	if p.src.IsValid() {
		src = p.src.String()
	}
	if p.icmp {
		fmt.Fprintf(&b, "%s → %s type %d code %d", src, p.dst, p.icmpType, p.icmpCode)
	} else {
		fmt.Fprintf(&b, "%s → %s", netip.AddrPortFrom(p.src, p.sport), netip.AddrPortFrom(p.dst, p.dport))
	}
	if p.hasFlags {
		b.WriteString(" [" + tcpFlagNames(p.tcpFlags) + "]")
	}
	for _, i := range []struct {
		word string
		ref  ifRef
	}{{"in", p.iif}, {"out", p.oif}} {
		if i.ref.known && i.ref.name != "" {
			b.WriteString(" " + i.word + " " + i.ref.name)
		}
	}
	if p.mark.known && p.mark.v != 0 {
		fmt.Fprintf(&b, " mark 0x%x", p.mark.v)
	}
	return b.String()
}

// tcpFlagNames renders TCP flags as tcpdump does: S, S., .
func tcpFlagNames(f uint8) string {
	var s string
	for _, n := range []struct {
		bit  uint8
		name string
	}{{tcpSYN, "S"}, {tcpFIN, "F"}, {tcpRST, "R"}, {0x08, "P"}} {
		if f&n.bit != 0 {
			s += n.name
		}
	}
	if f&tcpACK != 0 {
		s += "."
	}
	return s
}

// ctStateName names one state bit as nft does.
func ctStateName(v value32) string {
	if !v.known {
		return ""
	}
	return ctStateNames(v.v)
}

package watch

// Decoding an event of the watched flow into evidence.

import (
	"bytes"
	"encoding/binary"
	"strings"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/ctentry"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
)

// ctDecode decodes and flattens one event of the flow, a ctnetlink message
// with its header, stamped with the time it was received (the kernel does
// not stamp events). A panic in the decoder on data it did not expect must
// not take the program down with it: the deferred recover costs nothing on
// the path of other flows.
func ctDecode(msg []byte, hit ctHit) (e evidence.CtEvent, ok bool) {
	now := time.Now()
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var ev conntrack.Event
	if err := ev.Unmarshal(ctMessage(msg)); err != nil || ev.Flow == nil {
		return evidence.CtEvent{}, false
	}
	return ctEvent(now, ev, hit), true
}

// ctMessage is msg as the library takes it.
func ctMessage(msg []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Length:   binary.NativeEndian.Uint32(msg),
			Type:     netlink.HeaderType(binary.NativeEndian.Uint16(msg[4:])),
			Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(msg[6:])),
			Sequence: binary.NativeEndian.Uint32(msg[8:]),
			PID:      binary.NativeEndian.Uint32(msg[12:]),
		},
		// The buffer is reused for the next read; the decoded flow may
		// keep slices of it.
		Data: bytes.Clone(msg[nlmsgHdrLen:]),
	}
}

// ctEvent flattens a decoded event of the flow with ctentry.Flatten. It
// hands Flatten the tuple that matched, taken from the event itself, so
// that a flow given without ports still gets its direction named.
func ctEvent(now time.Time, ev conntrack.Event, hit ctHit) evidence.CtEvent {
	q := matchedTuple(*ev.Flow, hit)
	e, _ := ctentry.Flatten(q, q, *ev.Flow)
	typ := eventType(ev)
	// Events carry no reference count (ctnetlink_conntrack_event sends no
	// CTA_USE), so conntrack -E prints no use=.
	e.Text = "[" + string(typ) + "] " + strings.TrimSuffix(e.Text, " use=0")
	return evidence.CtEvent{Time: now, Type: typ, Entry: e}
}

// matchedTuple is the flow as the event carries it, in the direction the
// matcher found it.
func matchedTuple(fl conntrack.Flow, hit ctHit) flow.Flow {
	switch hit {
	case ctHitReply:
		return tupleFlow(fl.TupleReply)
	case ctHitReplyRev:
		return tupleFlow(fl.TupleReply).Reverse()
	case ctHitOrigRev:
		return tupleFlow(fl.TupleOrig).Reverse()
	}
	return tupleFlow(fl.TupleOrig)
}

func tupleFlow(t conntrack.Tuple) flow.Flow {
	return flow.Flow{
		Proto: flow.Proto(t.Proto.Protocol),
		Src:   ctentry.AddrPort(t.IP.SourceAddress, t.Proto.SourcePort),
		Dst:   ctentry.AddrPort(t.IP.DestinationAddress, t.Proto.DestinationPort),
	}
}

// eventType names the event's type as conntrack -E does. The kernel sends
// UPDATE with the NEW message type; the library tells them apart by the
// header flags (ti-mo/conntrack event.go).
func eventType(ev conntrack.Event) evidence.CtEventType {
	switch ev.Type {
	case conntrack.EventNew:
		return evidence.CtNew
	case conntrack.EventDestroy:
		return evidence.CtDestroy
	}
	return evidence.CtUpdate
}

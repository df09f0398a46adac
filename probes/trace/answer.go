package trace

import (
	"fmt"
	"net/netip"
	"time"

	"asym/evidence"
)

// answer is one packet that answers a probe.
type answer struct {
	id    uint16     // the probe's IP ID (0: found by its TCP numbers or not at all)
	seq   uint32     // TCP: the number that identifies the probe (ID unknown)
	from  netip.Addr // who answered
	kind  string     // evidence.Answer*
	code  int        // ICMP code of an unreachable
	ifidx int        // where the answer came in
	at    time.Time
	// q is the probe's header as an ICMP error quoted it: a translator on
	// the way shows as a difference from what was sent.
	q      quoted
	quotes bool
}

// parseAnswer reads one packet from a receive socket (an IPv4 packet,
// header included) against the probes' tuple. ok is false for a packet
// that answers none of them.
func parseAnswer(b []byte, pr *prober) (a answer, ok bool) {
	outer, l4, ok := parseIPv4(b)
	if !ok {
		return a, false
	}
	a.from = outer.src.Addr()
	t := pr.tuple
	switch outer.proto {
	case 1:
		return parseICMP(a, l4, pr)
	case 6:
		// The destination's answer to a SYN (SYN-ACK, or RST for a closed
		// port) acknowledges the probe's number plus one; a client's RST to
		// a SYN-ACK it has no state for carries the probe's acknowledgement
		// as its sequence number.
		if outer.src != t.Dst || outer.dst != t.Src {
			return a, false
		}
		a.kind = evidence.AnswerDestination
		switch {
		case pr.shape == evidence.ShapeSYN && outer.flags&tcpACK != 0:
			a.seq = outer.ack - 1
		case pr.shape == evidence.ShapeSYNACK && outer.flags&tcpRST != 0:
			a.seq = outer.seq
		default:
			return a, false
		}
		return a, true
	case 17:
		// A service that answered a probe: it does not say which one.
		if outer.src != t.Dst || outer.dst != t.Src || pr.shape != evidence.ShapeUDP {
			return a, false
		}
		a.kind = evidence.AnswerDestination
		return a, true
	}
	return a, false
}

func parseICMP(a answer, l4 []byte, pr *prober) (answer, bool) {
	typ, code := l4[0], l4[1]
	switch typ {
	case icmpEchoReply:
		if pr.shape != evidence.ShapeEcho || a.from != pr.tuple.Dst.Addr() {
			return a, false
		}
		id, seq := uint16(l4[4])<<8|uint16(l4[5]), uint16(l4[6])<<8|uint16(l4[7])
		if id != icmpEchoID(pr.tuple) {
			return a, false
		}
		a.id, a.kind = seq, evidence.AnswerDestination
		return a, true
	case icmpTimeExceeded, icmpUnreachable:
	default:
		return a, false
	}
	q, _, ok := parseIPv4(l4[8:])
	if !ok || q.proto != pr.proto() {
		return a, false
	}
	if _, mine := evidence.ProbeTTL(int(pr.base), q.id); !mine {
		return a, false
	}
	a.id, a.q, a.quotes = q.id, q, true
	switch {
	case typ == icmpTimeExceeded && code == 0:
		a.kind = evidence.AnswerTimeExceeded
	case typ == icmpTimeExceeded:
		return a, false // fragment reassembly time exceeded: not about TTL
	case a.from == pr.tuple.Dst.Addr() && (code == 2 || code == 3):
		// Protocol or port unreachable from the destination itself: it
		// got the probe and has nothing listening.
		a.kind = evidence.AnswerDestination
	default:
		a.kind, a.code = evidence.AnswerUnreachable, int(code)
	}
	return a, true
}

// natSeen says how an answer shows a translator between the sender and
// the answering hop, "" when it shows none. A router never answers
// time-exceeded from the destination's address (a packet for a local
// address is delivered, not forwarded), so such an answer was rewritten:
// Linux's NAT translates an ICMP error back into the flow's form, outer
// source included (nf_nat_icmp_reply_translation). A translator that does
// not (a stateless rewrite) leaves the quoted header as it made it.
func natSeen(sent packetSpec, a *answer) string {
	if a.kind == evidence.AnswerTimeExceeded && a.from == sent.tuple.Dst.Addr() {
		return "answers time-exceeded from the flow's own destination " + a.from.String() + ": a translator (DNAT) before this hop rewrites its answers back to the address the client sent to"
	}
	if a.quotes {
		return natDifference(sent, a.q)
	}
	return ""
}

// natDifference says how the header an ICMP error quotes differs from the
// probe that was sent: a translator between the sender and the answering
// hop rewrote it and did not translate the error back. "" when it matches.
func natDifference(sent packetSpec, q quoted) string {
	t := sent.tuple
	var diffs []string
	if q.src.Addr() != t.Src.Addr() || (t.Proto.HasPorts() && q.src.Port() != t.Src.Port()) {
		diffs = append(diffs, fmt.Sprintf("source %s (sent %s)", endpoint(q.src, t.Proto.HasPorts()), endpoint(t.Src, t.Proto.HasPorts())))
	}
	if q.dst.Addr() != t.Dst.Addr() || (t.Proto.HasPorts() && q.dst.Port() != t.Dst.Port()) {
		diffs = append(diffs, fmt.Sprintf("destination %s (sent %s)", endpoint(q.dst, t.Proto.HasPorts()), endpoint(t.Dst, t.Proto.HasPorts())))
	}
	switch len(diffs) {
	case 0:
		return ""
	case 1:
		return "the answer quotes " + diffs[0]
	}
	return "the answer quotes " + diffs[0] + " and " + diffs[1]
}

func endpoint(ap netip.AddrPort, ports bool) string {
	if ports {
		return ap.String()
	}
	return ap.Addr().String()
}

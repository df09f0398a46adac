// Package ctentry turns the kernel's conntrack entries into evidence: the
// line `conntrack -L` prints, and the direction a flow travels in the
// entry. The conntrack probe (a lookup) and the live watch (events) both
// flatten entries here, so that an entry reads the same in both.
package ctentry

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// Protocols whose conntrack tuple carries ports (nf_conntrack_proto_*.c).
const (
	protoDCCP    = 33
	protoGRE     = 47
	protoSCTP    = 132
	protoUDPLite = 136
)

// HasPorts says whether conntrack keys the protocol's entries by ports.
func HasPorts(p flow.Proto) bool {
	switch p {
	case flow.TCP, flow.UDP, protoDCCP, protoSCTP, protoUDPLite:
		return true
	}
	return false
}

// Flatten flattens a kernel entry and decides in which direction the flow
// travels in it; query is the tuple that was asked for (the flow or its
// reverse). The note, when not empty, explains a match through NAT.
func Flatten(f flow.Flow, query flow.Flow, c conntrack.Flow) (evidence.ConntrackEntry, string) {
	e := evidence.ConntrackEntry{
		Proto:        c.TupleOrig.Proto.Protocol,
		OrigSrc:      AddrPort(c.TupleOrig.IP.SourceAddress, c.TupleOrig.Proto.SourcePort),
		OrigDst:      AddrPort(c.TupleOrig.IP.DestinationAddress, c.TupleOrig.Proto.DestinationPort),
		ReplySrc:     AddrPort(c.TupleReply.IP.SourceAddress, c.TupleReply.Proto.SourcePort),
		ReplyDst:     AddrPort(c.TupleReply.IP.DestinationAddress, c.TupleReply.Proto.DestinationPort),
		Unreplied:    !c.Status.SeenReply(),
		Assured:      c.Status.Assured(),
		SrcNAT:       c.Status.SrcNAT(),
		DstNAT:       c.Status.DstNAT(),
		Timeout:      c.Timeout,
		Mark:         c.Mark,
		Zone:         c.Zone,
		PacketsOrig:  c.CountersOrig.Packets,
		PacketsReply: c.CountersReply.Packets,
		Text:         Text(c),
	}
	if c.ProtoInfo.TCP != nil {
		e.TCPState = tcpState(c.ProtoInfo.TCP.State)
	}
	orig := [2]netip.AddrPort{e.OrigSrc, e.OrigDst}
	reply := [2]netip.AddrPort{e.ReplySrc, e.ReplyDst}
	fwd := [2]netip.AddrPort{AddrPort(f.Src.Addr(), f.Src.Port()), AddrPort(f.Dst.Addr(), f.Dst.Port())}
	rev := [2]netip.AddrPort{fwd[1], fwd[0]}
	switch {
	case fwd == orig:
		e.MatchedAs = "original"
	case fwd == reply:
		e.MatchedAs = "reply"
	case rev == reply:
		// The flow goes the original way, but the far end was rewritten:
		// the flow was given as seen after NAT.
		e.MatchedAs = "original"
		return e, fmt.Sprintf("matched through the reverse tuple: the flow travels in the entry's original direction, as it looks after NAT (%s)", natWord(e))
	case rev == orig:
		e.MatchedAs = "reply"
		return e, fmt.Sprintf("matched through the reverse tuple: the flow travels in the entry's reply direction, as it looks before NAT (%s)", natWord(e))
	default:
		// The kernel answered a tuple we asked for; it cannot be neither.
		// Say which query it was rather than guess.
		if query == f {
			e.MatchedAs = "original"
		} else {
			e.MatchedAs = "reply"
		}
	}
	return e, ""
}

func natWord(e evidence.ConntrackEntry) string {
	switch {
	case e.SrcNAT && e.DstNAT:
		return "source and destination NAT"
	case e.SrcNAT:
		return "source NAT"
	case e.DstNAT:
		return "destination NAT"
	}
	return "the entry's tuples differ"
}

// AddrPort keeps IPv4 addresses 4 bytes long so that tuples compare equal
// whatever form the kernel or the person used.
func AddrPort(a netip.Addr, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Unmap(), port)
}

// tcpStates are conntrack's TCP states by number (enum tcp_conntrack,
// include/uapi/linux/netfilter/nf_conntrack_tcp.h), named as conntrack -L names them.
var tcpStates = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

func tcpState(s uint8) string {
	if int(s) < len(tcpStates) {
		return tcpStates[s]
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// ProtoName names a protocol as libnetfilter_conntrack does in conntrack -L.
func ProtoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "icmpv6"
	case protoSCTP:
		return "sctp"
	case protoDCCP:
		return "dccp"
	case protoUDPLite:
		return "udplite"
	case protoGRE:
		return "gre"
	}
	return "unknown"
}

// Text renders an entry the way `conntrack -L` prints it
// (libnetfilter_conntrack src/conntrack/snprintf_default.c), so that a
// person can compare it with what they know.
func Text(c conntrack.Flow) string {
	var b strings.Builder
	p := c.TupleOrig.Proto.Protocol
	fmt.Fprintf(&b, "%-8s %d %d ", ProtoName(p), p, c.Timeout)
	if c.ProtoInfo.TCP != nil {
		b.WriteString(tcpState(c.ProtoInfo.TCP.State) + " ")
	}
	tupleText(&b, c.TupleOrig)
	counterText(&b, c.CountersOrig)
	if !c.Status.SeenReply() {
		b.WriteString("[UNREPLIED] ")
	}
	tupleText(&b, c.TupleReply)
	counterText(&b, c.CountersReply)
	if c.Status.Assured() {
		b.WriteString("[ASSURED] ")
	}
	if c.Status.Offload() {
		b.WriteString("[OFFLOAD] ")
	}
	fmt.Fprintf(&b, "mark=%d ", c.Mark)
	if c.Zone != 0 {
		// The kernel sends a zone only when it is not the default one.
		fmt.Fprintf(&b, "zone=%d ", c.Zone)
	}
	// A get holds its own reference while the kernel fills the answer, so
	// use= reads one more than in a dump (conntrack -G shows the same).
	fmt.Fprintf(&b, "use=%d", c.Use)
	return b.String()
}

func tupleText(b *strings.Builder, t conntrack.Tuple) {
	fmt.Fprintf(b, "src=%s dst=%s ", t.IP.SourceAddress.Unmap(), t.IP.DestinationAddress.Unmap())
	switch t.Proto.Protocol {
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		fmt.Fprintf(b, "type=%d code=%d id=%d ", t.Proto.ICMPType, t.Proto.ICMPCode, t.Proto.ICMPID)
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, protoSCTP, protoDCCP, protoUDPLite:
		fmt.Fprintf(b, "sport=%d dport=%d ", t.Proto.SourcePort, t.Proto.DestinationPort)
	}
}

// counterText prints packet and byte counters the way conntrack does when
// accounting is on; with nf_conntrack_acct=0 the kernel sends none and the
// values stay 0.
func counterText(b *strings.Builder, c conntrack.Counter) {
	if c.Packets != 0 || c.Bytes != 0 {
		fmt.Fprintf(b, "packets=%d bytes=%d ", c.Packets, c.Bytes)
	}
}

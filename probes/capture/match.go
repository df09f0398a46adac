package capture

// The flow as both halves of the capture see it: the filter compiles it
// into the kernel, and the decoder places each packet it kept against it.

import (
	"fmt"
	"net/netip"
	"time"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

// flowMatch is one form of the flow as the filter and the decoder see it.
type flowMatch struct {
	form         *flow.Flow // nil for the flow as typed; else the form's tuple, for packets it matches
	v6           bool
	proto        uint8 // IPPROTO_*: ICMPv6 for an IPv6 ICMP flow
	src, dst     netip.Addr
	sport, dport uint16 // 0 matches any port
}

func newFlowMatch(f flow.Flow) (flowMatch, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return flowMatch{}, fmt.Errorf("the flow %q needs a source and a destination of the same IP version", f)
	}
	if src == dst {
		return flowMatch{}, fmt.Errorf("the flow %q has the same address at both ends", f)
	}
	m := flowMatch{v6: src.Is6(), src: src, dst: dst}
	switch f.Proto {
	case flow.TCP, flow.UDP:
		m.proto, m.sport, m.dport = uint8(f.Proto), f.Src.Port(), f.Dst.Port()
	case flow.ICMP, flow.ICMPv6:
		m.proto = unix.IPPROTO_ICMP
		if m.v6 {
			m.proto = unix.IPPROTO_ICMPV6
		}
	default:
		return flowMatch{}, fmt.Errorf("packets of %s cannot be captured: give a tcp, udp or icmp flow", f.Proto)
	}
	return m, nil
}

func (m *flowMatch) hasPorts() bool { return m.sport != 0 || m.dport != 0 }

// newMatches is the flow and its other forms (NAT, another source), the
// typed one first; a form of another IP version than the flow, or one
// that repeats, is left out.
func newMatches(f flow.Flow, also []flow.Flow) ([]flowMatch, error) {
	m, err := newFlowMatch(f)
	if err != nil {
		return nil, err
	}
	out := []flowMatch{m}
	seen := map[flow.Flow]bool{f: true, f.Reverse(): true}
	for _, a := range also {
		if seen[a] || seen[a.Reverse()] || len(out) >= maxForms {
			continue
		}
		am, err := newFlowMatch(a)
		if err != nil || am.v6 != m.v6 {
			continue
		}
		seen[a] = true
		am.form = &a
		out = append(out, am)
	}
	return out, nil
}

// maxForms bounds the filter: each form adds some 30 to 80 instructions.
const maxForms = 4

// owns says whether a decoded packet belongs to this form: its own
// addresses and ports, or those of the packet an ICMP error quotes, are
// the form's, in either direction.
func (m *flowMatch) owns(d decoded) bool {
	src, dst := d.p.Src, d.p.Dst
	if d.quoted.ok {
		src, dst = d.quoted.src, d.quoted.dst
	}
	fwd := src.Addr() == m.src && dst.Addr() == m.dst && m.portsAre(src.Port(), dst.Port())
	rev := src.Addr() == m.dst && dst.Addr() == m.src && m.portsAre(dst.Port(), src.Port())
	return fwd || rev
}

// portsAre says whether ports read in the flow's direction are the form's
// (a port the form leaves at 0 is any).
func (m *flowMatch) portsAre(sport, dport uint16) bool {
	return (m.sport == 0 || m.sport == sport) && (m.dport == 0 || m.dport == dport)
}

// place finishes a packet against the form that owns it: the typed flow
// when none of the others does (the filter let it through for the typed
// one, or for an ICMP error about it).
func place(forms []flowMatch, d decoded, ts time.Time, iface string, pkttype uint8) evidence.CapturedPacket {
	for _, m := range forms[1:] {
		if m.owns(d) && !forms[0].owns(d) {
			return m.finish(d, ts, iface, pkttype)
		}
	}
	return forms[0].finish(d, ts, iface, pkttype)
}

// ICMP types the filter and the decoder know.
const (
	icmp4EchoReply    = 0
	icmp4Unreachable  = 3
	icmp4Echo         = 8
	icmp4TimeExceeded = 11
	icmp6Unreachable  = 1
	icmp6TooBig       = 2
	icmp6TimeExceeded = 3
	icmp6Echo         = 128
	icmp6EchoReply    = 129
	icmpErrQuote      = 8 // the quoted packet follows the 8-byte ICMP header
)

// finish places a decoded packet: when, where, which way, and its line.
func (m *flowMatch) finish(d decoded, ts time.Time, iface string, pkttype uint8) evidence.CapturedPacket {
	p := d.p
	p.Time, p.Iface = ts, iface
	p.Dir = evidence.DirIn
	p.OtherHost = pkttype == unix.PACKET_OTHERHOST
	if pkttype == unix.PACKET_OUTGOING {
		p.Dir = evidence.DirOut
	}
	if d.quoted.ok {
		// An error travels back to the quoted packet's source: from the
		// Dst side when that packet went the flow's way.
		p.Reply = d.quoted.src.Addr() == m.src
	} else {
		p.Reply = p.Src.Addr() == m.dst && p.Dst.Addr() == m.src
	}
	p.Text = d.text(ts, iface, pkttype)
	p.As = m.form
	return p
}

package xtables

// What a rule selects, as plain data for asym's path walk (package
// firewall evaluates it against the flow's packets): the ip part as the
// kernel compares it (ip_packet_match in net/ipv4/netfilter/ip_tables.c,
// ip6_packet_match in ip6_tables.c) and the matches and target as the
// kernel holds them.

import "net/netip"

// Selector is a rule's ip part.
type Selector struct {
	Src, Dst         netip.Addr
	SrcMask, DstMask []byte // as long as the address
	// In and Out are the interface conditions: a packet's interface name,
	// zero-padded to IFNAMSIZ, matches where (name XOR In) AND InMask is 0
	// (iptables' "eth+" leaves the mask short of the name's end).
	In, InMask, Out, OutMask [16]byte
	Proto                    uint16
	// Fragment: IPv4 only, the rule selects second and later fragments
	// (-f), which a flow's first packet never is.
	Fragment bool
	// Inverted conditions (! -s, ! -i, ! -p, ! -f).
	InvSrc, InvDst, InvIn, InvOut, InvProto, InvFragment bool
}

// Extension is a match or a target: its name, revision and data.
type Extension struct {
	Name     string
	Revision uint8
	Data     []byte
}

// selectorOf exports an entry's ip part.
func selectorOf(fam family, p ipPart) Selector {
	s := Selector{
		Src: p.src, Dst: p.dst, SrcMask: p.srcMask, DstMask: p.dstMask,
		In: p.in.name, InMask: p.in.mask, Out: p.out.name, OutMask: p.out.mask, Proto: p.proto,
		InvSrc: p.invflags&invSrc != 0, InvDst: p.invflags&invDst != 0,
		InvIn: p.invflags&invIn != 0, InvOut: p.invflags&invOut != 0, InvProto: p.invflags&invProto != 0,
	}
	if fam.flagFrag != 0 {
		s.Fragment, s.InvFragment = p.flags&fam.flagFrag != 0, p.invflags&invFrag != 0
	}
	return s
}

// extensionsOf exports an entry's matches and target.
func extensionsOf(e entry) (matches []Extension, target Extension) {
	for _, m := range e.matches {
		matches = append(matches, Extension{Name: m.name, Revision: m.revision, Data: m.data})
	}
	return matches, Extension{Name: e.target.name, Revision: e.target.revision, Data: e.target.data}
}

// Conntrack is an xt_conntrack match (revisions 1 to 3, widened to 3).
type Conntrack struct {
	Flags, Invert         uint16 // ConntrackState, …: which conditions it has, which are negated
	StateMask, StatusMask uint16
	Proto                 uint16
	// Addrs are the original source, its mask, the original destination,
	// its mask, then the same for the reply tuple.
	Addrs [8][16]byte
	// Ports and PortsHigh are the original source and destination, reply
	// source and destination ports, host order; PortsHigh is 0 for a
	// single port.
	Ports, PortsHigh [4]uint16
}

// The xt_conntrack match flags (include/uapi/linux/netfilter/xt_conntrack.h).
const (
	ConntrackState      = ctFlagState
	ConntrackProto      = ctFlagProto
	ConntrackOrigSrc    = ctFlagOrigSrc
	ConntrackOrigDst    = ctFlagOrigDst
	ConntrackReplSrc    = ctFlagReplSrc
	ConntrackReplDst    = ctFlagReplDst
	ConntrackStatus     = ctFlagStatus
	ConntrackExpires    = ctFlagExpires
	ConntrackOrigSrcPt  = ctFlagOrigSrcPt
	ConntrackOrigDstPt  = ctFlagOrigDstPt
	ConntrackReplSrcPt  = ctFlagReplSrcPt
	ConntrackReplDstPt  = ctFlagReplDstPt
	ConntrackDirection  = ctFlagDirection
	ConntrackStateAlias = ctFlagStateAlias
)

// DecodeConntrack reads an xt_conntrack match's data; false for a
// revision asym does not know or a short buffer.
func DecodeConntrack(revision uint8, data []byte) (Conntrack, bool) {
	ct, ok := decodeConntrack(extension{name: "conntrack", revision: revision, data: data})
	if !ok {
		return Conntrack{}, false
	}
	return Conntrack{Flags: ct.matchFlags, Invert: ct.invFlags, StateMask: ct.stateMask, StatusMask: ct.statusMask,
		Proto: ct.l4proto, Addrs: ct.addrs, Ports: ct.ports, PortsHigh: ct.portsHigh}, true
}

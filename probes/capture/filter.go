package capture

// The filter: the classic BPF program the kernel runs on every packet of
// the namespace, so that only the flow's reach user space.

import (
	"encoding/binary"
	"fmt"

	"asym/flow"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

const (
	// snapLen is what the filter keeps of a packet: an IPv4 header with
	// options (60) and a TCP header up to its flags (14), or an ICMP error
	// with the header and ports it quotes (IPv4: 20+8+20+4 without options;
	// IPv6: 40+8+40+4 = 92). Payload is never needed, and a short snap keeps
	// a flood cheap.
	snapLen = 128
	// l2Room is added to the snap for the link-layer header the raw
	// socket keeps in front (Ethernet 14, with a VLAN tag in the data 18).
	l2Room = 32
)

// Filter returns the classic BPF program (exported for tests and for a
// tcpdump-equivalent hand-off). Offsets are relative to the IP header
// (SKF_NET_OFF), so it works whatever link header the raw socket keeps in
// front, and it keeps snapLen bytes (plus room for that header) of:
//   - the flow's packets in either direction: both addresses, the protocol,
//     and the ports where the flow has them (a port given as 0 matches any),
//     always paired the same way, so A:p > B:q and B:q > A:p match but
//     A:q > B:p does not;
//   - for an ICMP flow, echo requests and replies between the two addresses;
//   - ICMP errors (destination unreachable, IPv6 packet too big, time
//     exceeded: what a black hole, a PMTU problem or a routing loop sends)
//     whatever their outer addresses, when the packet they quote is the
//     flow's, in either direction;
//   - the same for each other form of the flow in also: the flow as NAT
//     translated it, or as sent from another source address, so that its
//     packets are seen where they no longer carry the typed tuple.
//
// The protocol check reads skb->protocol (SKF_AD_PROTOCOL), so ARP and
// other frames whose bytes happen to look like IP never match.
func Filter(f flow.Flow, also ...flow.Flow) ([]bpf.RawInstruction, error) {
	forms, err := newMatches(f, also)
	if err != nil {
		return nil, err
	}
	p := &bpfProg{labels: map[string]int{}, jumps: map[int][2]string{}}
	p.add(bpf.LoadExtension{Num: bpf.ExtProto})
	if forms[0].v6 {
		p.jump(bpf.JumpEqual, unix.ETH_P_IPV6, "", "drop")
	} else {
		p.jump(bpf.JumpEqual, unix.ETH_P_IP, "", "drop")
	}
	// One block per form of the flow, each ending in its own accept (so
	// that no jump reaches past the next block: a conditional one spans at
	// most 255 instructions); a block that does not match goes on to the
	// next form's.
	for i, m := range forms {
		p.scope, p.miss = fmt.Sprintf("f%d.", i), "drop"
		if i+1 < len(forms) {
			p.miss = fmt.Sprintf("f%d.start", i+1)
		}
		p.label("start")
		if m.v6 {
			m.filter6(p)
		} else {
			m.filter4(p)
		}
		p.label("accept")
		p.add(bpf.RetConstant{Val: snapLen + l2Room})
	}
	p.scope, p.miss = "", ""
	// The socket is SOCK_RAW, so the packet starts with its link-layer
	// header, whose length depends on the link: every load is made relative
	// to the network header instead (SKF_NET_OFF), which the kernel knows.
	for i, in := range p.ins {
		switch v := in.(type) {
		case bpf.LoadAbsolute:
			v.Off += skfNetOff
			p.ins[i] = v
		case bpf.LoadIndirect:
			v.Off += skfNetOff
			p.ins[i] = v
		case bpf.LoadMemShift:
			v.Off += skfNetOff
			p.ins[i] = v
		}
	}
	p.label("drop")
	p.add(bpf.RetConstant{Val: 0})
	return p.assemble()
}

// skfNetOff is SKF_NET_OFF (-0x100000) as a classic BPF offset: a load at
// skfNetOff+n reads byte n of the network header, wherever it starts.
const skfNetOff = 0xfff00000

// filter4 matches IPv4. The IP header length varies (options), so L4 fields
// are read relative to X, loaded from the IHL by LoadMemShift (ldxb 4*([0]&0xf)).
func (m *flowMatch) filter4(p *bpfProg) {
	// Only a first fragment carries the L4 header the ports are in; a later
	// one cannot be told from another flow's, and is left out.
	p.add(bpf.LoadAbsolute{Off: 6, Size: 2})
	p.jump(bpf.JumpBitsSet, 0x1fff, "drop", "")
	p.add(bpf.LoadAbsolute{Off: 9, Size: 1})
	fwd, rev := "fwd", "rev"
	if !m.hasPorts() {
		fwd, rev = "accept", "accept"
	}
	if m.proto == unix.IPPROTO_ICMP {
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMP, "", "drop")
		p.add(bpf.LoadMemShift{Off: 0})
		p.add(bpf.LoadIndirect{Off: 0, Size: 1}) // ICMP type
		p.jump(bpf.JumpEqual, icmp4Echo, "echo", "")
		p.jump(bpf.JumpEqual, icmp4EchoReply, "echo", "")
		p.jump(bpf.JumpEqual, icmp4Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp4TimeExceeded, "err", "drop")
		p.label("echo")
		m.addrs(p, bpfAbs, 12, 16, "accept", "accept", "ip")
	} else {
		p.jump(bpf.JumpEqual, uint32(m.proto), "l4", "")
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMP, "", "drop")
		p.add(bpf.LoadMemShift{Off: 0})
		p.add(bpf.LoadIndirect{Off: 0, Size: 1})
		p.jump(bpf.JumpEqual, icmp4Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp4TimeExceeded, "err", "drop")
		p.label("l4")
		m.addrs(p, bpfAbs, 12, 16, fwd, rev, "ip")
		if m.hasPorts() {
			p.label("fwd")
			p.add(bpf.LoadMemShift{Off: 0})
			bpfPorts(p, bpfInd, 0, m.sport, m.dport)
			p.label("rev")
			p.add(bpf.LoadMemShift{Off: 0})
			bpfPorts(p, bpfInd, 0, m.dport, m.sport)
		}
	}
	// An ICMP error: X is the outer header length, the quoted IPv4 header
	// starts at X+8 (RFC 792: it quotes the header and at least 8 bytes).
	p.label("err")
	p.add(bpf.LoadIndirect{Off: icmpErrQuote + 9, Size: 1})
	p.jump(bpf.JumpEqual, uint32(m.proto), "", "drop")
	efwd, erev := "quoted.fwd", "quoted.rev"
	if !m.hasPorts() {
		efwd, erev = "accept", "accept"
	}
	m.addrs(p, bpfInd, icmpErrQuote+12, icmpErrQuote+16, efwd, erev, "quoted")
	if m.hasPorts() {
		p.label("quoted.fwd")
		quotedL4(p)
		bpfPorts(p, bpfInd, icmpErrQuote, m.sport, m.dport)
		p.label("quoted.rev")
		quotedL4(p)
		bpfPorts(p, bpfInd, icmpErrQuote, m.dport, m.sport)
	}
}

// quotedL4 skips a quoted non-first fragment and moves X past the quoted
// IPv4 header, whose length has to be computed: LoadMemShift takes only a
// constant offset. X = outer header length + 4*(quoted IHL).
func quotedL4(p *bpfProg) {
	p.add(bpf.LoadIndirect{Off: icmpErrQuote + 6, Size: 2})
	p.jump(bpf.JumpBitsSet, 0x1fff, "drop", "")
	p.add(bpf.LoadIndirect{Off: icmpErrQuote, Size: 1})
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	p.add(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	p.add(bpf.TAX{})
}

// filter6 matches IPv6. The header is a fixed 40 bytes and the L4 header is
// read right after it: only packets whose first next header is TCP, UDP or
// ICMPv6 are seen. Extension headers (hop-by-hop, routing, fragment,
// destination options) are not followed: classic BPF cannot loop over a
// chain, and the flows asym diagnoses do not carry them. A fragmented
// IPv6 packet of the flow is therefore missed, first fragment included, and
// so is an ICMPv6 error whose quoted packet has extension headers.
func (m *flowMatch) filter6(p *bpfProg) {
	p.add(bpf.LoadAbsolute{Off: 6, Size: 1}) // next header
	fwd, rev := "fwd", "rev"
	if !m.hasPorts() {
		fwd, rev = "accept", "accept"
	}
	if m.proto == unix.IPPROTO_ICMPV6 {
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMPV6, "", "drop")
		p.add(bpf.LoadAbsolute{Off: 40, Size: 1}) // ICMPv6 type
		p.jump(bpf.JumpEqual, icmp6Echo, "echo", "")
		p.jump(bpf.JumpEqual, icmp6EchoReply, "echo", "")
		p.jump(bpf.JumpEqual, icmp6Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp6TooBig, "err", "")
		p.jump(bpf.JumpEqual, icmp6TimeExceeded, "err", "drop")
		p.label("echo")
		m.addrs(p, bpfAbs, 8, 24, "accept", "accept", "ip")
	} else {
		p.jump(bpf.JumpEqual, uint32(m.proto), "l4", "")
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMPV6, "", "drop")
		p.add(bpf.LoadAbsolute{Off: 40, Size: 1})
		p.jump(bpf.JumpEqual, icmp6Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp6TooBig, "err", "")
		p.jump(bpf.JumpEqual, icmp6TimeExceeded, "err", "drop")
		p.label("l4")
		m.addrs(p, bpfAbs, 8, 24, fwd, rev, "ip")
		if m.hasPorts() {
			p.label("fwd")
			bpfPorts(p, bpfAbs, 40, m.sport, m.dport)
			p.label("rev")
			bpfPorts(p, bpfAbs, 40, m.dport, m.sport)
		}
	}
	// The quoted packet: its IPv6 header at 48, its ports at 88.
	const q = 40 + icmpErrQuote
	p.label("err")
	p.add(bpf.LoadAbsolute{Off: q + 6, Size: 1})
	p.jump(bpf.JumpEqual, uint32(m.proto), "", "drop")
	efwd, erev := "quoted.fwd", "quoted.rev"
	if !m.hasPorts() {
		efwd, erev = "accept", "accept"
	}
	m.addrs(p, bpfAbs, q+8, q+24, efwd, erev, "quoted")
	if m.hasPorts() {
		p.label("quoted.fwd")
		bpfPorts(p, bpfAbs, q+40, m.sport, m.dport)
		p.label("quoted.rev")
		bpfPorts(p, bpfAbs, q+40, m.dport, m.sport)
	}
}

// bpfLoad loads size bytes at off into A: absolute, or relative to X.
type bpfLoad func(off uint32, size int) bpf.Instruction

func bpfAbs(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }
func bpfInd(off uint32, size int) bpf.Instruction { return bpf.LoadIndirect{Off: off, Size: size} }

// addrs matches the source and destination addresses at srcOff and dstOff
// against the flow's, 32 bits at a time: it goes to fwd when they are the
// flow's Src and Dst, to rev when they are its Dst and Src, and drops
// anything else. name keeps its labels apart from another use.
func (m *flowMatch) addrs(p *bpfProg, ld bpfLoad, srcOff, dstOff uint32, fwd, rev, name string) {
	words := func(off uint32, addr []byte, match, miss string) {
		for i := 0; i < len(addr); i += 4 {
			p.add(ld(off+uint32(i), 4))
			next := ""
			if i+4 == len(addr) {
				next = match
			}
			p.jump(bpf.JumpEqual, binary.BigEndian.Uint32(addr[i:]), next, miss)
		}
	}
	a, b := m.src.AsSlice(), m.dst.AsSlice()
	words(srcOff, a, "", name+".reverse")
	words(dstOff, b, fwd, "drop")
	p.label(name + ".reverse")
	words(srcOff, b, "", "drop")
	words(dstOff, a, rev, "drop")
}

// bpfPorts accepts when the source and destination ports at off are first
// and second (0: any), and drops otherwise.
func bpfPorts(p *bpfProg, ld bpfLoad, off uint32, first, second uint16) {
	switch {
	case first != 0 && second != 0:
		p.add(ld(off, 4))
		p.jump(bpf.JumpEqual, uint32(first)<<16|uint32(second), "accept", "drop")
	case first != 0:
		p.add(ld(off, 2))
		p.jump(bpf.JumpEqual, uint32(first), "accept", "drop")
	case second != 0:
		p.add(ld(off+2, 2))
		p.jump(bpf.JumpEqual, uint32(second), "accept", "drop")
	default:
		p.goTo("accept")
	}
}

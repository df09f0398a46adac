package drops

// The flow's filter, in the kernel: the program keeps a dropped packet
// only when its addresses, protocol and ports are those of the flow or of
// one of its other forms (as NAT translated it, or sent from another
// source), in either direction, or when it is an ICMP error that quotes
// such a packet. Everything else of the host's drops ends here, at the
// cost of a few compares.

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"asym/flow"

	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// maxForms bounds the program: each form adds some 20 (IPv4) to 80
// (IPv6) instructions, twice (the packet, and the packet an ICMP error
// quotes).
const maxForms = 8

// form is one tuple of the flow as the filter compares it and the decoder
// places a packet against it.
type form struct {
	as           *flow.Flow // nil for the flow as typed
	proto        uint8      // IPPROTO_*: ICMPV6 for an IPv6 ICMP flow
	src, dst     netip.Addr
	sport, dport uint16 // 0 matches any port
}

func newForm(f flow.Flow) (form, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return form{}, fmt.Errorf("the flow %q needs a source and a destination of the same IP version", f)
	}
	if src == dst {
		return form{}, fmt.Errorf("the flow %q has the same address at both ends", f)
	}
	m := form{src: src, dst: dst}
	switch f.Proto {
	case flow.TCP, flow.UDP:
		m.proto, m.sport, m.dport = uint8(f.Proto), f.Src.Port(), f.Dst.Port()
	case flow.ICMP, flow.ICMPv6:
		m.proto = unix.IPPROTO_ICMP
		if src.Is6() {
			m.proto = unix.IPPROTO_ICMPV6
		}
	default:
		return form{}, fmt.Errorf("drops of %s cannot be watched: give a tcp, udp or icmp flow", f.Proto)
	}
	return m, nil
}

// newForms is the flow and its other forms, the typed one first; a form
// of another IP version, or one that repeats, is left out.
func newForms(f flow.Flow, also []flow.Flow) ([]form, error) {
	m, err := newForm(f)
	if err != nil {
		return nil, err
	}
	out := []form{m}
	seen := map[flow.Flow]bool{f: true, f.Reverse(): true}
	for _, a := range also {
		if seen[a] || seen[a.Reverse()] || len(out) >= maxForms {
			continue
		}
		am, err := newForm(a)
		if err != nil || am.src.Is6() != m.src.Is6() {
			continue
		}
		seen[a] = true
		am.as = &a
		out = append(out, am)
	}
	return out, nil
}

// portsWord is the first four bytes of a TCP or UDP header with these
// ports, as the program loads them (a native u32), and the mask that
// leaves out a port given as 0.
func portsWord(sport, dport uint16) (val, mask uint32) {
	var v, m [4]byte
	binary.BigEndian.PutUint16(v[0:], sport)
	binary.BigEndian.PutUint16(v[2:], dport)
	if sport != 0 {
		m[0], m[1] = 0xff, 0xff
	}
	if dport != 0 {
		m[2], m[3] = 0xff, 0xff
	}
	return binary.NativeEndian.Uint32(v[:]), binary.NativeEndian.Uint32(m[:])
}

// addrWords are an address's bytes as the program loads them, four at a time.
func addrWords(a netip.Addr) []uint32 {
	b := a.AsSlice()
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return out
}

// ICMP error types: their message quotes the packet they are about.
var (
	icmp4Errors = []int32{3, 4, 5, 11, 12} // unreachable, source quench, redirect, time exceeded, parameter problem
	icmp6Errors = []int32{1, 2, 3, 4}      // unreachable, packet too big, time exceeded, parameter problem
)

// filterForms emits the filter over the packet on the stack: it jumps to
// "emit" for a packet of the flow and to "exit" for any other. In the
// compares, r2 and r3 hold the IPv4 source and destination, r4 the
// protocol, and r5 the transport header's first four bytes (the ports,
// or an ICMP message's type and code).
func filterForms(b *builder, forms []form) {
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, stackPacket, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
	)
	if forms[0].src.Is6() {
		filter6(b, forms)
	} else {
		filter4(b, forms)
	}
}

func filter4(b *builder, forms []form) {
	b.jumpImm(asm.JNE, asm.R1, 4, "exit")
	// r8: the header's length, 20 to 60.
	b.emit(
		asm.LoadMem(asm.R8, asm.RFP, stackPacket, asm.Byte),
		asm.And.Imm(asm.R8, 0x0f),
		asm.LSh.Imm(asm.R8, 2),
	)
	b.jumpImm(asm.JLT, asm.R8, 20, "exit")
	b.emit(
		asm.LoadMem(asm.R2, asm.RFP, stackPacket+12, asm.Word),
		asm.LoadMem(asm.R3, asm.RFP, stackPacket+16, asm.Word),
		asm.LoadMem(asm.R4, asm.RFP, stackPacket+9, asm.Byte),
		asm.Mov.Imm(asm.R5, 0),
		// A fragment after the first has no transport header: its
		// "ports" stay 0 and match only a form without ports.
		asm.LoadMem(asm.R1, asm.RFP, stackPacket+6, asm.Half),
		asm.And.Imm(asm.R1, int32(binary.NativeEndian.Uint16([]byte{0x1f, 0xff}))),
	)
	b.jumpImm(asm.JNE, asm.R1, 0, "v4_outer")
	loadAt(b, asm.R5, asm.R8)
	b.label("v4_outer")
	compare4(b, forms, "o")
	quotedOnly(b, unix.IPPROTO_ICMP, icmp4Errors, "v4_quoted")
	// The quoted header starts 8 bytes after the outer one ends (r8: 28
	// to 68); its own length is checked, and its ports must fit the
	// bytes read.
	b.label("v4_quoted")
	b.emit(
		asm.Add.Imm(asm.R8, 8),
		asm.Mov.Reg(asm.R9, asm.RFP),
		asm.Add.Imm(asm.R9, stackPacket),
		asm.Add.Reg(asm.R9, asm.R8),
		asm.LoadMem(asm.R1, asm.R9, 0, asm.Byte),
		asm.Mov.Reg(asm.R2, asm.R1),
		asm.RSh.Imm(asm.R2, 4),
	)
	b.jumpImm(asm.JNE, asm.R2, 4, "exit")
	b.emit(
		asm.And.Imm(asm.R1, 0x0f),
		asm.LSh.Imm(asm.R1, 2),
	)
	b.jumpImm(asm.JLT, asm.R1, 20, "exit")
	b.emit(asm.Add.Reg(asm.R8, asm.R1))
	b.jumpImm(asm.JGT, asm.R8, packetBytes-4, "exit")
	b.emit(
		asm.LoadMem(asm.R2, asm.R9, 12, asm.Word),
		asm.LoadMem(asm.R3, asm.R9, 16, asm.Word),
		asm.LoadMem(asm.R4, asm.R9, 9, asm.Byte),
	)
	loadAt(b, asm.R5, asm.R8)
	compare4(b, forms, "q")
	b.goTo("exit")
}

// loadAt loads the u32 at packet offset off (a register the verifier knows
// the bounds of) into dst.
func loadAt(b *builder, dst, off asm.Register) {
	b.emit(
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackPacket),
		asm.Add.Reg(asm.R1, off),
		asm.LoadMem(dst, asm.R1, 0, asm.Word),
	)
}

// quotedOnly goes on to the quoted packet at label to when the packet is
// an ICMP error (proto, one of types), and ends the program otherwise.
func quotedOnly(b *builder, proto int32, types []int32, to string) {
	b.jumpImm(asm.JNE, asm.R4, proto, "exit")
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R5),
		asm.And.Imm(asm.R1, 0xff),
	)
	for _, t := range types {
		b.jumpImm(asm.JEq, asm.R1, t, to)
	}
	b.goTo("exit")
}

// compare4 matches r2-r5 against each form both ways.
func compare4(b *builder, forms []form, scope string) {
	for i, f := range forms {
		next := fmt.Sprintf("%s%d_next", scope, i)
		rev := fmt.Sprintf("%s%d_rev", scope, i)
		b.jumpImm(asm.JNE, asm.R4, int32(f.proto), next)
		a, z := addrWords(f.src)[0], addrWords(f.dst)[0]
		b.jump32(asm.JNE, asm.R2, a, rev)
		b.jump32(asm.JNE, asm.R3, z, rev)
		comparePorts(b, f.sport, f.dport, rev)
		b.goTo("emit")
		b.label(rev)
		b.jump32(asm.JNE, asm.R2, z, next)
		b.jump32(asm.JNE, asm.R3, a, next)
		comparePorts(b, f.dport, f.sport, next)
		b.goTo("emit")
		b.label(next)
	}
}

// comparePorts goes to miss unless r5 holds these ports (0: any).
func comparePorts(b *builder, sport, dport uint16, miss string) {
	val, mask := portsWord(sport, dport)
	if mask == 0 {
		return
	}
	b.emit(
		asm.Mov.Reg(asm.R1, asm.R5),
		asm.And.Imm32(asm.R1, int32(mask)),
	)
	b.jump32(asm.JNE, asm.R1, val, miss)
}

// IPv6: the fixed header only (40 bytes); a packet whose transport header
// follows extension headers is not matched. Offsets are constant, so the
// addresses are compared in place on the stack.
const (
	v6Src    = 8
	v6Dst    = 24
	v6Next   = 6
	v6Header = 40
	v6Quoted = v6Header + 8 // the quoted packet in an ICMPv6 error
)

func filter6(b *builder, forms []form) {
	b.jumpImm(asm.JNE, asm.R1, 6, "exit")
	b.emit(
		asm.LoadMem(asm.R4, asm.RFP, stackPacket+v6Next, asm.Byte),
		asm.LoadMem(asm.R5, asm.RFP, stackPacket+v6Header, asm.Word),
	)
	compare6(b, forms, 0, "o")
	quotedOnly(b, unix.IPPROTO_ICMPV6, icmp6Errors, "v6_quoted")
	b.label("v6_quoted")
	b.emit(
		asm.LoadMem(asm.R1, asm.RFP, stackPacket+v6Quoted, asm.Byte),
		asm.RSh.Imm(asm.R1, 4),
	)
	b.jumpImm(asm.JNE, asm.R1, 6, "exit")
	b.emit(
		asm.LoadMem(asm.R4, asm.RFP, stackPacket+v6Quoted+v6Next, asm.Byte),
		asm.LoadMem(asm.R5, asm.RFP, stackPacket+v6Quoted+v6Header, asm.Word),
	)
	compare6(b, forms, v6Quoted, "q")
	b.goTo("exit")
}

// compare6 matches the IPv6 header at packet offset at (with r4 and r5
// loaded) against each form both ways.
func compare6(b *builder, forms []form, at int16, scope string) {
	addr := func(off int16, a netip.Addr, miss string) {
		for i, w := range addrWords(a) {
			b.emit(asm.LoadMem(asm.R1, asm.RFP, stackPacket+at+off+int16(4*i), asm.Word))
			b.jump32(asm.JNE, asm.R1, w, miss)
		}
	}
	for i, f := range forms {
		next := fmt.Sprintf("%s%d_next", scope, i)
		rev := fmt.Sprintf("%s%d_rev", scope, i)
		b.jumpImm(asm.JNE, asm.R4, int32(f.proto), next)
		addr(v6Src, f.src, rev)
		addr(v6Dst, f.dst, rev)
		comparePorts(b, f.sport, f.dport, rev)
		b.goTo("emit")
		b.label(rev)
		addr(v6Src, f.dst, next)
		addr(v6Dst, f.src, next)
		comparePorts(b, f.dport, f.sport, next)
		b.goTo("emit")
		b.label(next)
	}
}

package trace

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/net/bpf"
)

// The filters run on raw IPv4 sockets, so loads are relative to the IP
// header; LoadMemShift puts the header's length in X.

// icmpFilter passes ICMP time-exceeded and unreachable errors that quote
// one of the run's probes (its protocol and IP ID base: not its addresses,
// so that an error quoting a header a translator rewrote still arrives),
// and echo replies with the run's echo identifier.
func icmpFilter(proto uint8, base uint8, echoID uint16) []bpf.Instruction {
	return []bpf.Instruction{
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 0, Size: 1}, // ICMP type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpTimeExceeded, SkipTrue: 3},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpUnreachable, SkipTrue: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: icmpEchoReply, SkipTrue: 6},
		bpf.RetConstant{Val: 0},
		// An error: the quoted header starts 8 bytes into the ICMP message.
		bpf.LoadIndirect{Off: 8 + 9, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(proto), SkipTrue: 5},
		bpf.LoadIndirect{Off: 8 + 4, Size: 2},
		bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xff00},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(base) << 8, SkipTrue: 3, SkipFalse: 2},
		// An echo reply: its identifier.
		bpf.LoadIndirect{Off: 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(echoID), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: recvBuf},
	}
}

// tupleFilter passes TCP or UDP packets from src to dst with these ports:
// the destination's answers to the probes (src is the probes' destination),
// or, at the far end, the probes themselves as they arrive.
func tupleFilter(src, dst netip.AddrPort) []bpf.Instruction {
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(s4[:]), SkipTrue: 8},
		bpf.LoadAbsolute{Off: 16, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(d4[:]), SkipTrue: 6},
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 0, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(src.Port()), SkipTrue: 3},
		bpf.LoadIndirect{Off: 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dst.Port()), SkipTrue: 1},
		bpf.RetConstant{Val: recvBuf},
		bpf.RetConstant{Val: 0},
	}
}

// arrivalFilter passes TCP or UDP packets from src (any port) to dst: the
// other end's probes as they arrive, from whichever client port it used.
func arrivalFilter(src netip.Addr, dst netip.AddrPort) []bpf.Instruction {
	s4, d4 := src.As4(), dst.Addr().As4()
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(s4[:]), SkipTrue: 6},
		bpf.LoadAbsolute{Off: 16, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(d4[:]), SkipTrue: 4},
		bpf.LoadMemShift{Off: 0},
		bpf.LoadIndirect{Off: 2, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(dst.Port()), SkipTrue: 1},
		bpf.RetConstant{Val: recvBuf},
		bpf.RetConstant{Val: 0},
	}
}

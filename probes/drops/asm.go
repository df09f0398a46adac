package drops

// An eBPF assembler with labels over cilium/ebpf's asm package: the
// program is written as its logic, jumps name where they go, and a field
// of a kernel struct is read the way the attach point allows.

import (
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// Registers the program keeps across helper calls (r6-r9 survive them;
// r0-r5 do not).
const (
	rCtx = asm.R6 // the tracepoint's arguments
	rSkb = asm.R7 // struct sk_buff *
)

// Stack layout: the event as the ring buffer carries it, with the packet's
// first bytes at its end, and a scratch slot under it for field reads and
// map keys.
const (
	stackEvent   = -eventSize
	stackPacket  = stackEvent + evPacket
	stackScratch = stackEvent - 8
)

// builder assembles a program. Labels name the next instruction emitted;
// two labels on one instruction are aliases, resolved when the program is
// finished (cilium/ebpf allows one symbol per instruction).
type builder struct {
	ins     asm.Instructions
	pending []string
	alias   map[string]string
	defined map[string]bool
	// probeRead reads kernel memory with bpf_probe_read_kernel instead of
	// loading it: a raw tracepoint's arguments are plain numbers to the
	// verifier, while tp_btf's are typed pointers it lets the program
	// dereference directly (faults read as zero).
	probeRead bool
}

func newBuilder(probeRead bool) *builder {
	return &builder{alias: map[string]string{}, defined: map[string]bool{}, probeRead: probeRead}
}

func (b *builder) emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if len(b.pending) > 0 {
			in = in.WithSymbol(b.pending[0])
			for _, other := range b.pending[1:] {
				b.alias[other] = b.pending[0]
			}
			b.pending = b.pending[:0]
		}
		b.ins = append(b.ins, in)
	}
}

func (b *builder) label(name string) {
	b.defined[name] = true
	b.pending = append(b.pending, name)
}

// jumpImm compares a register's 64 bits with a small constant.
func (b *builder) jumpImm(op asm.JumpOp, r asm.Register, v int32, to string) {
	b.emit(op.Imm(r, v, to))
}

// jump32 compares a register's low 32 bits with a constant: a u32 read
// from a packet is zero-extended, and a 64-bit compare would sign-extend
// the constant (an address of 198.51.100.0/24 has its top bit set).
func (b *builder) jump32(op asm.JumpOp, r asm.Register, v uint32, to string) {
	b.emit(op.Imm32(r, int32(v), to))
}

func (b *builder) goTo(to string) { b.emit(asm.Ja.Label(to)) }

// field reads size bytes at base+off into dst. With probeRead it goes
// through the scratch slot and clobbers r0-r5, so dst and base must not
// be needed in them afterwards.
func (b *builder) field(dst, base asm.Register, off uint32, size asm.Size) {
	if !b.probeRead {
		b.emit(asm.LoadMem(dst, base, int16(off), size))
		return
	}
	b.emit(
		asm.Mov.Reg(asm.R3, base),
		asm.Add.Imm(asm.R3, int32(off)),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackScratch),
		asm.Mov.Imm(asm.R2, int32(size.Sizeof())),
		asm.FnProbeReadKernel.Call(),
		asm.LoadMem(dst, asm.RFP, stackScratch, size),
	)
}

// finish resolves label aliases and checks that every jump has a target.
func (b *builder) finish() (asm.Instructions, error) {
	if len(b.pending) > 0 {
		return nil, fmt.Errorf("the drop program ends with label %q on no instruction", b.pending[0])
	}
	for i, in := range b.ins {
		ref := in.Reference()
		if ref == "" || in.IsLoadFromMap() {
			continue
		}
		if to, ok := b.alias[ref]; ok {
			b.ins[i] = in.WithReference(to)
			ref = to
		}
		if !b.defined[ref] {
			return nil, fmt.Errorf("the drop program jumps to label %q, which it does not define", ref)
		}
	}
	return b.ins, nil
}

package capture

// A classic BPF assembler with labels: the flow's filter is written as its
// logic, and the jump offsets are worked out here.

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// bpfProg assembles a classic BPF program with named forward jumps, so the
// filter reads as its logic rather than as skip counts that break when an
// instruction is added.
type bpfProg struct {
	ins    []bpf.Instruction
	jumps  map[int][2]string // instruction index -> true and false labels ("" = next)
	labels map[string]int
	err    error
	// scope prefixes the labels of one block (one form of the flow), and
	// miss is where that block's "drop" goes: the next form's block, or
	// the drop at the end. Empty outside blocks.
	scope, miss string
}

func (p *bpfProg) add(ins ...bpf.Instruction) { p.ins = append(p.ins, ins...) }

// resolve names a label in the current block: "" is the next instruction,
// "drop" the block's miss, a name starting with "@" the program's own.
func (p *bpfProg) resolve(name string) string {
	switch {
	case name == "":
		return ""
	case name == "drop" && p.miss != "":
		return p.miss
	case name[0] == '@':
		return name[1:]
	}
	return p.scope + name
}

func (p *bpfProg) label(name string) {
	name = p.resolve(name)
	if _, dup := p.labels[name]; dup && p.err == nil {
		p.err = fmt.Errorf("the filter defines label %q twice", name)
	}
	p.labels[name] = len(p.ins)
}

func (p *bpfProg) jump(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	p.jumps[len(p.ins)] = [2]string{p.resolve(ifTrue), p.resolve(ifFalse)}
	p.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (p *bpfProg) goTo(label string) {
	p.jumps[len(p.ins)] = [2]string{p.resolve(label), ""}
	p.add(bpf.Jump{})
}

// assemble resolves the labels: classic BPF jumps only forward, a
// conditional one by at most 255 instructions.
func (p *bpfProg) assemble() ([]bpf.RawInstruction, error) {
	if p.err != nil {
		return nil, p.err
	}
	skip := func(at int, label string) (int, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := p.labels[label]
		if !ok {
			return 0, fmt.Errorf("the filter jumps to label %q, which it does not define", label)
		}
		if to <= at {
			return 0, fmt.Errorf("the filter jumps back to label %q: classic BPF jumps only forward", label)
		}
		return to - at - 1, nil
	}
	for at, l := range p.jumps {
		t, err := skip(at, l[0])
		if err != nil {
			return nil, err
		}
		f, err := skip(at, l[1])
		if err != nil {
			return nil, err
		}
		switch j := p.ins[at].(type) {
		case bpf.JumpIf:
			if t > 255 || f > 255 {
				return nil, fmt.Errorf("the filter is too long for a conditional jump to label %q or %q", l[0], l[1])
			}
			j.SkipTrue, j.SkipFalse = uint8(t), uint8(f)
			p.ins[at] = j
		case bpf.Jump:
			j.Skip = uint32(t)
			p.ins[at] = j
		}
	}
	raw, err := bpf.Assemble(p.ins)
	if err != nil {
		return nil, fmt.Errorf("assemble the flow's filter: %w", err)
	}
	return raw, nil
}

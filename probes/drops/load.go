package drops

// Loading: the ring buffer and the lost counter, the program assembled for
// this kernel and this flow, and its attachment to kfree_skb, as tp_btf
// first and as a raw tracepoint when that fails. Nothing is pinned: the
// program, its link and its maps live as long as this process holds their
// descriptors, so they go when asym exits, however it exits.

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// Names the kernel shows for what the witness loads (bpftool prog, map):
// tests look for them to prove that nothing is left behind.
const (
	ProgramName = "asym_drops"
	EventsName  = "asym_drop_ev"
	LostName    = "asym_drop_lost"
)

// ringBytes is the ring buffer's size: some 22,000 events of 184 bytes.
// The reader is woken when a quarter of it is full (program.go) and reads
// every batch interval anyway; measured under a flood that kept both CPUs
// busy, 1 MiB lost 0.4 to 2.6% of a flow dropped 100,000 times a second
// and 4 MiB lost none (bench_test.go).
const ringBytes = 4 << 20

// Hook is how the program is attached to the kfree_skb tracepoint.
type Hook int

const (
	// HookAuto tries tp_btf, then the raw tracepoint.
	HookAuto Hook = iota
	// HookBTF is a BTF-enabled raw tracepoint (tp_btf, Linux 5.5+): the
	// program reads the kernel's structs with plain loads.
	HookBTF
	// HookRawTracepoint is the fallback (Linux 4.17+): every read goes
	// through bpf_probe_read_kernel.
	HookRawTracepoint
)

func (h Hook) String() string {
	switch h {
	case HookBTF:
		return "tp_btf/kfree_skb"
	case HookRawTracepoint:
		return "raw_tp/kfree_skb"
	}
	return "auto"
}

// witness is the loaded program, its link and its maps.
type witness struct {
	hook   Hook
	l      *layout
	events *ebpf.Map
	lost   *ebpf.Map
	prog   *ebpf.Program
	link   link.Link
}

// load assembles the program for the flow's forms and the target's
// namespace and attaches it as hook asks.
func load(forms []form, netns uint32, hook Hook) (*witness, error) {
	l, err := readLayout()
	if err != nil {
		return nil, err
	}
	// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; later ones
	// to the cgroup, and this is a no-op there.
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("lift the locked-memory limit for BPF maps: %w", err)
	}
	w := &witness{l: l}
	if w.events, err = ebpf.NewMap(&ebpf.MapSpec{Name: EventsName, Type: ebpf.RingBuf, MaxEntries: ringBytes}); err != nil {
		return nil, fmt.Errorf("create the ring buffer: %w", err)
	}
	if w.lost, err = ebpf.NewMap(&ebpf.MapSpec{Name: LostName, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1}); err != nil {
		w.close()
		return nil, fmt.Errorf("create the lost counter: %w", err)
	}
	p := &program{l: l, netns: netns, forms: forms, events: w.events, lost: w.lost}
	var first error
	for _, h := range []Hook{HookBTF, HookRawTracepoint} {
		if hook != HookAuto && hook != h {
			continue
		}
		err := w.attach(p, h)
		if err == nil {
			return w, nil
		}
		if first == nil {
			first = err
			continue
		}
		first = fmt.Errorf("%w; the raw tracepoint failed too: %v", first, err)
	}
	w.close()
	return nil, first
}

// attach loads the program for hook and attaches it.
func (w *witness) attach(p *program, h Hook) error {
	p.probeRead = h == HookRawTracepoint
	ins, err := p.instructions()
	if err != nil {
		return err
	}
	spec := &ebpf.ProgramSpec{Name: ProgramName, Instructions: ins, License: "GPL"} // bpf_probe_read_kernel is GPL-only
	if h == HookBTF {
		spec.Type, spec.AttachType, spec.AttachTo = ebpf.Tracing, ebpf.AttachTraceRawTp, "kfree_skb"
	} else {
		spec.Type = ebpf.RawTracepoint
	}
	prog, err := ebpf.NewProgram(spec)
	if err != nil {
		return fmt.Errorf("load the drop program (%s): %w", h, err)
	}
	var lk link.Link
	if h == HookBTF {
		lk, err = link.AttachTracing(link.TracingOptions{Program: prog, AttachType: ebpf.AttachTraceRawTp})
	} else {
		lk, err = link.AttachRawTracepoint(link.RawTracepointOptions{Name: "kfree_skb", Program: prog})
	}
	if err != nil {
		prog.Close()
		return fmt.Errorf("attach the drop program to %s: %w", h, err)
	}
	w.prog, w.link, w.hook = prog, lk, h
	return nil
}

// close detaches and frees everything, in the order that stops events first.
func (w *witness) close() {
	if w.link != nil {
		w.link.Close()
	}
	if w.prog != nil {
		w.prog.Close()
	}
	if w.events != nil {
		w.events.Close()
	}
	if w.lost != nil {
		w.lost.Close()
	}
}

// lostSoFar sums the lost counter over CPUs.
func (w *witness) lostSoFar() uint64 {
	var per []uint64
	if w.lost.Lookup(uint32(0), &per) != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// instructionsFor is the program for a hook without loading it (tests
// and the benchmark count its size).
func instructionsFor(l *layout, forms []form, netns uint32, h Hook) (asm.Instructions, error) {
	p := &program{l: l, netns: netns, forms: forms, probeRead: h == HookRawTracepoint,
		events: fakeFD{}, lost: fakeFD{}}
	return p.instructions()
}

// unavailable words why the witness cannot run, for the person: the
// missing privilege, kernel feature or lockdown, and what to do. Lockdown
// shows as a refused load (EPERM) or as a helper the verifier does not
// offer (EINVAL): bpf_probe_read_kernel is withheld in confidentiality
// mode (kernel/trace/bpf_trace.c).
func unavailable(err error) error {
	refused := errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
	mode := lockdown()
	why := err.Error()
	switch {
	case mode != "" && (refused || errors.Is(err, unix.EINVAL)):
		why = "the kernel is locked down (" + mode + "), which forbids BPF programs that read kernel memory (" + err.Error() + ")"
	case refused:
		why = "needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): run asym with sudo (" + err.Error() + ")"
	case errors.Is(err, ebpf.ErrNotSupported):
		why = "this kernel lacks what the witness needs (BPF ring buffers: Linux 5.8; kfree_skb drop reasons: 5.17): " + err.Error()
	}
	return &unavailableError{why: why, err: err}
}

// unavailableError is the witness's one word when it cannot run.
type unavailableError struct {
	why string
	err error
}

func (e *unavailableError) Error() string { return "kernel drop witness is unavailable: " + e.why }
func (e *unavailableError) Unwrap() error { return e.err }

// lockdownFile is securityfs's lockdown switch; a variable for tests.
var lockdownFile = "/sys/kernel/security/lockdown"

// lockdown is the kernel's lockdown mode when it restricts BPF
// ("integrity", "confidentiality"), or "" (security/lockdown/lockdown.c:
// the active mode is the bracketed word).
func lockdown() string {
	b, err := os.ReadFile(lockdownFile)
	if err != nil {
		return ""
	}
	s := string(b)
	i, j := strings.IndexByte(s, '['), strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return ""
	}
	if mode := s[i+1 : j]; mode != "none" {
		return mode
	}
	return ""
}

package drops

// The program the kernel runs on every packet it drops (the kfree_skb
// tracepoint): find the packet's network namespace, keep it only if it is
// the target's, read the first bytes of its IP header, keep it only if it
// is the flow's (filter.go), and hand the kept ones to user space through
// a ring buffer. It is assembled here, with the struct offsets of the
// running kernel (layout.go): no C, no clang, no bytecode in the tree.

import (
	"github.com/cilium/ebpf/asm"
)

// The event the program writes into the ring buffer, as decode.go reads
// it (native byte order).
const (
	evTime    = 0  // u64 bpf_ktime_get_ns (CLOCK_MONOTONIC)
	evLoc     = 8  // u64 the address that freed the packet
	evReason  = 16 // u32 enum skb_drop_reason
	evNetns   = 20 // u32 the namespace's inode, 0 when it had none
	evIfindex = 24 // u32 the device's index, 0 without one
	evLen     = 28 // u32 skb->len
	evIfname  = 32 // [16]byte the device's name
	evPacket  = 48 // [packetBytes]byte from the network header on
	// packetBytes is what the filter and the decoder see of a packet: an
	// IPv4 header with options and the ports, or an ICMP error with the
	// header and ports it quotes (IPv4 20+8+60+4 at most with inner
	// options; IPv6 40+8+40+4 = 92). Reading it never leaves the packet's
	// buffer: struct skb_shared_info (320 bytes) follows the data.
	packetBytes = 128
	eventSize   = evPacket + packetBytes
)

// Ring buffer flags and queries (include/uapi/linux/bpf.h): the event is
// written without waking the reader until the ring holds wakeAt bytes.
const (
	rbNoWakeup    = 1 // BPF_RB_NO_WAKEUP
	rbForceWakeup = 2 // BPF_RB_FORCE_WAKEUP
	rbAvailData   = 0 // BPF_RB_AVAIL_DATA
	wakeAt        = ringBytes / 4
)

// unsetHeader is an offset skb_reset_network_header never wrote
// ((typeof(skb->network_header))~0U in include/linux/skbuff.h).
const unsetHeader = 0xffff

// program is what one witness loads.
type program struct {
	l         *layout
	probeRead bool   // raw tracepoint: read kernel memory through the helper
	netns     uint32 // the target's inode
	forms     []form
	events    fder // the ring buffer
	lost      fder // per-CPU count of events the ring buffer refused
}

// fder is a map as the program refers to it: by its descriptor.
type fder interface{ FD() int }

// fakeFD stands for a map in a program assembled but never loaded.
type fakeFD struct{}

func (fakeFD) FD() int { return -1 }

// instructions assembles the program.
func (p *program) instructions() (asm.Instructions, error) {
	b := newBuilder(p.probeRead)
	b.emit(
		asm.Mov.Reg(rCtx, asm.R1),
		asm.LoadMem(rSkb, rCtx, p.l.ctxSkb, asm.DWord),
	)
	b.jumpImm(asm.JEq, rSkb, 0, "exit")
	p.namespace(b)
	p.readPacket(b)
	filterForms(b, p.forms)
	b.label("emit")
	p.emitEvent(b)
	b.label("exit")
	b.emit(asm.Mov.Imm(asm.R0, 0), asm.Return())
	return b.finish()
}

// namespace finds the inode of the namespace the drop belongs to: the
// device's (skb->dev->nd_net), else the socket's (skb->sk, then the
// tracepoint's rx_sk), and leaves the program when it is another
// namespace's. A packet with neither is kept with inode 0: user space
// counts it as unattributed rather than guess.
func (p *program) namespace(b *builder) {
	l := p.l
	b.field(asm.R8, rSkb, l.skbDev, asm.DWord)
	b.jumpImm(asm.JEq, asm.R8, 0, "no_dev")
	b.field(asm.R8, asm.R8, l.devNet, asm.DWord)
	b.goTo("net")
	b.label("no_dev")
	b.field(asm.R8, rSkb, l.skbSk, asm.DWord)
	b.jumpImm(asm.JNE, asm.R8, 0, "sock")
	if l.ctxRxSk < 0 {
		b.goTo("unattributed")
	} else {
		b.emit(asm.LoadMem(asm.R8, rCtx, l.ctxRxSk, asm.DWord))
		b.jumpImm(asm.JEq, asm.R8, 0, "unattributed")
	}
	b.label("sock")
	b.field(asm.R8, asm.R8, l.skNet, asm.DWord)
	b.label("net")
	b.jumpImm(asm.JEq, asm.R8, 0, "unattributed")
	b.field(asm.R9, asm.R8, l.netInum, asm.Word)
	b.jump32(asm.JEq, asm.R9, p.netns, "attributed")
	b.jumpImm(asm.JNE, asm.R9, 0, "exit")
	b.label("unattributed")
	b.emit(asm.Mov.Imm(asm.R9, 0))
	b.label("attributed")
	b.emit(asm.StoreMem(asm.RFP, stackEvent+evNetns, asm.R9, asm.Word))
}

// readPacket copies packetBytes from the network header onto the stack,
// where the filter reads them; the program ends for a packet without one.
func (p *program) readPacket(b *builder) {
	l := p.l
	b.field(asm.R8, rSkb, l.skbNetworkHeader, asm.Half)
	b.jumpImm(asm.JEq, asm.R8, unsetHeader, "exit")
	b.field(asm.R9, rSkb, l.skbHead, asm.DWord)
	b.jumpImm(asm.JEq, asm.R9, 0, "exit")
	b.emit(
		asm.Add.Reg(asm.R9, asm.R8),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackPacket),
		asm.Mov.Imm(asm.R2, packetBytes),
		asm.Mov.Reg(asm.R3, asm.R9),
		asm.FnProbeReadKernel.Call(),
	)
	b.jumpImm(asm.JNE, asm.R0, 0, "exit")
}

// emitEvent fills the rest of the event (the namespace and the packet are
// in place) and writes it to the ring buffer; when the ring is full, it
// counts the event as lost instead.
func (p *program) emitEvent(b *builder) {
	l := p.l
	b.emit(
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.RFP, stackEvent+evTime, asm.R0, asm.DWord),
		asm.LoadMem(asm.R1, rCtx, l.ctxLocation, asm.DWord),
		asm.StoreMem(asm.RFP, stackEvent+evLoc, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, rCtx, l.ctxReason, asm.DWord),
		asm.StoreMem(asm.RFP, stackEvent+evReason, asm.R1, asm.Word),
		// Every byte handed to the ring buffer must have been written.
		asm.Mov.Imm(asm.R1, 0),
		asm.StoreMem(asm.RFP, stackEvent+evIfindex, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, stackEvent+evIfname, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, stackEvent+evIfname+8, asm.R1, asm.DWord),
	)
	b.field(asm.R8, rSkb, l.skbLen, asm.Word)
	b.emit(asm.StoreMem(asm.RFP, stackEvent+evLen, asm.R8, asm.Word))
	b.field(asm.R8, rSkb, l.skbDev, asm.DWord)
	b.jumpImm(asm.JEq, asm.R8, 0, "send")
	b.field(asm.R9, asm.R8, l.devIfindex, asm.Word)
	b.emit(
		asm.StoreMem(asm.RFP, stackEvent+evIfindex, asm.R9, asm.Word),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Add.Imm(asm.R3, int32(l.devName)),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, stackEvent+evIfname),
		asm.Mov.Imm(asm.R2, 16),
		asm.FnProbeReadKernel.Call(),
	)
	// User space reads the ring on its own clock (every batch interval),
	// so an event wakes it only when the ring is filling up: a flow
	// dropped a thousand times a second then costs no thousand wakeups.
	b.label("send")
	b.emit(
		asm.LoadMapPtr(asm.R1, p.events.FD()),
		asm.Mov.Imm(asm.R2, rbAvailData),
		asm.FnRingbufQuery.Call(),
		asm.Mov.Imm(asm.R9, rbNoWakeup),
	)
	b.jumpImm(asm.JLT, asm.R0, wakeAt, "output")
	b.emit(asm.Mov.Imm(asm.R9, rbForceWakeup))
	b.label("output")
	b.emit(
		asm.LoadMapPtr(asm.R1, p.events.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackEvent),
		asm.Mov.Imm(asm.R3, eventSize),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.FnRingbufOutput.Call(),
	)
	b.jumpImm(asm.JEq, asm.R0, 0, "exit")
	b.emit(
		asm.StoreImm(asm.RFP, stackScratch, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, p.lost.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, stackScratch),
		asm.FnMapLookupElem.Call(),
	)
	b.jumpImm(asm.JEq, asm.R0, 0, "exit")
	// A per-CPU slot: no other CPU writes it, so a plain add is exact.
	b.emit(
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
	)
}

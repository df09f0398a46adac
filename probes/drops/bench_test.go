package drops_test

// The witness's cost, measured.
//
// Load and attach (root):
//
//	go test ./probes/drops -run '^$' -bench LoadAttach -benchtime 20x
//
// Under a flood of unrelated drops, opt-in with ASYM_BENCH=1 (about a
// minute):
//
//	ASYM_BENCH=1 go test ./probes/drops -run TestDropFloodBudget -v -count=1 -timeout 10m
//
// The flood comes from a second process, the test binary started again
// with ASYM_BENCH_DROPS_NS set: one goroutine per CPU, each on a thread in
// the target namespace, writes Ethernet frames to its loopback with an
// AF_PACKET socket (sendmmsg, qdisc bypassed) addressed to a MAC that is
// not the device's, so the kernel drops each one in ip_rcv_core as
// OTHERHOST in the sender's own context: the cheapest drop found on this
// machine (1.38 million/s on its two cores; UDP to a closed port made
// 0.38 million/s, and an output rule's drop refuses sendmmsg's batch). The
// frames carry the flow's own addresses and protocol with other ports,
// the filter's worst case: only the port compare tells them apart. The
// same process sends the flow's own frames (its exact tuple, dropped the
// same way) at ASYM_BENCH_FLOW_RATE per second and counts them.
//
// What is measured, and how:
//   - the flood's rate: the generator's count of datagrams the kernel took
//     (each is one drop), without the witness and with it;
//   - the witness's CPU in user space: this process's getrusage
//     (RUSAGE_SELF, user+system) over the phase, with no drops and under
//     the flood;
//   - the witness's CPU in the kernel: the program runs in the context of
//     whoever drops the packet (here the generator's threads), so it is
//     charged to them; the kernel's BPF statistics (BPF_ENABLE_STATS
//     BPF_STATS_RUN_TIME: run count and run time of the program) give its
//     time per run and its share of a core at the measured rate;
//   - the flow's own drops: sent by the generator, delivered by the witness
//     or counted beyond its batch cap, lost in the kernel (ring full); and
//     at lower rates, with a cap that never skips, every one delivered.
//
// Knobs: ASYM_BENCH_SECONDS (length of each flood phase, default 10),
// ASYM_BENCH_FLOW_RATE (the flow's drops per second, default 10,000).

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/drops"
	"asym/probes/probetest"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const (
	benchEnv         = "ASYM_BENCH"
	benchNSEnv       = "ASYM_BENCH_DROPS_NS" // set only in the generator process
	benchSecondsEnv  = "ASYM_BENCH_SECONDS"
	benchFlowRateEnv = "ASYM_BENCH_FLOW_RATE"
	benchLine        = "asym-drops-flood "

	benchFlow    = "udp 192.0.2.1:40000 192.0.2.2:7777"
	benchBatch   = 256   // frames per sendmmsg
	benchFloodLo = 10000 // the flood's destination ports: benchFloodLo + 0..benchBatch-1
)

// benchNS is the flooded namespace: its loopback is all the flood needs.
func benchNS(t testing.TB) probetest.NS {
	t.Helper()
	ns := probetest.NewNS(t)
	probetest.Quiet(t, ns)
	return ns
}

// BenchmarkLoadAttach measures from Watch to the first update (BTF read,
// program assembled, verified, attached, ring buffer mapped) and the
// teardown after cancel, per attach point. The kernel's BTF is parsed once
// per process (cilium/ebpf caches it); TestDropFloodBudget reports the
// first, cold attach on its own.
func BenchmarkLoadAttach(b *testing.B) {
	ns := probetest.NewNS(b)
	tg := benchTarget(b, ns)
	f, _ := flow.ParseString(benchFlow)
	for _, h := range []drops.Hook{drops.HookBTF, drops.HookRawTracepoint} {
		b.Run(h.String(), func(b *testing.B) {
			for b.Loop() {
				ctx, cancel := context.WithCancel(context.Background())
				ch := drops.Watch(ctx, tg, f, drops.Options{Hook: h})
				if u := <-ch; u.Err != nil {
					b.Fatal(u.Err)
				}
				cancel()
				for range ch {
				}
			}
		})
	}
}

func benchTarget(t testing.TB, ns probetest.NS) drops.Namespace {
	t.Helper()
	tg, err := probes.OpenTarget(ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	return tg
}

// TestDropFloodBudget measures the witness under a flood; see the top of
// the file. It prints the figures and fails only when the flow's own drops
// were not all delivered below the flood's rate, or the harness cannot run.
func TestDropFloodBudget(t *testing.T) {
	if ns := os.Getenv(benchNSEnv); ns != "" {
		floodProcess(ns)
		return
	}
	if os.Getenv(benchEnv) != "1" {
		t.Skip("a measurement, not a test: run it with ASYM_BENCH=1 (go test ./probes/drops -run TestDropFloodBudget -v -count=1 -timeout 10m)")
	}
	phase := time.Duration(envInt(t, benchSecondsEnv, 5)) * time.Second
	ns := benchNS(t)
	tg := benchTarget(t, ns)
	f, _ := flow.ParseString(benchFlow)

	// The first attach in the process is cold: the kernel's BTF is parsed.
	t0 := time.Now()
	w := startWitness(t, tg, f, drops.Options{})
	t.Logf("attach, cold (BTF parsed): %s", time.Since(t0).Round(time.Millisecond))

	// No drops: the witness alone.
	c0, w0 := cpuSelf(t), time.Now()
	r0, _ := runStats(t, w.prog)
	time.Sleep(2 * phase)
	r1, _ := runStats(t, w.prog)
	t.Logf("no drops: the witness used %.4f cores in user space over %s; its program ran %d times (drops in other namespaces)",
		(cpuSelf(t)-c0).Seconds()/time.Since(w0).Seconds(), 2*phase, r1-r0)
	w.stop(t)

	// The flood with the witness and without, alternating, three times.
	var bare, with, cores []float64
	for range 3 {
		bare = append(bare, runFlood(t, ns.Name, phase, 0).floodRate)
		w := startWitness(t, tg, f, drops.Options{})
		c0, w0 := cpuSelf(t), time.Now()
		with = append(with, runFlood(t, ns.Name, phase, 0).floodRate)
		cores = append(cores, (cpuSelf(t)-c0).Seconds()/time.Since(w0).Seconds())
		w.stop(t)
		if w.got.Load() != 0 {
			t.Errorf("the flood is no drop of the flow, yet %d were reported", w.got.Load())
		}
	}
	t.Logf("flood of unrelated drops (the flow's addresses, other ports; median of 3): %.0f/s without the witness, %.0f/s with it (%.1f%% fewer); the witness used %.4f cores in user space (runs: %.0f %.0f %.4f)",
		median(bare), median(with), 100*(1-median(with)/median(bare)), median(cores), bare, with, cores)

	// The flow's own drops under the flood, at rates below it, with the
	// options asym runs it with: every drop is delivered or, beyond the
	// batch cap (1024 per 200 ms), counted as skipped; none may be lost.
	for _, rate := range []int{1_000, 10_000, 100_000, 300_000} {
		w := startWitness(t, tg, f, drops.Options{})
		c0, w0 := cpuSelf(t), time.Now()
		r := runFlood(t, ns.Name, phase, rate)
		time.Sleep(300 * time.Millisecond) // the last batch
		c := (cpuSelf(t) - c0).Seconds() / time.Since(w0).Seconds()
		w.stop(t)
		t.Logf("the flow's own drops at %d/s (%.0f/s sent) under %.0f unrelated/s: %d sent, %d delivered, %d skipped beyond the batch cap, %d lost in the kernel; the witness used %.4f cores in user space",
			rate, float64(r.flowSent)/phase.Seconds(), r.floodRate, r.flowSent, w.got.Load(), w.skipped.Load(), w.lost.Load(), c)
		if int64(r.flowSent) != w.got.Load()+w.skipped.Load() || w.lost.Load() != 0 {
			t.Errorf("the flow's own drops at %d/s: %d sent, %d delivered, %d skipped, %d lost", rate, r.flowSent, w.got.Load(), w.skipped.Load(), w.lost.Load())
		}
	}
	// And every one delivered, with a cap that never skips.
	for _, rate := range []int{1_000, 10_000} {
		w := startWitness(t, tg, f, drops.Options{MaxBatch: 1 << 20})
		r := runFlood(t, ns.Name, phase, rate)
		time.Sleep(300 * time.Millisecond)
		w.stop(t)
		t.Logf("the flow's own drops at %d/s, uncapped: %d sent, %d delivered, %d lost", rate, r.flowSent, w.got.Load(), w.lost.Load())
		if int64(r.flowSent) != w.got.Load() || w.lost.Load()+w.skipped.Load() != 0 {
			t.Errorf("the flow's own drops at %d/s, uncapped: %d sent, %d delivered, %d lost, %d skipped", rate, r.flowSent, w.got.Load(), w.lost.Load(), w.skipped.Load())
		}
	}

	// The program's own time per run, from the kernel's statistics, less
	// what the statistics cost themselves (two clock reads around each
	// run), measured on an empty program attached the same way.
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		t.Fatalf("enable BPF run-time statistics: %v", err)
	}
	defer stats.Close()
	w = startWitness(t, tg, f, drops.Options{})
	perRun, runs := statsUnderFlood(t, ns.Name, phase, w.prog)
	w.stop(t)
	empty := emptyProgram(t)
	floor, _ := statsUnderFlood(t, ns.Name, phase, empty)
	t.Logf("program: %s per run with statistics on (%.0f runs/s); an empty program attached the same way: %s; the witness's own work: %s per drop, %.3f cores at 1,000,000 drops/s",
		perRun, runs, floor, perRun-floor, (perRun-floor).Seconds()*1e6)
}

// witnessRun is one witness attached for a phase, counting what it delivers.
type witnessRun struct {
	cancel             context.CancelFunc
	done               <-chan struct{}
	prog               *ebpf.Program
	got, lost, skipped atomic.Int64
}

// startWitness attaches the witness and counts what it delivers.
func startWitness(t *testing.T, tg drops.Namespace, f flow.Flow, opt drops.Options) *witnessRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := drops.Watch(ctx, tg, f, opt)
	first := <-ch
	if first.Err != nil {
		cancel()
		t.Fatal(first.Err)
	}
	w := &witnessRun{cancel: cancel}
	w.done = probetest.Drain(ch, func(u evidence.DropUpdate) {
		w.got.Add(int64(len(u.Drops)))
		w.lost.Add(int64(u.Lost))
		w.skipped.Add(int64(u.Skipped))
	})
	w.prog = witnessProgram(t)
	return w
}

func (w *witnessRun) stop(t *testing.T) {
	t.Helper()
	w.prog.Close()
	w.cancel()
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
		t.Fatal("the witness did not stop within 5s")
	}
}

// statsUnderFlood floods for d and returns the program's time per run and
// its runs per second (statistics must be on).
func statsUnderFlood(t *testing.T, ns string, d time.Duration, p *ebpf.Program) (time.Duration, float64) {
	t.Helper()
	n0, d0 := runStats(t, p)
	runFlood(t, ns, d, 0)
	n1, d1 := runStats(t, p)
	if n1 == n0 {
		t.Fatal("the program did not run under the flood")
	}
	return (d1 - d0) / time.Duration(n1-n0), float64(n1-n0) / d.Seconds()
}

// emptyProgram attaches `return 0` to kfree_skb as the witness attaches
// (tp_btf), detached when the test ends.
func emptyProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "asym_empty", Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp, AttachTo: "kfree_skb", License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: p, AttachType: ebpf.AttachTraceRawTp})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close(); p.Close() })
	return p
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// floodResult is what a generator run reports.
type floodResult struct {
	floodRate float64
	flowSent  int
}

// runFlood runs the generator for d and reads its report.
func runFlood(t *testing.T, ns string, d time.Duration, flowRate int) floodResult {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDropFloodBudget$")
	cmd.Env = append(os.Environ(), benchNSEnv+"="+ns, benchFlowRateEnv+"="+strconv.Itoa(flowRate), benchSecondsEnv+"="+strconv.Itoa(int(d.Seconds())))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var r floodResult
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), benchLine); ok {
			var flood, flowN int
			var secs float64
			fmt.Sscan(rest, &flood, &flowN, &secs)
			r = floodResult{floodRate: float64(flood) / secs, flowSent: flowN}
		}
	}
	if err := cmd.Wait(); err != nil || r.floodRate == 0 {
		t.Fatalf("the flood generator: %v\n%s", err, stderr.String())
	}
	return r
}

// floodProcess is the generator: it floods for ASYM_BENCH_SECONDS and
// prints "asym-drops-flood FLOOD FLOW SECONDS".
func floodProcess(nsName string) {
	secs, _ := strconv.Atoi(os.Getenv(benchSecondsEnv))
	flowRate, _ := strconv.Atoi(os.Getenv(benchFlowRateEnv))
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	stop := time.Now().Add(time.Duration(secs) * time.Second)
	var flood, flowN atomic.Int64
	var wg sync.WaitGroup
	failed := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for range runtime.NumCPU() {
		wg.Go(func() {
			sock, err := loopbackSocket(ns)
			if err != nil {
				failed(err)
			}
			flood.Add(floodFrames(sock, stop))
		})
	}
	if flowRate > 0 {
		wg.Go(func() {
			sock, err := loopbackSocket(ns)
			if err != nil {
				failed(err)
			}
			flowN.Add(paceFlow(sock, flowRate, stop))
		})
	}
	start := time.Now()
	wg.Wait()
	fmt.Printf("%s%d %d %f\n", benchLine, flood.Load(), flowN.Load(), time.Since(start).Seconds())
}

// loopbackSocket is a packet socket in ns that writes frames to its
// loopback, past the qdisc. The thread that made it stays in ns (the
// generator is a throwaway process).
func loopbackSocket(ns netns.NsHandle) (int, error) {
	runtime.LockOSThread()
	if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("enter the namespace: %w", err)
	}
	s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	unix.SetsockoptInt(s, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1)
	return s, nil
}

// frame is an Ethernet frame to another host's MAC carrying an IPv4 UDP
// header from 192.0.2.1:sport to 192.0.2.2:dport (the filter reads no
// further).
func frame(sport, dport uint16) []byte {
	b := make([]byte, 14+28)
	copy(b, []byte{0x02, 0, 0, 0, 0, 0x01}) // not lo's 00:00:00:00:00:00: PACKET_OTHERHOST
	b[12], b[13] = 0x08, 0x00
	ip := b[14:]
	ip[0], ip[3], ip[8], ip[9] = 0x45, 28, 64, unix.IPPROTO_UDP
	copy(ip[12:], netip.MustParseAddr("192.0.2.1").AsSlice())
	copy(ip[16:], netip.MustParseAddr("192.0.2.2").AsSlice())
	binary.BigEndian.PutUint16(ip[20:], sport)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], 8)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	return b
}

// mmsghdr is struct mmsghdr (sendmmsg(2)); x/sys/unix has no sendmmsg.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// frames is a batch of frames to loopback for sendmmsg.
type frames struct {
	msgs []mmsghdr
	to   unix.RawSockaddrLinklayer
	iov  []unix.Iovec
	data [][]byte
}

func newFrames(ports func(i int) (uint16, uint16), n int) *frames {
	f := &frames{msgs: make([]mmsghdr, n), iov: make([]unix.Iovec, n), data: make([][]byte, n),
		to: unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Protocol: 0x0008, Ifindex: 1, Halen: 6}} // ETH_P_IP, big-endian; lo is ifindex 1
	for i := range n {
		f.data[i] = frame(ports(i))
		f.iov[i] = unix.Iovec{Base: &f.data[i][0]}
		f.iov[i].SetLen(len(f.data[i]))
		f.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&f.to))
		f.msgs[i].hdr.Namelen = uint32(unsafe.Sizeof(f.to))
		f.msgs[i].hdr.Iov = &f.iov[i]
		f.msgs[i].hdr.Iovlen = 1
	}
	return f
}

func (f *frames) send(sock int, n int) int {
	r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(sock), uintptr(unsafe.Pointer(&f.msgs[0])), uintptr(n), 0, 0, 0)
	if e != 0 {
		return 0
	}
	return int(r)
}

// floodFrames sends batches of the flood's frames until stop and returns
// how many the kernel took (each one a drop).
func floodFrames(sock int, stop time.Time) int64 {
	f := newFrames(func(i int) (uint16, uint16) { return 40000, uint16(benchFloodLo + i) }, benchBatch)
	var n int64
	for i := 0; ; i++ {
		if i%16 == 0 && time.Now().After(stop) {
			return n
		}
		n += int64(f.send(sock, benchBatch))
	}
}

// paceFlow sends the flow's own frame rate times a second, a burst each
// millisecond, until stop, and returns how many the kernel took.
func paceFlow(sock int, rate int, stop time.Time) int64 {
	f := newFrames(func(int) (uint16, uint16) { return 40000, 7777 }, 64)
	var n int64
	start := time.Now()
	for now := start; now.Before(stop); now = time.Now() {
		due := int64(now.Sub(start).Seconds() * float64(rate))
		for n < due {
			k := f.send(sock, int(min(due-n, 64)))
			if k == 0 {
				break
			}
			n += int64(k)
		}
		time.Sleep(time.Millisecond)
	}
	return n
}

// witnessProgram is this process's drop program (the only one it holds
// at a time). The caller closes it.
func witnessProgram(t *testing.T) *ebpf.Program {
	t.Helper()
	o := objectsOf(t, os.Getpid())
	for _, id := range o.progs {
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && info.Name == drops.ProgramName {
			return p
		}
		p.Close()
	}
	t.Fatal("this process holds no drop program")
	return nil
}

// runStats is the program's run count and run time so far (the time only
// while BPF statistics are enabled).
func runStats(t *testing.T, p *ebpf.Program) (uint64, time.Duration) {
	t.Helper()
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st.RunCount, st.Runtime
}

// cpuSelf is this process's CPU time so far, user and system.
func cpuSelf(t *testing.T) time.Duration {
	t.Helper()
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q is not a number", name, v)
	}
	return n
}

package watch_test

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/counter"
	"asym/probes/probetest"
	"asym/probes/watch"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
)

// TestWatchFirewallECMP watches both firewalls of the lab's ECMP scenario
// while the failing flow is tried: fw1 sees the SYN and keeps an
// [UNREPLIED] entry, fw2 sees only the SYN-ACK, which conntrack calls
// invalid and the ruleset drops: no event there, but climbing counters.
func TestWatchFirewallECMP(t *testing.T) {
	start := time.Now()
	env, ctx := labUp(t, "firewall-ecmp", "asym-w")
	fw2, fw1 := openTarget(t, env.Checks[0].Target), openTarget(t, env.Checks[1].Target)
	f := parseFlow(t, env.Checks[0].Flow)
	t.Logf("lab up in %s; flow %s", time.Since(start).Round(time.Millisecond), f)

	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	opt := watch.Options{Interval: 200 * time.Millisecond}
	r2, r1 := watchRecord(watch.Start(wctx, fw2, f, opt)), watchRecord(watch.Start(wctx, fw1, f, opt))
	if !r2.until(3*time.Second, watchHasSample) || !r1.until(3*time.Second, watchHasSample) {
		t.Fatal("no first sample within 3s")
	}

	tryStart := time.Now()
	err := env.Try(ctx, 2500*time.Millisecond)
	t.Logf("try (%s): %v", time.Since(tryStart).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("the failing flow worked: the scenario is not broken")
	}

	const ruleKey = "rule:inet filter forward #"
	var key string
	r2.until(2*time.Second, func(r *watchRec) bool {
		s := r.samples()
		for k := range s[len(s)-1].Counters {
			if strings.HasPrefix(k, ruleKey) {
				key = k
			}
		}
		return key != "" && watchMaxRate(s, "nf_conntrack:invalid") > 0 && watchMaxRate(s, key) > 0
	})
	wcancel()
	r1.WaitClosed(t, "fw1")
	r2.WaitClosed(t, "fw2")

	ev1 := r1.events()
	watchLogEvents(t, "fw1", ev1)
	found := false
	for _, e := range ev1 {
		if e.Type == "NEW" && e.Entry.Unreplied && e.Entry.TCPState == "SYN_SENT" && e.Entry.MatchedAs == "original" &&
			strings.HasPrefix(e.Entry.Text, "[NEW] tcp      6 ") && strings.Contains(e.Entry.Text, " SYN_SENT ") && strings.Contains(e.Entry.Text, "[UNREPLIED]") {
			found = true
		}
	}
	if !found {
		t.Errorf("fw1: no NEW event for the flow with SYN_SENT and [UNREPLIED]; got %d events", len(ev1))
	}
	if ev2 := r2.events(); len(ev2) != 0 {
		watchLogEvents(t, "fw2", ev2)
		t.Errorf("fw2: %d events for the flow, want none (it never sees the SYN)", len(ev2))
	}
	s2 := r2.samples()
	if key == "" {
		t.Errorf("fw2: no %q… counter in the samples: %v", ruleKey, s2[len(s2)-1].Counters)
	}
	inv, rule := watchMaxRate(s2, "nf_conntrack:invalid"), watchMaxRate(s2, key)
	t.Logf("fw2: %d samples, max rates: nf_conntrack:invalid %.1f/s, %s %.1f/s", len(s2), inv, key, rule)
	if inv <= 0 || rule <= 0 {
		t.Errorf("fw2: want the invalid count and the rule counter to rise between samples; max rates %.1f and %.1f", inv, rule)
	}
	if d := r1.dropped() + r2.dropped(); d != 0 {
		t.Errorf("dropped %d events on a quiet lab", d)
	}
	r1.noErrs(t, "fw1")
	r2.noErrs(t, "fw2")
	t.Logf("total %s", time.Since(start).Round(time.Millisecond))
}

// watchPair is two namespaces joined by a veth, with a ct rule in the
// server's (B): B tracks the connections A opens to it.
func watchPair(t *testing.T) (a, b probetest.NS, tb *probes.Target) {
	t.Helper()
	a, b = ctPair(t)
	probetest.TrackConntrack(t, b)
	return a, b, openTarget(t, b.Name)
}

// watchDelete removes the flow's entry (conntrack -D): the kernel keeps a
// reset connection for nf_conntrack_tcp_timeout_close and reaps it when its
// garbage collector gets round to it, too late for a test to wait for.
func watchDelete(t *testing.T, ns probetest.NS, f flow.Flow) {
	t.Helper()
	c, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(ns.Handle)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Delete(ctQuery(f)); err != nil {
		t.Fatalf("delete the conntrack entry of %s: %v", f, err)
	}
}

// watchLifecycle checks NEW (SYN_SENT) → UPDATE (ESTABLISHED) → DESTROY in
// order, and that every event names the flow's direction as want.
func watchLifecycle(t *testing.T, name string, evs []evidence.CtEvent, want string) {
	t.Helper()
	step := 0
	for _, e := range evs {
		if e.Entry.MatchedAs != want {
			t.Errorf("%s: %s event matched as %q, want %q", name, e.Type, e.Entry.MatchedAs, want)
		}
		if !strings.HasPrefix(e.Entry.Text, "["+string(e.Type)+"] tcp ") || strings.Contains(e.Entry.Text, "use=") {
			t.Errorf("%s: Text %q is not conntrack -E style", name, e.Entry.Text)
		}
		switch {
		case step == 0 && e.Type == "NEW" && e.Entry.TCPState == "SYN_SENT" && e.Entry.Unreplied:
			step = 1
		case step == 1 && e.Type == "UPDATE" && e.Entry.TCPState == "ESTABLISHED" && e.Entry.Assured:
			step = 2
		case step == 2 && e.Type == "DESTROY":
			step = 3
		}
	}
	if step != 3 {
		watchLogEvents(t, name, evs)
		t.Errorf("%s: got %d events; want NEW (SYN_SENT) → UPDATE (ESTABLISHED) → DESTROY in order, reached step %d", name, len(evs), step)
	}
}

// TestWatchTCPLifecycle watches a real TCP connection on the server side,
// as typed, reversed, and without ports.
func TestWatchTCPLifecycle(t *testing.T) {
	a, b, tb := watchPair(t)
	f := parseFlow(t, "tcp 192.0.2.10:40011 192.0.2.20:8080")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opt := watch.Options{Interval: 100 * time.Millisecond}
	rf := watchRecord(watch.Start(ctx, tb, f, opt))
	rr := watchRecord(watch.Start(ctx, tb, f.Reverse(), opt))
	ra := watchRecord(watch.Start(ctx, tb, parseFlow(t, "tcp 192.0.2.10 192.0.2.20"), opt))
	other := watchRecord(watch.Start(ctx, tb, parseFlow(t, "tcp 192.0.2.10:40012 192.0.2.20:8080"), opt))

	ln := probetest.Listen(t, b, ctServerAddr+":8080")
	probetest.Connect(t, a, ln, "192.0.2.10:40011", "192.0.2.20:8080")
	time.Sleep(100 * time.Millisecond) // let the last ACKs pass before the entry goes
	watchDelete(t, b, f)
	destroyed := func(r *watchRec) bool {
		for _, e := range r.events() {
			if e.Type == "DESTROY" {
				return true
			}
		}
		return false
	}
	for _, r := range []*watchRec{rf, rr, ra} {
		r.until(3*time.Second, destroyed)
	}
	cancel()
	for _, r := range []*watchRec{rf, rr, ra, other} {
		r.WaitClosed(t, "watch")
	}
	watchLogEvents(t, "as typed", rf.events())
	watchLifecycle(t, "as typed", rf.events(), "original")
	watchLifecycle(t, "reversed", rr.events(), "reply")
	watchLifecycle(t, "without ports", ra.events(), "original")
	if n := len(other.events()); n != 0 {
		t.Errorf("another source port: %d events, want none", n)
	}
	for _, r := range []*watchRec{rf, rr, ra, other} {
		r.noErrs(t, "watch")
		if d := r.dropped(); d != 0 {
			t.Errorf("dropped %d events on a quiet namespace", d)
		}
	}
}

// TestWatchFlood floods a namespace with unrelated conntrack entries (a
// few thousand UDP flows a second for 2s) while one watched TCP connection
// comes and goes: the watched flow's events all arrive; a consumer that
// does not read gets merged batches within MaxEvents and the overflow in
// Dropped; a socket too small for the flood reports the kernel's drops.
func TestWatchFlood(t *testing.T) {
	start := time.Now()
	ns := probetest.NewNS(t)
	probetest.Quiet(t, ns)
	h := probetest.Netlink(t, ns.Handle)
	// Packets to 192.0.2.2 leave through one end of a veth pair to a fixed
	// MAC that the other end, with no address, discards (PACKET_OTHERHOST):
	// each is a new conntrack entry (a NEW event) and nothing more. No
	// dummy interface: not every kernel has the module.
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "v0"}, PeerName: "v1"}); err != nil {
		t.Fatal(err)
	}
	v0 := probetest.SetUp(t, h, probetest.Link{Name: "v0", Addrs: []string{"192.0.2.1/24", "192.0.2.3/24"}})
	probetest.SetUp(t, h, probetest.Link{Name: "v1"})
	mac, _ := net.ParseMAC("02:00:00:00:00:02")
	if err := h.NeighAdd(&netlink.Neigh{LinkIndex: v0.Attrs().Index, IP: net.IPv4(192, 0, 2, 2), HardwareAddr: mac,
		State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4}); err != nil {
		t.Fatal(err)
	}
	probetest.TrackConntrack(t, ns)
	tg := openTarget(t, ns.Name)

	f := parseFlow(t, "tcp 192.0.2.1:40021 192.0.2.3:8080")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opt := watch.Options{Interval: 200 * time.Millisecond}
	rTCP := watchRecord(watch.Start(ctx, tg, f, opt))
	// Every flood packet matches a flow given without ports; its consumer
	// stays away during the flood.
	const maxEv = 64
	allCh := watch.Start(ctx, tg, parseFlow(t, "udp 192.0.2.1 192.0.2.2"), watch.Options{Interval: opt.Interval, MaxEvents: maxEv})
	if c := cap(allCh); c > 2 {
		t.Errorf("channel capacity %d: want a small buffer", c)
	}
	// A receive buffer of a few events cannot follow the flood.
	restore := watch.SetEventRcvBuf(4096)
	rTiny := watchRecord(watch.Start(ctx, tg, f, opt))
	restore()
	if !rTCP.until(3*time.Second, watchHasSample) || !rTiny.until(3*time.Second, watchHasSample) {
		t.Fatal("no first sample within 3s")
	}

	var mem0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem0)

	var sock *net.UDPConn
	probetest.Do(t, ns.Handle, func() (err error) {
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1)})
		return err
	})
	defer sock.Close()
	sent := 0
	floodDone := make(chan struct{})
	const burst, every, floodFor = 100, 20 * time.Millisecond, 2 * time.Second // 5,000 flows a second
	go func() {
		defer close(floodDone)
		payload := []byte("x")
		tick := time.NewTicker(every)
		defer tick.Stop()
		for end := time.Now().Add(floodFor); time.Now().Before(end); <-tick.C {
			for i := 0; i < burst; i++ {
				dst := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.2"), uint16(1000+sent%60000))
				if _, err := sock.WriteToUDPAddrPort(payload, dst); err == nil {
					sent++
				}
			}
		}
	}()

	// The watched connection, in the middle of the flood.
	time.Sleep(500 * time.Millisecond)
	ln := probetest.Listen(t, ns, "192.0.2.3:8080")
	probetest.Connect(t, ns, ln, "192.0.2.1:40021", "192.0.2.3:8080")
	time.Sleep(100 * time.Millisecond)
	watchDelete(t, ns, f)
	<-floodDone

	// Now the slow consumer reads: one batch was waiting in the channel,
	// the rest merged behind it.
	time.Sleep(300 * time.Millisecond)
	rAll := watchRecord(allCh)
	time.Sleep(500 * time.Millisecond)
	cancel()
	for _, r := range []*watchRec{rTCP, rAll, rTiny} {
		r.WaitClosed(t, "watch")
	}
	var mem1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&mem1)

	t.Logf("sent %d UDP flows in %s", sent, floodFor)
	watchLifecycle(t, "watched flow", rTCP.events(), "original")
	if d := rTCP.dropped(); d != 0 {
		t.Errorf("watched flow: %d events dropped with the default buffer at %d events/s", d, burst*int(time.Second/every))
	}

	ups := rAll.Got()
	got, dropped := 0, 0
	for i, u := range ups {
		if len(u.Events) > maxEv {
			t.Errorf("batch %d holds %d events, over MaxEvents %d", i, len(u.Events), maxEv)
		}
		got += len(u.Events)
		dropped += u.Dropped
	}
	t.Logf("slow consumer: %d batches, %d events delivered, %d dropped", len(ups), got, dropped)
	if len(ups) < 2 || got+dropped < sent {
		t.Errorf("slow consumer: delivered %d + dropped %d < %d flows sent: events lost without being counted", got, dropped, sent)
	}
	if dropped == 0 {
		t.Errorf("slow consumer: nothing dropped although it did not read %d events", sent)
	}
	if maxUps := int(time.Since(start)/opt.Interval) + 2; len(ups) > maxUps {
		t.Errorf("slow consumer: %d batches, more than one per interval", len(ups))
	}

	if d := rTiny.dropped(); d == 0 {
		t.Errorf("a 4 KiB socket buffer under the flood: Dropped stayed 0")
	} else {
		t.Logf("tiny buffer: %d events dropped by the kernel, reported", d)
	}
	for _, r := range []*watchRec{rTCP, rAll, rTiny} {
		r.noErrs(t, "watch")
	}
	t.Logf("heap in use %d KiB before the flood, %d KiB after; total %s",
		mem0.HeapInuse>>10, mem1.HeapInuse>>10, time.Since(start).Round(time.Millisecond))
	if grow := int64(mem1.HeapInuse) - int64(mem0.HeapInuse); grow > 32<<20 {
		t.Errorf("heap grew by %d MiB during the flood", grow>>20)
	}
}

// TestWatchNoGoroutineLeak cancels watches in every state and checks that
// the goroutine count returns to where it was.
func TestWatchNoGoroutineLeak(t *testing.T) {
	ns := probetest.NewNS(t)
	probetest.TrackConntrack(t, ns)
	tg := openTarget(t, ns.Name)
	f := parseFlow(t, "tcp 192.0.2.10:40031 192.0.2.20:8080")
	opt := watch.Options{Interval: 100 * time.Millisecond}

	run := func(name string, read bool, pre bool) {
		ctx, cancel := context.WithCancel(t.Context())
		if pre {
			cancel()
		}
		ch := watch.Start(ctx, tg, f, opt)
		if read {
			for i := 0; i < 2; i++ {
				select {
				case <-ch:
				case <-time.After(2 * time.Second):
					t.Fatalf("%s: no update within 2s", name)
				}
			}
		} else if !pre {
			time.Sleep(350 * time.Millisecond) // nobody reads: batches merge
		}
		cancel()
		probetest.WaitClosed(t, ch, name)
	}
	run("warm-up", true, false) // lets libraries start what they keep for good
	runtime.GC()
	base := runtime.NumGoroutine()
	run("reading", true, false)
	run("not reading", false, false)
	run("cancelled before", false, true)
	probetest.WaitGoroutines(t, base)
}

// BenchmarkWatchSample is the per-interval cost of a sample: the kernel
// counters (counter.Read: a thread entering the namespace, five /proc
// files) and one watched rule's chain.
func BenchmarkWatchSample(b *testing.B) {
	ns := probetest.NewNS(b)
	// `table inet filter { chain forward { type filter hook forward
	// priority 0; ct state invalid counter drop } }`: one watched rule.
	probetest.FilterRule(b, ns, "forward", nftables.ChainHookForward, probetest.CtInvalidDrop()...)
	tg := openTarget(b, ns.Name)
	ctx := b.Context()
	s := watch.NewSampler(tg)
	defer s.Close()
	if smp, errs := s.Sample(ctx); len(errs) != 0 || len(smp.Counters) != len(watch.CounterKeys)+1 {
		b.Fatalf("sample: %v, errors %v", smp.Counters, errs)
	}
	b.Run("sample", func(b *testing.B) {
		for b.Loop() {
			s.Sample(ctx)
		}
	})
	b.Run("counters", func(b *testing.B) {
		for b.Loop() {
			counter.Read(ctx, tg)
		}
	})
	b.Run("rules", func(b *testing.B) {
		into := map[string]uint64{}
		for b.Loop() {
			s.ReadRules(ctx, into)
		}
	})
}

package probes

import (
	"context"
	"encoding/binary"
	"errors"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// watchRec records what a watch delivers.
type watchRec struct {
	streamRec[evidence.WatchUpdate]
}

func watchRecord(ch <-chan evidence.WatchUpdate) *watchRec {
	return &watchRec{recordStream(ch, func(u evidence.WatchUpdate) (int, error) { return u.Dropped, u.Err })}
}

func (r *watchRec) events() []evidence.CtEvent {
	var out []evidence.CtEvent
	for _, u := range r.Got() {
		out = append(out, u.Events...)
	}
	return out
}

func (r *watchRec) samples() []*evidence.Sample {
	var out []*evidence.Sample
	for _, u := range r.Got() {
		if u.Sample != nil {
			out = append(out, u.Sample)
		}
	}
	return out
}

// until polls cond for up to d (probetest.Poll).
func (r *watchRec) until(d time.Duration, cond func(*watchRec) bool) bool {
	return probetest.Poll(d, func() bool { return cond(r) })
}

func watchHasSample(r *watchRec) bool { return len(r.samples()) > 0 }

// watchMaxRate is the highest per-second rate of key between consecutive samples.
func watchMaxRate(samples []*evidence.Sample, key string) float64 {
	best := math.Inf(-1)
	for i := 1; i < len(samples); i++ {
		if v, ok := evidence.Rates(samples[i-1], samples[i])[key]; ok && v > best {
			best = v
		}
	}
	return best
}

func watchLogEvents(t *testing.T, name string, evs []evidence.CtEvent) {
	t.Helper()
	for _, e := range evs {
		t.Logf("%s: %s %s (matched as %s)", name, e.Time.Format("15:04:05.000"), e.Entry.Text, e.Entry.MatchedAs)
	}
}

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
	opt := WatchOptions{Interval: 200 * time.Millisecond}
	r2, r1 := watchRecord(Watch(wctx, fw2, f, opt)), watchRecord(Watch(wctx, fw1, f, opt))
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
func watchPair(t *testing.T) (a, b probetest.NS, tb *Target) {
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
	opt := WatchOptions{Interval: 100 * time.Millisecond}
	rf := watchRecord(Watch(ctx, tb, f, opt))
	rr := watchRecord(Watch(ctx, tb, f.Reverse(), opt))
	ra := watchRecord(Watch(ctx, tb, parseFlow(t, "tcp 192.0.2.10 192.0.2.20"), opt))
	other := watchRecord(Watch(ctx, tb, parseFlow(t, "tcp 192.0.2.10:40012 192.0.2.20:8080"), opt))

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
	opt := WatchOptions{Interval: 200 * time.Millisecond}
	rTCP := watchRecord(Watch(ctx, tg, f, opt))
	// Every flood packet matches a flow given without ports; its consumer
	// stays away during the flood.
	const maxEv = 64
	allCh := Watch(ctx, tg, parseFlow(t, "udp 192.0.2.1 192.0.2.2"), WatchOptions{Interval: opt.Interval, MaxEvents: maxEv})
	if c := cap(allCh); c > 2 {
		t.Errorf("channel capacity %d: want a small buffer", c)
	}
	// A receive buffer of a few events cannot follow the flood.
	saved := watchRcvBuf
	watchRcvBuf = 4096
	rTiny := watchRecord(Watch(ctx, tg, f, opt))
	watchRcvBuf = saved
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
	opt := WatchOptions{Interval: 100 * time.Millisecond}

	run := func(name string, read bool, pre bool) {
		ctx, cancel := context.WithCancel(t.Context())
		if pre {
			cancel()
		}
		ch := Watch(ctx, tg, f, opt)
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

func TestWatchRates(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	s := func(d time.Duration, kv ...any) *evidence.Sample {
		m := map[string]uint64{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = uint64(kv[i+1].(int))
		}
		return &evidence.Sample{Time: t0.Add(d), Counters: m}
	}
	for _, tc := range []struct {
		name      string
		prev, cur *evidence.Sample
		want      map[string]float64
	}{
		{"nil prev", nil, s(time.Second, "a", 1), map[string]float64{}},
		{"nil cur", s(0, "a", 1), nil, map[string]float64{}},
		{"same instant", s(0, "a", 1), s(0, "a", 5), map[string]float64{}},
		{"out of order", s(time.Second, "a", 1), s(0, "a", 5), map[string]float64{}},
		{"one second", s(0, "a", 1, "b", 7), s(time.Second, "a", 4, "b", 7), map[string]float64{"a": 3, "b": 0}},
		{"half a second", s(0, "a", 10), s(500*time.Millisecond, "a", 11), map[string]float64{"a": 2}},
		{"only keys in both", s(0, "a", 1, "gone", 3), s(2*time.Second, "a", 5, "new", 9), map[string]float64{"a": 2}},
		{"backwards", s(0, "rule:inet filter forward #2", 10), s(time.Second, "rule:inet filter forward #2", 4), map[string]float64{"rule:inet filter forward #2": -6}},
		{"big counters", s(0, "a", math.MaxInt-1), s(time.Second, "a", math.MaxInt), map[string]float64{"a": 1}},
	} {
		got := evidence.Rates(tc.prev, tc.cur)
		if got == nil {
			t.Errorf("%s: nil map, want an empty one", tc.name)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
				t.Errorf("%s: %s = %v, want %v (all: %v)", tc.name, k, g, v, got)
			}
		}
	}
}

// Synthetic ctnetlink events, for what needs no kernel.

type ctTestTuple struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
}

// Attributes only the tests write (nfnetlink_conntrack.h).
const (
	ctaTestStatus    = 3  // CTA_STATUS, be32
	ctaTestProtoInfo = 4  // CTA_PROTOINFO
	ctaTestTimeout   = 7  // CTA_TIMEOUT, be32
	ctaTestID        = 12 // CTA_ID, be32
	ctaTestInfoTCP   = 1  // CTA_PROTOINFO_TCP
	ctaTestTCPState  = 1  // CTA_PROTOINFO_TCP_STATE
	ipsConfirmed     = 1 << 3
	ipsSeenReply     = 1 << 1
)

// ctTestMsg builds an event as ctnetlink_conntrack_event lays it out:
// nlmsghdr, nfgenmsg, both tuples first, then status, timeout, protoinfo, id.
func ctTestMsg(tb testing.TB, msgType uint8, flags mdnetlink.HeaderFlags, orig, reply ctTestTuple, status uint32, tcpState uint8) []byte {
	tb.Helper()
	tuple := func(tt ctTestTuple) func(*mdnetlink.AttributeEncoder) error {
		return func(ae *mdnetlink.AttributeEncoder) error {
			s, d := netip.MustParseAddr(tt.src), netip.MustParseAddr(tt.dst)
			ae.Nested(ctaTupleIP, func(ip *mdnetlink.AttributeEncoder) error {
				if s.Is4() {
					ip.Bytes(ctaIPv4Src, s.AsSlice())
					ip.Bytes(ctaIPv4Dst, d.AsSlice())
				} else {
					ip.Bytes(ctaIPv6Src, s.AsSlice())
					ip.Bytes(ctaIPv6Dst, d.AsSlice())
				}
				return nil
			})
			ae.Nested(ctaTupleProto, func(p *mdnetlink.AttributeEncoder) error {
				p.Uint8(ctaProtoNum, tt.proto)
				if tt.proto == unix.IPPROTO_TCP || tt.proto == unix.IPPROTO_UDP {
					p.Uint16(ctaProtoSrcPort, tt.sport)
					p.Uint16(ctaProtoDstPort, tt.dport)
				}
				return nil
			})
			return nil
		}
	}
	ae := mdnetlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // ctnetlink values are network order
	ae.Nested(ctaTupleOrig, tuple(orig))
	ae.Nested(ctaTupleReply, tuple(reply))
	ae.Uint32(ctaTestStatus, status)
	ae.Uint32(ctaTestTimeout, 120)
	if orig.proto == unix.IPPROTO_TCP {
		ae.Nested(ctaTestProtoInfo, func(pi *mdnetlink.AttributeEncoder) error {
			pi.Nested(ctaTestInfoTCP, func(tcp *mdnetlink.AttributeEncoder) error {
				tcp.Uint8(ctaTestTCPState, tcpState)
				return nil
			})
			return nil
		})
	}
	ae.Uint32(ctaTestID, 0x12345678)
	data, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	fam := byte(unix.AF_INET)
	if netip.MustParseAddr(orig.src).Is6() {
		fam = unix.AF_INET6
	}
	data = append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, data...)
	m := mdnetlink.Message{
		Header: mdnetlink.Header{
			Length: uint32(nlmsgHdrLen + len(data)),
			Type:   mdnetlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | uint16(msgType)),
			Flags:  flags,
		},
		Data: data,
	}
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestWatchMatcher(t *testing.T) {
	fwd := ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}
	back := ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}
	natBack := ctTestTuple{"203.0.113.10", "198.51.100.1", 6, 8080, 61000} // SNAT to 198.51.100.1:61000
	for _, tc := range []struct {
		name        string
		flow        string
		orig, reply ctTestTuple
		want        ctHit
	}{
		{"as typed", "tcp 192.0.2.10:40000 203.0.113.10:8080", fwd, back, ctHitOrig},
		{"reversed", "tcp 203.0.113.10:8080 192.0.2.10:40000", fwd, back, ctHitReply},
		{"other source port", "tcp 192.0.2.10:40001 203.0.113.10:8080", fwd, back, ctNoHit},
		{"other destination port", "tcp 192.0.2.10:40000 203.0.113.10:8081", fwd, back, ctNoHit},
		{"other address", "tcp 192.0.2.11:40000 203.0.113.10:8080", fwd, back, ctNoHit},
		{"other protocol", "udp 192.0.2.10:40000 203.0.113.10:8080", fwd, back, ctNoHit},
		{"no ports", "tcp 192.0.2.10 203.0.113.10", fwd, back, ctHitOrig},
		{"no ports, reversed", "tcp 203.0.113.10 192.0.2.10", fwd, back, ctHitReply},
		{"destination port only", "tcp 192.0.2.10 203.0.113.10:8080", fwd, back, ctHitOrig},
		{"destination port only, other", "tcp 192.0.2.10 203.0.113.10:443", fwd, back, ctNoHit},
		// Behind SNAT the far side answers the rewritten source: the flow
		// as seen after NAT is neither tuple, its reverse is the reply.
		{"after SNAT", "tcp 198.51.100.1:61000 203.0.113.10:8080", fwd, natBack, ctHitReplyRev},
		{"reply before NAT", "tcp 203.0.113.10:8080 192.0.2.10:40000", fwd, natBack, ctHitOrigRev},
		{"IPv6", "tcp [2001:db8::1]:40000 [2001:db8::2]:443",
			ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 443}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 443, 40000}, ctHitOrig},
		{"IPv6 event, IPv4 flow", "tcp 192.0.2.10:40000 203.0.113.10:8080",
			ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 8080}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 8080, 40000}, ctNoHit},
		{"ICMP by addresses", "icmp 192.0.2.10 203.0.113.10",
			ctTestTuple{"192.0.2.10", "203.0.113.10", 1, 0, 0}, ctTestTuple{"203.0.113.10", "192.0.2.10", 1, 0, 0}, ctHitOrig},
	} {
		f := parseFlow(t, tc.flow)
		m, err := newCtMatcher(f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg := ctTestMsg(t, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl, tc.orig, tc.reply, ipsConfirmed, 1)
		if got := m.match(msg); got != tc.want {
			t.Errorf("%s: match = %d, want %d", tc.name, got, tc.want)
		}
		// A message cut anywhere must not make the walk panic.
		for n := range len(msg) {
			m.match(msg[:n])
		}
	}
	if _, err := newCtMatcher(flow.Flow{Proto: flow.TCP}); err == nil {
		t.Error("a flow without addresses: no error")
	}
}

// TestWatchEventText decodes synthetic events through the same path as
// the kernel's and checks the conntrack -E rendering.
func TestWatchEventText(t *testing.T) {
	fwd := ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}
	back := ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}
	for _, tc := range []struct {
		flow   string
		typ    uint8
		flags  mdnetlink.HeaderFlags
		status uint32
		state  uint8
		want   string
		as     string
	}{
		{"tcp 192.0.2.10:40000 203.0.113.10:8080", ipctnlMsgCtNew, mdnetlink.Create | mdnetlink.Excl, ipsConfirmed, 1,
			"[NEW] tcp      6 120 SYN_SENT src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 [UNREPLIED] src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "original"},
		{"tcp 203.0.113.10 192.0.2.10", ipctnlMsgCtNew, 0, ipsConfirmed | ipsSeenReply, 2,
			"[UPDATE] tcp      6 120 SYN_RECV src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "reply"},
		{"tcp 192.0.2.10:40000 203.0.113.10:8080", ipctnlMsgCtDel, 0, ipsConfirmed | ipsSeenReply, 7,
			"[DESTROY] tcp      6 120 TIME_WAIT src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "original"},
	} {
		f := parseFlow(t, tc.flow)
		m, _ := newCtMatcher(f)
		b := &watchBatch{max: 10}
		w := &ctWatch{f: f, m: m, batch: b}
		w.handle(ctTestMsg(t, tc.typ, tc.flags, fwd, back, tc.status, tc.state))
		if len(b.u.Events) != 1 {
			t.Fatalf("%s: %d events, dropped %d", tc.want, len(b.u.Events), b.u.Dropped)
		}
		e := b.u.Events[0]
		if e.Entry.Text != tc.want || e.Entry.MatchedAs != tc.as || e.Time.IsZero() {
			t.Errorf("event = %q matched as %q\nwant    %q matched as %q", e.Entry.Text, e.Entry.MatchedAs, tc.want, tc.as)
		}
	}
	// Not ctnetlink, or not an event type: ignored.
	f := parseFlow(t, "tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	b := &watchBatch{max: 10}
	w := &ctWatch{f: f, m: m, batch: b}
	msg := ctTestMsg(t, 1 /* IPCTNL_MSG_CT_GET */, 0, fwd, back, ipsConfirmed, 1)
	w.handle(msg)
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_CTNETLINK_EXP<<8)
	w.handle(msg)
	if len(b.u.Events) != 0 || b.u.Dropped != 0 {
		t.Errorf("non-events were taken: %+v", b.u)
	}
}

func TestWatchBatch(t *testing.T) {
	b := &watchBatch{max: 3}
	out := make(chan evidence.WatchUpdate, 1)
	if b.flush(out) {
		t.Error("an empty batch was sent")
	}
	for i := 0; i < 5; i++ {
		b.event(evidence.CtEvent{Type: "NEW"})
	}
	b.setSample(&evidence.Sample{Time: time.Unix(1, 0)})
	if !b.flush(out) {
		t.Fatal("the first batch was not sent")
	}
	// The consumer is away: the next batches merge.
	b.event(evidence.CtEvent{Type: "UPDATE"})
	b.setSample(&evidence.Sample{Time: time.Unix(2, 0)})
	if b.flush(out) {
		t.Fatal("sent into a full channel")
	}
	for i := 0; i < 4; i++ {
		b.event(evidence.CtEvent{Type: "DESTROY"})
	}
	b.setSample(&evidence.Sample{Time: time.Unix(3, 0)})
	b.dropped(7)
	for i := 0; i < 10; i++ {
		b.fail(errors.New("same sentence"))
	}
	for i := 0; i < 10; i++ {
		b.fail(errors.New("sentence " + string(rune('a'+i))))
	}
	u1 := <-out
	if len(u1.Events) != 3 || u1.Dropped != 2 || !u1.Sample.Time.Equal(time.Unix(1, 0)) {
		t.Errorf("first batch: %d events, %d dropped, sample %v; want 3, 2, t=1", len(u1.Events), u1.Dropped, u1.Sample.Time)
	}
	if !b.flush(out) {
		t.Fatal("the merged batch was not sent")
	}
	u2 := <-out
	if len(u2.Events) != 3 || u2.Events[0].Type != "UPDATE" || u2.Dropped != 2+7 || !u2.Sample.Time.Equal(time.Unix(3, 0)) {
		t.Errorf("merged batch: %d events (first %s), %d dropped, sample %v; want 3 (UPDATE first), 9, the newest (t=3)",
			len(u2.Events), u2.Events[0].Type, u2.Dropped, u2.Sample.Time)
	}
	if n := strings.Count(u2.Err.Error(), "\n") + 1; n != watchMaxErrs || !strings.HasPrefix(u2.Err.Error(), "same sentence\n") {
		t.Errorf("merged errors: %d lines, want %d distinct:\n%v", n, watchMaxErrs, u2.Err)
	}
	if b.flush(out) {
		t.Error("an empty batch was sent after the merge")
	}
}

func TestWatchWithoutTarget(t *testing.T) {
	ch := Watch(t.Context(), nil, flow.Flow{}, WatchOptions{})
	u, ok := <-ch
	if !ok || u.Err == nil {
		t.Fatalf("want one update with an error, got %+v (open %v)", u, ok)
	}
	if _, ok := <-ch; ok {
		t.Error("the channel stayed open")
	}
}

// BenchmarkWatchFilter is the per-event cost of the filter on events of
// other flows, what a busy firewall sends 50,000 times a second.
func BenchmarkWatchFilter(b *testing.B) {
	f, _ := flow.ParseString("tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	for _, bc := range []struct {
		name        string
		orig, reply ctTestTuple
	}{
		{"other addresses", ctTestTuple{"198.51.100.7", "203.0.113.99", 6, 51000, 443}, ctTestTuple{"203.0.113.99", "198.51.100.7", 6, 443, 51000}},
		{"same hosts other port", ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40001, 8080}, ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40001}},
		{"IPv6", ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 8080}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 8080, 40000}},
	} {
		msg := ctTestMsg(b, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl, bc.orig, bc.reply, ipsConfirmed, 1)
		w := &ctWatch{f: f, m: m, batch: &watchBatch{max: 1}}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.handle(msg)
			}
			if len(w.batch.u.Events) != 0 {
				b.Fatal("a non-matching event matched")
			}
		})
	}
}

// BenchmarkWatchDecode is the cost of an event of the watched flow:
// decoding with the library and rendering.
func BenchmarkWatchDecode(b *testing.B) {
	f, _ := flow.ParseString("tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	msg := ctTestMsg(b, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl,
		ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}, ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}, ipsConfirmed, 1)
	b.ReportAllocs()
	for b.Loop() {
		w := &ctWatch{f: f, m: m, batch: &watchBatch{max: 1}}
		w.handle(msg)
	}
}

// BenchmarkWatchSample is the per-interval cost of a sample: the kernel
// counters (ProbeCounters: a thread entering the namespace, five /proc
// files) and one watched rule's chain.
func BenchmarkWatchSample(b *testing.B) {
	ns := probetest.NewNS(b)
	// `table inet filter { chain forward { type filter hook forward
	// priority 0; ct state invalid counter drop } }`: one watched rule.
	probetest.FilterRule(b, ns, "forward", nftables.ChainHookForward, probetest.CtInvalidDrop()...)
	tg := openTarget(b, ns.Name)
	ctx := b.Context()
	s := &watchSampler{t: tg, fw: &fwWatch{t: tg, fd: -1}}
	defer s.fw.close()
	if smp, errs := s.sample(ctx); len(errs) != 0 || len(smp.Counters) != len(watchCounterKeys)+1 {
		b.Fatalf("sample: %v, errors %v", smp.Counters, errs)
	}
	b.Run("sample", func(b *testing.B) {
		for b.Loop() {
			s.sample(ctx)
		}
	})
	b.Run("counters", func(b *testing.B) {
		for b.Loop() {
			ProbeCounters(ctx, tg)
		}
	})
	b.Run("rules", func(b *testing.B) {
		into := map[string]uint64{}
		for b.Loop() {
			s.fw.read(ctx, into)
		}
	})
}

package trace

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/probetest"

	"golang.org/x/sys/unix"
)

// quick bounds the tests' runs: answers in these namespaces take well under
// a millisecond, so a short wait for silent hops keeps each test fast.
var quick = Options{MaxHops: 8, Wait: 300 * time.Millisecond, Interval: 20 * time.Millisecond}

func tcpFlow(src string, sport uint16, dst string, dport uint16) flow.Flow {
	return flow.Flow{Proto: flow.TCP, Src: netip.AddrPortFrom(netip.MustParseAddr(src), sport), Dst: netip.AddrPortFrom(netip.MustParseAddr(dst), dport)}
}

// nextHop asks a router's kernel where it forwards a flow arriving on iif:
// the same lookup, ports and all, that its ECMP hash makes for the packet.
func nextHop(t *testing.T, tg *probes.Target, f flow.Flow, iif string) string {
	t.Helper()
	d, err := tg.RouteGet(t.Context(), evidence.RouteQuery{Dst: f.Dst.Addr(), Src: f.Src.Addr(), Iif: iif, Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()})
	if err != nil || d.Failed() {
		t.Fatalf("route get %s iif %s: %v %s", f, iif, err, d.Text)
	}
	return d.Dev
}

func show(p evidence.TracePath) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: stopped %q, reached %v, sent %d, %s %s", p.Shape, p.Tuple.Arrow(), p.Stopped, p.Reached, p.Sent, p.Elapsed.Round(time.Millisecond), p.Unavailable)
	for _, h := range p.Hops {
		fmt.Fprintf(&b, "\n  %2d %-15s %-13s %d/%d in %s %s", h.TTL, h.Addr, h.Answer, h.Answered, h.Sent, h.Iface, h.NAT)
	}
	if p.Control != nil {
		b.WriteString("\n control: " + strings.ReplaceAll(show(*p.Control), "\n", "\n  "))
	}
	return b.String()
}

func addr(h *evidence.TraceHop) netip.Addr {
	if h == nil {
		return netip.Addr{}
	}
	return h.Addr
}

// TestTraceFollowsTheFlowsNextHop: r1 spreads the server's subnet over a
// and b by a nexthop group hashing addresses, protocol and ports. For two
// client ports that r1's kernel sends different ways, the trace of each
// crosses the router its own port hashes to: the probes carry the flow's
// tuple, not a traceroute's changing ports.
func TestTraceFollowsTheFlowsNextHop(t *testing.T) {
	n := pairNet(t, false)
	r1, client := n.target("r1"), n.target("client")
	via := map[string]uint16{}
	for p := uint16(40000); p < 40100 && len(via) < 2; p++ {
		dev := nextHop(t, r1, tcpFlow(pairClient, p, pairServer, pairPort), "eth0")
		if _, ok := via[dev]; !ok {
			via[dev] = p
		}
	}
	if len(via) != 2 {
		t.Fatalf("100 client ports all hash to one next hop on r1 (%v): is fib_multipath_hash_policy 1 honoured?", via)
	}
	for dev, want := range map[string]string{"eth1": aR1, "eth2": bR1} {
		f := tcpFlow(pairClient, via[dev], pairServer, pairPort)
		p := Path(t.Context(), client, Request{Flow: f, Direction: evidence.TraceRequest, Options: quick})
		t.Log(show(p))
		if p.Unavailable != "" || !p.Traced {
			t.Fatalf("%s: not traced: %s", f, p.Unavailable)
		}
		if p.Tuple != f {
			t.Errorf("the probes carried %s, want the flow's own tuple %s (nothing holds it)", p.Tuple, f)
		}
		if h0 := p.Hop(0); h0 == nil || h0.Addr != netip.MustParseAddr(r1Client) || h0.Iface != "eth0" || h0.Answer != evidence.AnswerRoute {
			t.Errorf("hop 0 is %+v, want the kernel's decision via %s dev eth0", h0, r1Client)
		}
		if got := addr(p.Hop(1)); got != netip.MustParseAddr(r1Client) {
			t.Errorf("hop 1 answered from %s, want r1 (%s)", got, r1Client)
		}
		if got := addr(p.Hop(2)); got != netip.MustParseAddr(want) {
			t.Errorf("port %d: hop 2 is %s, want %s: r1 sends this port by %s", f.Src.Port(), got, want, dev)
		}
		if h := p.Hop(4); !p.Reached || h == nil || h.Addr != netip.MustParseAddr(pairServer) || h.Answer != evidence.AnswerDestination {
			t.Errorf("the server (hop 4) should answer the SYN (RST from its closed port): reached %v, hop 4 %+v", p.Reached, h)
		}
		if p.Sent != 12 {
			t.Errorf("sent %d probes, want 3 per TTL for 4 TTLs", p.Sent)
		}
	}
}

// TestTraceFirewallPair: a and b are a firewall pair without state sync
// behind the ECMP routers. For a client port that r1 hashes through a and
// r2 hashes back through b: the server sees the request's probes arrive
// (though its answers die at b); the reply's SYN-ACKs are answered by r2
// and b and nothing after; a SYN with the same tuple gets one hop further.
func TestTraceFirewallPair(t *testing.T) {
	n := pairNet(t, true)
	r1, r2, client, server := n.target("r1"), n.target("r2"), n.target("client"), n.target("server")
	var f flow.Flow
	for p := uint16(40000); p < 40200 && f.Src.Port() == 0; p++ {
		g := tcpFlow(pairClient, p, pairServer, pairPort)
		if nextHop(t, r1, g, "eth0") == "eth1" && nextHop(t, r2, g.Reverse(), "eth0") == "eth2" {
			f = g
		}
	}
	if f.Src.Port() == 0 {
		t.Fatal("no client port in 40000-40199 goes by a and comes back by b")
	}
	obs, err := Observe(t.Context(), server, f)
	if err != nil {
		t.Fatal(err)
	}
	fwd := Path(t.Context(), client, Request{Flow: f, Direction: evidence.TraceRequest, Options: quick})
	fwd.Arrived = obs.Stop()
	t.Log(show(fwd))
	if got := addr(fwd.Hop(2)); got != netip.MustParseAddr(aR1) {
		t.Errorf("the request's hop 2 is %s, want a (%s)", got, aR1)
	}
	if fwd.Reached {
		t.Error("the client heard the server: its answers should die at b, which has no state")
	}
	if got := fwd.ArrivedHops(); got != 4 {
		t.Errorf("the server saw the request's probes arrive after %d hops (%v), want 4", got, fwd.Arrived)
	}
	rev := Path(t.Context(), server, Request{Flow: f, Direction: evidence.TraceReply, Options: quick, DestHops: fwd.ArrivedHops()})
	t.Log(show(rev))
	if rev.Shape != evidence.ShapeSYNACK || rev.Tuple != f.Reverse() {
		t.Errorf("the reply was traced with %s %s, want SYN-ACKs with the reply's tuple %s", rev.Shape, rev.Tuple, f.Reverse())
	}
	for ttl, want := range map[int]string{1: r2Server, 2: bR2} {
		if got := addr(rev.Hop(ttl)); got != netip.MustParseAddr(want) {
			t.Errorf("the reply's hop %d is %s, want %s", ttl, got, want)
		}
	}
	if rev.Reached || rev.LastAnswered() != 2 {
		t.Errorf("the reply's SYN-ACKs should stop after b (hop 2): last answered %d, reached %v", rev.LastAnswered(), rev.Reached)
	}
	c := rev.Control
	if c == nil || c.Shape != evidence.ShapeSYN || c.Hop(3) == nil || !c.Hop(3).Addr.IsValid() {
		t.Fatalf("a SYN with the reply's tuple should pass b and be answered at hop 3 (r1): %+v", c)
	}
	if h := c.Hop(3); h.Addr != netip.MustParseAddr(r1A) && h.Addr != netip.MustParseAddr(r1B) {
		t.Errorf("hop 3 of the SYN answered from %s, want r1 (%s or %s)", h.Addr, r1A, r1B)
	}
	if len(c.Hops) != 1 {
		t.Errorf("the control sent %d TTLs, want just the one after the last answer", len(c.Hops))
	}
}

// TestTraceNothingAnswers: behind a router that drops everything from the
// client before routing (so it neither forwards nor answers for the TTL),
// every hop is empty and the trace ends after three silent hops, in time.
func TestTraceNothingAnswers(t *testing.T) {
	n := pairNet(t, false)
	n.silent("r1", pairClient)
	f := tcpFlow(pairClient, 40001, pairServer, pairPort)
	o := quick
	o.Wait = 200 * time.Millisecond
	start := time.Now()
	p := Path(t.Context(), n.target("client"), Request{Flow: f, Direction: evidence.TraceRequest, Options: o})
	took := time.Since(start)
	t.Log(show(p))
	if len(p.Hops) != 4 || p.Reached {
		t.Fatalf("want hop 0 and three silent hops, got %d hops (reached %v)", len(p.Hops), p.Reached)
	}
	for _, h := range p.Hops[1:] {
		if h.Addr.IsValid() || h.Answered != 0 || h.Sent != 3 || h.Answer != "" {
			t.Errorf("hop %d: %+v, want no answer to 3 probes", h.TTL, h)
		}
	}
	if !strings.Contains(p.Stopped, "3 hops in a row") {
		t.Errorf("stopped %q, want after 3 silent hops", p.Stopped)
	}
	// 3 TTLs of 3 probes 20 ms apart, each waiting 200 ms for answers.
	if took > 3*time.Second {
		t.Errorf("took %s: a silent path must end within its waits", took)
	}
}

// TestTraceNotesNAT: gw translates the address the client connects to.
// Linux's NAT (conntrack DNAT) translates every ICMP error back into the
// flow's form, outer source included, so the routers at and after it
// answer from the flow's own destination; a stateless rewrite does not, so
// the translator (which rewrites before its TTL check) and the router
// after it quote the header as rewritten. Either way the trace notes NAT
// at every hop from the translator on, and reaches the server.
func TestTraceNotesNAT(t *testing.T) {
	vip := netip.MustParseAddr("198.51.100.100")
	for _, tc := range []struct {
		name      string
		translate func(n *testNet)
		note      string
	}{
		{"conntrack DNAT", func(n *testNet) {
			n.dnat("gw", netip.AddrPortFrom(vip, pairPort), netip.AddrPortFrom(netip.MustParseAddr(pairServer), pairPort))
		}, "answers time-exceeded from the flow's own destination 198.51.100.100"},
		{"stateless rewrite", func(n *testNet) {
			n.rewrite("gw", vip, netip.MustParseAddr(pairServer))
		}, "the answer quotes destination 203.0.113.10:8080 (sent 198.51.100.100:8080)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestNet(t, []string{"gw", "r"}, "client", "server")
			n.link("client", "eth0", pairClient+"/24", "gw", "eth0", r1Client+"/24")
			n.link("gw", "eth1", r1A+"/30", "r", "eth0", aR1+"/30")
			n.link("r", "eth1", r2Server+"/24", "server", "eth0", pairServer+"/24")
			n.route("client", "default", r1Client)
			n.route("gw", "203.0.113.0/24", aR1)
			n.route("r", "192.0.2.0/24", r1A)
			n.route("server", "default", r2Server)
			tc.translate(n)
			f := tcpFlow(pairClient, 40001, vip.String(), pairPort)
			p := Path(context.Background(), n.target("client"), Request{Flow: f, Direction: evidence.TraceRequest, Options: quick})
			t.Log(show(p))
			for ttl := 1; ttl <= 2; ttl++ {
				if h := p.Hop(ttl); h == nil || !strings.Contains(h.NAT, tc.note) {
					t.Errorf("hop %d should note the translation (%q): %+v", ttl, tc.note, h)
				}
			}
			if h := p.Hop(3); h == nil || h.NAT != "" || h.Answer != evidence.AnswerDestination {
				t.Errorf("hop 3 is the server, answering in the flow's form: %+v", h)
			}
			if !p.Reached {
				t.Error("the server should answer through the translator")
			}
		})
	}
}

// TestTraceNeedsCapNetRaw: on a thread without root (so without
// CAP_NET_RAW) the raw socket is refused, and the path says why instead of
// failing the run.
func TestTraceNeedsCapNetRaw(t *testing.T) {
	n := pairNet(t, false)
	rawSocket = func(domain, typ, proto int) (int, error) {
		// setresuid on this thread only (the raw system call; Go's
		// Setresuid changes every thread). The thread is the namespace
		// thread of Target.InNS, which is never reused.
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
			return -1, e
		}
		return unix.Socket(domain, typ, proto)
	}
	t.Cleanup(func() { rawSocket = unix.Socket })
	p := Path(t.Context(), n.target("client"), Request{Flow: tcpFlow(pairClient, 40001, pairServer, pairPort), Direction: evidence.TraceRequest, Options: quick})
	if p.Traced || p.Sent != 0 || !strings.Contains(p.Unavailable, "needs CAP_NET_RAW") {
		t.Errorf("traced %v, sent %d, unavailable %q: want nothing sent and why", p.Traced, p.Sent, p.Unavailable)
	}
	if h := p.Hop(0); h == nil || h.Addr != netip.MustParseAddr(r1Client) {
		t.Errorf("hop 0 (the kernel's decision needs no raw socket) is %+v", h)
	}
}

// TestTraceKeepsOffALiveConnection: the flow's tuple belongs to an
// established connection on the client. The probes must not carry it (the
// server's answer to a SYN would land in that connection): they use a
// fresh client port that this host sends by the same hop 0, say so, and the
// connection still carries data afterwards.
func TestTraceKeepsOffALiveConnection(t *testing.T) {
	n := pairNet(t, false)
	ln := probetest.Listen(t, n.ns["server"], pairServer+":8080")
	client, server := probetest.Connect(t, n.ns["client"], ln, pairClient+":40001", pairServer+":8080")
	f := tcpFlow(pairClient, 40001, pairServer, pairPort)
	p := Path(t.Context(), n.target("client"), Request{Flow: f, Direction: evidence.TraceRequest, Options: quick})
	t.Log(show(p), "\n", strings.Join(p.Notes, "\n "))
	if p.Tuple.Src.Port() == f.Src.Port() || p.Tuple.Src.Addr() != f.Src.Addr() || p.Tuple.Dst != f.Dst {
		t.Fatalf("the probes carried %s: want the flow with another client port", p.Tuple)
	}
	if !strings.Contains(p.Held, "ESTABLISHED") {
		t.Errorf("held %q: want the established socket named", p.Held)
	}
	found := false
	for _, note := range p.Notes {
		found = found || strings.Contains(note, "live connection") && strings.Contains(note, fmt.Sprintf("client port %d instead of 40001", p.Tuple.Src.Port()))
	}
	if !found {
		t.Errorf("the notes do not say which port was used instead: %q", p.Notes)
	}
	if !p.Reached {
		t.Error("the fresh port's probes should reach the server")
	}
	for _, c := range [][2]*net.TCPConn{{client, server}, {server, client}} {
		if _, err := c[0].Write([]byte("pong")); err != nil {
			t.Fatalf("the connection broke: %v", err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c[1], buf); err != nil {
			t.Fatalf("the connection broke: %v", err)
		}
	}
}

// TestTraceUDPAndICMP: a UDP trace to a closed port is answered by the
// server's port unreachable; to a port a service listens on, it stops at the
// first hop no router answers (capped), so at most one TTL's datagrams
// reach the service. An ICMP trace keeps one echo identifier and is
// answered by the server's echo reply.
func TestTraceUDPAndICMP(t *testing.T) {
	n := pairNet(t, false)
	client := n.target("client")
	udp := flow.Flow{Proto: flow.UDP, Src: netip.MustParseAddrPort(pairClient + ":40001"), Dst: netip.MustParseAddrPort(pairServer + ":5353")}
	p := Path(t.Context(), client, Request{Flow: udp, Direction: evidence.TraceRequest, Options: quick})
	t.Log(show(p))
	if h := p.Hop(4); !p.Reached || h == nil || h.Addr != netip.MustParseAddr(pairServer) || h.Answer != evidence.AnswerDestination {
		t.Errorf("a closed UDP port answers port unreachable at hop 4: reached %v, %+v", p.Reached, h)
	}
	var got atomic.Int32
	read := make(chan struct{})
	var conn *net.UDPConn
	probetest.Do(t, n.ns["server"].Handle, func() (err error) {
		conn, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(pairServer+":5354")))
		return err
	})
	t.Cleanup(func() { conn.Close() })
	go func() {
		defer close(read)
		buf := make([]byte, 64)
		for {
			if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	served := udp
	served.Dst = netip.MustParseAddrPort(pairServer + ":5354")
	p = Path(t.Context(), client, Request{Flow: served, Direction: evidence.TraceRequest, Options: quick})
	t.Log(show(p))
	if p.Reached || len(p.Hops) != 5 || !strings.HasPrefix(p.Stopped, "capped") {
		t.Errorf("a served UDP port: the trace stops at hop 4, the first silent one: %d hops, stopped %q", len(p.Hops), p.Stopped)
	}
	time.Sleep(100 * time.Millisecond)
	conn.Close()
	<-read
	if n := got.Load(); n > 3 {
		t.Errorf("the service read %d probes, want at most one TTL's (3)", n)
	}
	icmp := flow.Flow{Proto: flow.ICMP, Src: netip.AddrPortFrom(netip.MustParseAddr(pairClient), 0), Dst: netip.AddrPortFrom(netip.MustParseAddr(pairServer), 0)}
	p = Path(t.Context(), client, Request{Flow: icmp, Direction: evidence.TraceRequest, Options: quick})
	t.Log(show(p))
	if h := p.Hop(4); !p.Reached || h == nil || h.Answer != evidence.AnswerDestination || p.Shape != evidence.ShapeEcho {
		t.Errorf("the server answers the echo at hop 4: reached %v, %+v", p.Reached, h)
	}
}

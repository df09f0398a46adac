package drops_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/drops"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// reasonCase makes the kernel drop a flow's packets for one reason on
// purpose, in the middle namespace of a topo or at one end, together with
// drops of other flows for the same reason in the same namespace and of
// the same flow in another namespace, which must not be reported.
type reasonCase struct {
	name   string
	flow   string
	setup  func(t *testing.T, tp *topo)
	watch  func(tp *topo) probetest.NS
	send   func(t *testing.T, tp *topo) // the flow's packets, then other flows'
	want   []wantDrop
	within time.Duration
}

// wantDrop is n drops with one reason, interface and direction.
type wantDrop struct {
	reason string
	n      int
	iface  string
	reply  bool
	quoted bool
}

var reasonCases = []reasonCase{
	{
		// A packet from p's address arrives on eth1: the way back to it
		// leaves by eth0, and strict rp_filter drops it (K4: ip_rcv_finish_core).
		name: "IP_RPFILTER", flow: "udp 198.51.100.2:40000 192.0.2.1:8080",
		setup: func(t *testing.T, tp *topo) {
			probetest.Sysctl(t, tp.h.Handle, "net/ipv4/conf/all/rp_filter", "1")
			addAddr(t, tp.q, "eth0", pAddr)
			// Strict rp_filter also ignores the ARP request from a sender
			// that fails the check: give q the answer (see NEIGH_FAILED).
			staticNeigh(t, tp.q, "eth0", hAddr1, tp.hEth1)
		},
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.q, pAddr+":40000", hAddr1+":8080", 10, 3, false)
			sendUDP(t, tp.q, pAddr+":40001", hAddr1+":8080", 10, 3, false) // another flow, same reason
		},
		want: []wantDrop{{reason: "IP_RPFILTER", n: 3, iface: "eth1"}},
	},
	{
		// An nftables rule in h's input chain drops the flow.
		name: "NETFILTER_DROP", flow: "udp 198.51.100.2:40000 198.51.100.1:7070",
		setup: func(t *testing.T, tp *topo) {
			dropRule(t, tp.h, "input", nftables.ChainHookInput, unix.IPPROTO_UDP, 7070)
		},
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.p, pAddr+":40000", hAddr0+":7070", 10, 3, false)
			sendUDP(t, tp.p, pAddr+":40001", hAddr0+":7070", 10, 3, false)
		},
		want: []wantDrop{{reason: "NETFILTER_DROP", n: 3, iface: "eth0"}},
	},
	{
		// A SYN-ACK that answers no SYN is INVALID to conntrack, and
		// `ct state invalid drop` drops it: the reply of a flow whose
		// request went another way (K7).
		name: "NETFILTER_DROP (ct state invalid)", flow: "tcp 198.51.100.1:40000 198.51.100.2:8080",
		setup: func(t *testing.T, tp *topo) { probetest.TrackConntrack(t, tp.h) },
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			p, h := netip.MustParseAddr(pAddr), netip.MustParseAddr(hAddr0)
			probetest.SendRawTCP(t, tp.p, p, h, probetest.SynAck(p, h, 8080, 40000, 1, 1), probetest.SynAck(p, h, 8080, 40000, 2, 1))
			probetest.SendRawTCP(t, tp.p, p, h, probetest.SynAck(p, h, 8081, 40000, 1, 1), probetest.SynAck(p, h, 8080, 40002, 1, 1))
		},
		want: []wantDrop{{reason: "NETFILTER_DROP", n: 2, iface: "eth0", reply: true}},
	},
	{
		// q sends from p's address: h's strict rp_filter silently ignores
		// q's ARP request (its sender fails the reverse-path check), so q
		// never learns h's MAC and frees the queued packets itself.
		name: "NEIGH_FAILED", flow: "udp 198.51.100.2:40000 192.0.2.1:8080",
		setup: func(t *testing.T, tp *topo) {
			probetest.Sysctl(t, tp.h.Handle, "net/ipv4/conf/all/rp_filter", "1")
			addAddr(t, tp.q, "eth0", pAddr)
			probetest.Sysctl(t, tp.q.Handle, "net/ipv4/neigh/eth0/retrans_time_ms", "100")
			probetest.Sysctl(t, tp.q.Handle, "net/ipv4/neigh/eth0/mcast_solicit", "2")
		},
		watch: func(tp *topo) probetest.NS { return tp.q },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.q, pAddr+":40000", hAddr1+":8080", 10, 2, false)
			sendUDP(t, tp.q, pAddr+":40001", hAddr1+":8080", 10, 1, false)
		},
		want:   []wantDrop{{reason: "NEIGH_FAILED", n: 2, iface: "eth0"}},
		within: 5 * time.Second,
	},
	{
		// h forwards into a 1280-byte link: a 1428-byte datagram with DF
		// cannot pass (ip_forward), and h's own output rule drops the
		// fragmentation-needed it sends back: the MTU black hole's router.
		// The ICMP has no device yet when the output hook drops it: its
		// namespace comes from h's ICMP socket.
		name: "PKT_TOO_BIG", flow: "udp 198.51.100.2:40000 192.0.2.2:8080",
		setup: func(t *testing.T, tp *topo) {
			probetest.Sysctl(t, tp.h.Handle, "net/ipv4/ip_forward", "1")
			dropRule(t, tp.h, "output", nftables.ChainHookOutput, unix.IPPROTO_ICMP, 0)
		},
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.p, pAddr+":40000", qAddr+":8080", 1400, 3, true)
			sendUDP(t, tp.p, pAddr+":40001", qAddr+":8080", 1400, 3, true)
		},
		want: []wantDrop{{reason: "PKT_TOO_BIG", n: 3, iface: "eth0"}, {reason: "NETFILTER_DROP", n: 3, reply: true, quoted: true}},
	},
	{
		// h forwards, and has no route to 203.0.113.10 (ip_error).
		name: "IP_INNOROUTES", flow: "udp 198.51.100.2:40000 203.0.113.10:8080",
		setup: func(t *testing.T, tp *topo) { probetest.Sysctl(t, tp.h.Handle, "net/ipv4/ip_forward", "1") },
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.p, pAddr+":40000", "203.0.113.10:8080", 10, 3, false)
			sendUDP(t, tp.p, pAddr+":40000", "203.0.113.11:8080", 10, 3, false)
		},
		want: []wantDrop{{reason: "IP_INNOROUTES", n: 3, iface: "eth0"}},
	},
	{
		// Nothing listens on h's port 9999.
		name: "NO_SOCKET", flow: "udp 198.51.100.2:40000 198.51.100.1:9999",
		watch: func(tp *topo) probetest.NS { return tp.h },
		send: func(t *testing.T, tp *topo) {
			sendUDP(t, tp.p, pAddr+":40000", hAddr0+":9999", 10, 3, false)
			sendUDP(t, tp.p, pAddr+":40000", hAddr0+":9998", 10, 3, false)
		},
		want: []wantDrop{{reason: "NO_SOCKET", n: 3, iface: "eth0"}},
	},
}

// TestReasons produces each reason on purpose and checks that the witness
// reports exactly the flow's drops, with the reason, the interface, the
// direction and the namespace, while the same reason strikes other flows
// in that namespace and the same flow in another namespace (a twin topo
// built alike, sending alike).
func TestReasons(t *testing.T) {
	probetest.RequireRoot(t)
	for _, c := range reasonCases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runReasonCase(t, c, drops.Options{})
		})
	}
}

// TestRawTracepointFallback forces the fallback attach point on two
// reasons: the same program with every kernel read through the helper.
func TestRawTracepointFallback(t *testing.T) {
	probetest.RequireRoot(t)
	for _, c := range reasonCases[:2] {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			runReasonCase(t, c, drops.Options{Hook: drops.HookRawTracepoint})
		})
	}
}

func runReasonCase(t *testing.T, c reasonCase, opt drops.Options) {
	tp, twin := newTopo(t), newTopo(t)
	if c.setup != nil {
		c.setup(t, tp)
		c.setup(t, twin)
	}
	ns := c.watch(tp)
	rec := witness(t, ns, c.flow, opt)
	wantHook := "tp_btf/kfree_skb"
	if opt.Hook == drops.HookRawTracepoint {
		wantHook = "raw_tp/kfree_skb"
	}
	if h := rec.Got()[0].Hook; h != wantHook {
		t.Errorf("attached as %q, want %q", h, wantHook)
	}
	c.send(t, twin)
	c.send(t, tp)
	within := c.within
	if within == 0 {
		within = 3 * time.Second
	}
	for _, w := range c.want {
		if !waitDrops(rec, w.reason, w.n, within) {
			ds, _, _ := dropsOf(rec.Got())
			t.Fatalf("want %d drops %s within %s, got %d drops:\n%s", w.n, w.reason, within, len(ds), texts(ds))
		}
	}
	time.Sleep(300 * time.Millisecond) // anything else that was coming
	ds, lost, _ := dropsOf(rec.Got())
	if lost != 0 {
		t.Errorf("%d drops lost", lost)
	}
	f, _ := flow.ParseString(c.flow)
	inode := target(t, ns).Inode()
	n := map[wantDrop]int{}
	for _, d := range ds {
		if !ofFlow(d, f) {
			t.Errorf("a drop of another flow was reported: %s", d.Text)
		}
		if d.NetnsInode != inode {
			t.Errorf("drop attributed to namespace %d, want %s's %d: %s", d.NetnsInode, ns.Name, inode, d.Text)
		}
		n[wantDrop{reason: d.Reason, iface: d.Iface, reply: d.Reply, quoted: d.Quoted}]++
	}
	for _, w := range c.want {
		k := w
		k.n = 0
		if n[k] != w.n {
			t.Errorf("want %d drops %+v, got %d:\n%s", w.n, w, n[k], texts(ds))
		}
		delete(n, k)
	}
	for k, v := range n {
		t.Errorf("%d unexpected drops %+v:\n%s", v, k, texts(ds))
	}
	for _, d := range ds {
		if d.Location == "" || d.Time.IsZero() || time.Since(d.Time) > time.Minute || d.ReasonCode == 0 {
			t.Errorf("drop without location, time or code: %+v", d)
		}
	}
	t.Logf("%s", texts(ds))
}

// ofFlow: the drop's own addresses and ports, or those of the packet an
// ICMP error quotes, are the flow's in either direction.
func ofFlow(d evidence.Drop, f flow.Flow) bool {
	if d.Quoted {
		ep := func(a netip.AddrPort) string { return fmt.Sprintf("%s.%d", a.Addr(), a.Port()) }
		return strings.Contains(d.Text, " for "+ep(f.Src)+" > "+ep(f.Dst)+",") || strings.Contains(d.Text, " for "+ep(f.Dst)+" > "+ep(f.Src)+",")
	}
	fwd := d.Src == f.Src && d.Dst == f.Dst
	rev := d.Src == f.Dst && d.Dst == f.Src
	return d.Proto == uint8(f.Proto) && (fwd || rev)
}

func texts(ds []evidence.Drop) string {
	s := ""
	for _, d := range ds {
		s += fmt.Sprintf("  %s (netns %d)\n", d.Text, d.NetnsInode)
	}
	return s
}

// TestReasonIPv6: the IPv6 half of the filter, on the same kind of drop:
// UDP to a port where nothing listens, with another port's drops beside.
func TestReasonIPv6(t *testing.T) {
	a, b := probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{a, b} {
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/default/accept_ra", "0")
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/default/dad_transmits", "0")
	}
	probetest.Veth(t, a, probetest.Link{Name: "eth0", Addrs: []string{"2001:db8::1/64"}}, b, probetest.Link{Name: "eth0", Addrs: []string{"2001:db8::2/64"}})
	rec := witness(t, b, "udp [2001:db8::1]:40000 [2001:db8::2]:9999", drops.Options{})
	send := func(dport int, n int) {
		probetest.Do(t, a.Handle, func() error {
			fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Bind(fd, &unix.SockaddrInet6{Port: 40000, Addr: netip.MustParseAddr("2001:db8::1").As16()}); err != nil {
				return err
			}
			for range n {
				if err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet6{Port: dport, Addr: netip.MustParseAddr("2001:db8::2").As16()}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	send(9999, 3)
	send(9998, 3)
	if !waitDrops(rec, "NO_SOCKET", 3, 5*time.Second) {
		ds, _, _ := dropsOf(rec.Got())
		t.Fatalf("want 3 drops NO_SOCKET:\n%s", texts(ds))
	}
	time.Sleep(300 * time.Millisecond)
	ds, lost, _ := dropsOf(rec.Got())
	f, _ := flow.ParseString("udp [2001:db8::1]:40000 [2001:db8::2]:9999")
	if len(ds) != 3 || lost != 0 {
		t.Fatalf("%d drops, %d lost:\n%s", len(ds), lost, texts(ds))
	}
	for _, d := range ds {
		if !ofFlow(d, f) || d.Iface != "eth0" || d.Reply || !strings.Contains(d.Text, " IP6 2001:db8::1.40000 > 2001:db8::2.9999: udp") {
			t.Errorf("%+v", d)
		}
	}
}

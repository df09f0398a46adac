package probes

import (
	"context"
	"maps"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/probes/probetest"

	"github.com/vishvananda/netlink"
)

// TestCountersReversePathFilter builds a host namespace H with two
// interfaces, h0 (192.0.2.1/24, towards X) and h1 (203.0.113.1/24, towards
// Y), in strict rp_filter mode. Y sends from 192.0.2.50, which H reaches
// only through h0, so every packet arriving on h1 fails the reverse-path
// check and is counted in H's TcpExt IPReversePathFilter, and nowhere else.
func TestCountersReversePathFilter(t *testing.T) {
	h, x, y := probetest.NewNS(t), probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{h, x, y} {
		probetest.Quiet(t, ns)
	}
	probetest.Veth(t, h, probetest.Link{Name: "h0", Addrs: []string{"192.0.2.1/24"}}, x, probetest.Link{Name: "x0", Addrs: []string{"192.0.2.2/24"}})
	h1, y0 := probetest.Veth(t, h, probetest.Link{Name: "h1", Addrs: []string{"203.0.113.1/24"}}, y, probetest.Link{Name: "y0", Addrs: []string{"203.0.113.2/24"}})

	// Y owns the spoofed source on lo, and knows H's MAC for certain: a
	// strict H would not answer ARP from 192.0.2.50 on h1 (the ARP request
	// fails the same check, uncounted), and the test would measure nothing.
	hy := probetest.Netlink(t, y.Handle)
	lo, err := hy.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if err := hy.AddrAdd(lo, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP("192.0.2.50").To4(), Mask: net.CIDRMask(32, 32)}}); err != nil {
		t.Fatal(err)
	}
	if err := hy.NeighAdd(&netlink.Neigh{LinkIndex: y0.Attrs().Index, State: netlink.NUD_PERMANENT,
		IP: net.ParseIP("203.0.113.1").To4(), HardwareAddr: h1.Attrs().HardwareAddr}); err != nil {
		t.Fatal(err)
	}
	probetest.Sysctl(t, h.Handle, "net/ipv4/conf/all/rp_filter", "1")

	th, host := openTarget(t, h.Name), openTarget(t, "")
	sample := func(tg *Target) *evidence.Counters {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		c := ProbeCounters(ctx, tg)
		if !c.OK() {
			t.Fatalf("ProbeCounters(%s) = %s: %s", tg, c.Status, c.Reason)
		}
		return c
	}
	hBefore, hostBefore := sample(th), sample(host)

	const n = 3
	probetest.Do(t, y.Handle, func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.50:5000")),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort("203.0.113.1:9")))
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("asym")); err != nil {
				return err
			}
		}
		return nil
	})

	const key = "TcpExt:IPReversePathFilter"
	var hAfter *evidence.Counters
	probetest.Poll(2*time.Second, func() bool {
		hAfter = sample(th)
		return hAfter.Delta(hBefore)[key] >= n
	})
	hostAfter := sample(host)
	d, hostD := hAfter.Delta(hBefore), hostAfter.Delta(hostBefore)
	t.Logf("%s\n  %s", hAfter.Command, strings.Join(hAfter.Lines, "\n  "))
	if d[key] != n {
		t.Errorf("%s rose by %d in %s, want %d", key, d[key], h.Name, n)
	}
	if hostD[key] != 0 {
		t.Errorf("%s rose by %d in the host namespace: the namespace's drops leaked into the host reading (or the host dropped spoofed traffic of its own meanwhile)", key, hostD[key])
	}
	if _, ok := hostAfter.Values[key]; !ok {
		t.Errorf("the host reading lacks %s", key)
	}
	// The failure also counts as a martian source, but rt_cache_stat is one
	// per-CPU variable for the whole kernel: both readings see it.
	if d["rt_cache:in_martian_src"] < n || hostD["rt_cache:in_martian_src"] < n {
		t.Errorf("rt_cache:in_martian_src rose by %d (namespace) and %d (host), want at least %d in both", d["rt_cache:in_martian_src"], hostD["rt_cache:in_martian_src"], n)
	}
	if !hasLine(hAfter.Lines, "TcpExtIPReversePathFilter") || !hasLine(hAfter.Lines, "kernel-wide") {
		t.Errorf("lines = %q, want the nstat-style counter and the rt_cache caveat", hAfter.Lines)
	}
	if hAfter.Command != "ip netns exec "+h.Name+" nstat -az" {
		t.Errorf("Command = %q", hAfter.Command)
	}
	// Reading the namespace changes nothing: a second sample with no traffic
	// in between shows no rp_filter drops.
	if again := sample(th).Delta(hAfter)[key]; again != 0 {
		t.Errorf("%s moved by %d without traffic", key, again)
	}

	ctx, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	if c := ProbeCounters(ctx, th); c.Status != evidence.StatusTimedOut {
		t.Errorf("expired context: status %s (%s), want timed out", c.Status, c.Reason)
	}
}

func TestCountersDelta(t *testing.T) {
	a := &evidence.Counters{Values: map[string]uint64{"Tcp:OutRsts": 5, "Ip:InDiscards": 7, "gone": 1}}
	b := &evidence.Counters{Values: map[string]uint64{"Tcp:OutRsts": 9, "Ip:InDiscards": 6, "new": 3}}
	want := map[string]int64{"Tcp:OutRsts": 4, "Ip:InDiscards": -1}
	if got := b.Delta(a); !maps.Equal(got, want) {
		t.Errorf("Delta = %v, want %v", got, want)
	}
	if got := b.Delta(nil); len(got) != 0 {
		t.Errorf("Delta(nil) = %v, want empty", got)
	}
}

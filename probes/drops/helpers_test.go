package drops_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/drops"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// topo is three namespaces around one in the middle:
//
//	p eth0 198.51.100.2/24 -- eth0 198.51.100.1/24  h  eth1 192.0.2.1/24 (mtu 1280) -- eth0 192.0.2.2/24 q
//
// p and q route everything through h; h forwards only when a test says so.
type topo struct {
	p, h, q probetest.NS
	hEth1   net.HardwareAddr
}

const (
	pAddr  = "198.51.100.2"
	hAddr0 = "198.51.100.1"
	hAddr1 = "192.0.2.1"
	qAddr  = "192.0.2.2"
)

func newTopo(t *testing.T) *topo {
	t.Helper()
	tp := &topo{p: probetest.NewNS(t), h: probetest.NewNS(t), q: probetest.NewNS(t)}
	for _, ns := range []probetest.NS{tp.p, tp.h, tp.q} {
		probetest.Quiet(t, ns)
	}
	probetest.Veth(t, tp.p, probetest.Link{Name: "eth0", Addrs: []string{pAddr + "/24"}}, tp.h, probetest.Link{Name: "eth0", Addrs: []string{hAddr0 + "/24"}})
	_, h1 := probetest.Veth(t, tp.h, probetest.Link{Name: "eth1", Addrs: []string{hAddr1 + "/24"}, MTU: 1280}, tp.q, probetest.Link{Name: "eth0", Addrs: []string{qAddr + "/24"}, MTU: 1280})
	_ = h1
	hl, err := probetest.Netlink(t, tp.h.Handle).LinkByName("eth1")
	if err != nil {
		t.Fatal(err)
	}
	tp.hEth1 = hl.Attrs().HardwareAddr
	defaultVia(t, tp.p, hAddr0)
	defaultVia(t, tp.q, hAddr1)
	return tp
}

func defaultVia(t *testing.T, ns probetest.NS, gw string) {
	t.Helper()
	h := probetest.Netlink(t, ns.Handle)
	if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(gw)}); err != nil {
		t.Fatalf("default via %s: %v", gw, err)
	}
}

// addAddr adds a /32 to a link.
func addAddr(t *testing.T, ns probetest.NS, dev, addr string) {
	t.Helper()
	h := probetest.Netlink(t, ns.Handle)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := netlink.ParseAddr(addr + "/32")
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatalf("address %s on %s: %v", addr, dev, err)
	}
}

// staticNeigh makes ip a permanent neighbour on dev, so no ARP is asked.
func staticNeigh(t *testing.T, ns probetest.NS, dev, ip string, mac net.HardwareAddr) {
	t.Helper()
	h := probetest.Netlink(t, ns.Handle)
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, IP: net.ParseIP(ip), HardwareAddr: mac, State: netlink.NUD_PERMANENT, Family: netlink.FAMILY_V4}); err != nil {
		t.Fatalf("neighbour %s on %s: %v", ip, dev, err)
	}
}

// sendUDP sends n datagrams of size bytes from src to dst inside ns,
// with DF set when df. Send errors are ignored: a datagram the kernel
// refuses at once (a learned path MTU) was not sent, and the test counts
// drops, not sends.
func sendUDP(t testing.TB, ns probetest.NS, src, dst string, size, n int, df bool) {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	probetest.Do(t, ns.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if df {
			unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_PROBE)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: s.Addr().As4(), Port: int(s.Port())}); err != nil {
			return err
		}
		buf := make([]byte, size)
		for range n {
			unix.Sendto(fd, buf, 0, &unix.SockaddrInet4{Addr: d.Addr().As4(), Port: int(d.Port())})
		}
		return nil
	})
}

// dropRule adds `table inet filter { chain NAME { type filter hook HOOK
// priority 0; policy accept; ip protocol PROTO [udp dport PORT] drop } }`.
func dropRule(t *testing.T, ns probetest.NS, chain string, hook *nftables.ChainHook, proto byte, dport uint16) {
	t.Helper()
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 9, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
	}
	if dport != 0 {
		exprs = append(exprs,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(dport >> 8), byte(dport)}})
	}
	exprs = append(exprs, &expr.Counter{}, probetest.Drop)
	probetest.FilterRule(t, ns, chain, hook, exprs...)
}

// target opens ns as asym opens a namespace.
func target(t *testing.T, ns probetest.NS) *probes.Target {
	t.Helper()
	tg, err := probes.OpenTarget(ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	return tg
}

// witness watches f's drops in ns until the test ends; the recorder
// holds what arrives.
func witness(t *testing.T, ns probetest.NS, f string, opt drops.Options) *probetest.Recorder[evidence.DropUpdate] {
	t.Helper()
	fl, err := flow.ParseString(f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rec := probetest.Record(drops.Watch(ctx, target(t, ns), fl, opt))
	t.Cleanup(func() {
		cancel()
		rec.WaitClosed(t, "the drop witness")
	})
	if !rec.Until(2*time.Second, func(us []evidence.DropUpdate) bool { return len(us) > 0 }) {
		t.Fatal("the witness said nothing within 2s of starting")
	}
	if err := rec.Got()[0].Err; err != nil {
		t.Fatal(err)
	}
	return rec
}

// dropsOf flattens what a recorder holds.
func dropsOf(us []evidence.DropUpdate) (ds []evidence.Drop, lost, unattributed int) {
	for _, u := range us {
		ds = append(ds, u.Drops...)
		lost += u.Lost + u.Skipped
		unattributed += u.Unattributed
	}
	return ds, lost, unattributed
}

// waitDrops waits up to d for n drops of reason.
func waitDrops(rec *probetest.Recorder[evidence.DropUpdate], reason string, n int, d time.Duration) bool {
	return rec.Until(d, func(us []evidence.DropUpdate) bool {
		ds, _, _ := dropsOf(us)
		k := 0
		for _, x := range ds {
			if x.Reason == reason {
				k++
			}
		}
		return k >= n
	})
}

func addrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

package apply

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"asym/fix"
	"asym/probes"
	"asym/probes/probetest"
)

// A neighbour that learnt the wrong MAC for the host's address (ARP flux)
// holds the right one after the announcement step, and the step's undo is
// harmless to run.
func TestARPAnnounceCorrectsTheNeighbour(t *testing.T) {
	ns, peer := probetest.NewNS(t), probetest.NewNS(t)
	h, p := probetest.Netlink(t, ns.Handle), probetest.Netlink(t, peer.Handle)
	if err := p.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Namespace: netlink.NsFd(ns.Handle)}, PeerName: "p0"}); err != nil {
		t.Fatal(err)
	}
	l, _ := h.LinkByName("eth0")
	a, _ := netlink.ParseAddr("198.51.100.10/24")
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	h.LinkSetUp(l)
	pl, _ := p.LinkByName("p0")
	pa, _ := netlink.ParseAddr("198.51.100.1/24")
	if err := p.AddrAdd(pl, pa); err != nil {
		t.Fatal(err)
	}
	p.LinkSetUp(pl)
	wrong, _ := net.ParseMAC("02:00:00:00:00:99")
	if err := p.NeighAdd(&netlink.Neigh{LinkIndex: pl.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_STALE,
		IP: net.ParseIP("198.51.100.10").To4(), HardwareAddr: wrong}); err != nil {
		t.Fatal(err)
	}
	tg, err := probes.OpenTarget(ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	ctx := context.Background()
	step := &fix.ARPAnnounce{Dev: "eth0", Addr: netip.MustParseAddr("198.51.100.10")}
	do, undo, err := step.Prepare(ctx, kernel{tg}, &fix.Preparation{})
	if err != nil {
		t.Fatal(err)
	}
	// The link is up a moment after LinkSetUp; a frame sent before the
	// veth carries is lost, so the announcement is retried briefly, as a
	// person would run arping again.
	mac := ""
	for i := 0; i < 50 && mac != l.Attrs().HardwareAddr.String(); i++ {
		if err := do.Apply(ctx, kernel{tg}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		ns, _ := p.NeighList(pl.Attrs().Index, netlink.FAMILY_V4)
		for _, n := range ns {
			if n.IP.Equal(net.ParseIP("198.51.100.10")) {
				mac = n.HardwareAddr.String()
			}
		}
	}
	if mac != l.Attrs().HardwareAddr.String() {
		t.Fatalf("the neighbour still maps 198.51.100.10 to %s, want eth0's %s", mac, l.Attrs().HardwareAddr)
	}
	if err := undo.Apply(ctx, kernel{tg}); err != nil {
		t.Fatalf("the undo announces again and must work: %v", err)
	}
	if _, _, err := (&fix.ARPAnnounce{Dev: "eth9", Addr: step.Addr}).Prepare(ctx, kernel{tg}, &fix.Preparation{}); err == nil {
		t.Fatal("an interface that is not there is refused before anything changes")
	}
	if _, _, err := (&fix.ARPAnnounce{Dev: "eth0", Addr: netip.MustParseAddr("2001:db8::1")}).Prepare(ctx, kernel{tg}, &fix.Preparation{}); err == nil {
		t.Fatal("IPv6 has no ARP: refused")
	}
}

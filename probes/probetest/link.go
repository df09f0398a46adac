package probetest

import (
	"testing"

	"asym/lab/namespace"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Quiet gives a fresh namespace deterministic sysctls: no IPv6 (no DAD,
// router solicitations or MLD reports to disturb counters), rp_filter off,
// no redirects. Call it before the links exist, so that new interfaces
// inherit "default".
func Quiet(t testing.TB, ns NS) {
	t.Helper()
	for _, c := range [][2]string{
		{"net/ipv6/conf/all/disable_ipv6", "1"},
		{"net/ipv6/conf/default/disable_ipv6", "1"},
		{"net/ipv4/conf/all/rp_filter", "0"},
		{"net/ipv4/conf/default/rp_filter", "0"},
		{"net/ipv4/conf/all/send_redirects", "0"},
		{"net/ipv4/conf/default/send_redirects", "0"},
	} {
		Sysctl(t, ns.Handle, c[0], c[1])
	}
}

// Link says how SetUp and Veth leave a link.
type Link struct {
	Name string
	// Addrs are CIDR prefixes, e.g. "192.0.2.10/24". IPv6 ones skip
	// duplicate address detection, so that they are usable at once.
	Addrs []string
	MTU   int // 0 leaves the default
}

// SetUp sets the MTU of the link l.Name in h, adds its addresses and brings
// it up. It returns the link read again, with its MAC address and up state.
func SetUp(t testing.TB, h *netlink.Handle, l Link) netlink.Link {
	t.Helper()
	link, err := h.LinkByName(l.Name)
	if err != nil {
		t.Fatalf("find %s: %v", l.Name, err)
	}
	if l.MTU > 0 {
		if err := h.LinkSetMTU(link, l.MTU); err != nil {
			t.Fatalf("set the MTU of %s: %v", l.Name, err)
		}
	}
	for _, s := range l.Addrs {
		ad, err := netlink.ParseAddr(s)
		if err != nil {
			t.Fatalf("parse %s: %v", s, err)
		}
		if ad.IP.To4() == nil {
			ad.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(link, ad); err != nil {
			t.Fatalf("address %s on %s: %v", s, l.Name, err)
		}
	}
	if err := h.LinkSetUp(link); err != nil {
		t.Fatalf("bring up %s: %v", l.Name, err)
	}
	if link, err = h.LinkByName(l.Name); err != nil {
		t.Fatalf("find %s: %v", l.Name, err)
	}
	return link
}

// Veth joins namespaces a and b with a veth pair, its ends named al.Name in
// a and bl.Name in b, and sets both up as SetUp does, a's end first. It
// returns the two ends.
//
// Both ends are up when it returns, but the kernel finishes bringing a link
// up asynchronously (carrier, qdisc and IPv6 addrconf run from linkwatch):
// a test that needs the link-local address must wait for it.
func Veth(t testing.TB, a NS, al Link, b NS, bl Link) (netlink.Link, netlink.Link) {
	t.Helper()
	if err := namespace.Veth(a, al.Name, b, bl.Name); err != nil {
		t.Fatal(err)
	}
	return SetUp(t, Netlink(t, a.Handle), al), SetUp(t, Netlink(t, b.Handle), bl)
}

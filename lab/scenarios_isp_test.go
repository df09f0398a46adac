package lab

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

func init() {
	scenarioTests["host-ecmp-two-isps"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "isp-b", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n == 0 {
				t.Error("isp-b: the ingress filter dropped nothing: the reply did not leave by eth1")
			}
			if n := nftCounter(t, e, "isp-a", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n != 0 {
				t.Errorf("isp-a: the ingress filter dropped %d packets, want 0", n)
			}
			// The route really is one multipath default over both ISPs.
			rs, err := nlh(t, e, "host").RouteList(nil, netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			defaults := 0
			for _, r := range rs {
				if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
					defaults++
					if len(r.MultiPath) != 2 {
						t.Errorf("host: the default route has %d next hops, want 2: %v", len(r.MultiPath), r)
					}
				}
			}
			if defaults != 1 {
				t.Errorf("host: %d default routes in main, want the one multipath route", defaults)
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// A client port whose reply hashes to ISP A works: the failure
			// is the hash, not the ISPs or the lab.
			p, err := ispHashedPort(e.builderFor(t), 41000, "eth0")
			if err != nil {
				t.Fatal(err)
			}
			g := e.flow
			g.src = netip.AddrPortFrom(g.src.Addr(), p)
			if err := e.try(t.Context(), g, tryTimeout); err != nil {
				t.Errorf("%s (reply hashed to ISP A) should work: %v", g, err)
			} else {
				t.Logf("%s (reply hashed to ISP A) works", g)
			}
		},
		heal: func(t *testing.T, e *Env) {
			h := nlh(t, e, "host")
			for i, isp := range []struct {
				dev, addr, net, gw string
				table              int
			}{{"eth0", ispHostA, "192.0.2.0/24", ispGWA, 100}, {"eth1", ispHostB, "198.51.100.0/24", ispGWB, 200}} {
				idx := link(t, h, isp.dev)
				for _, r := range []*netlink.Route{
					{Table: isp.table, Dst: cidr(isp.net), LinkIndex: idx, Scope: netlink.SCOPE_LINK, Src: ip(isp.addr)},
					{Table: isp.table, Dst: cidr("0.0.0.0/0"), LinkIndex: idx, Gw: ip(isp.gw)},
				} {
					if err := h.RouteAdd(r); err != nil {
						t.Fatalf("heal: add route %v: %v", r, err)
					}
				}
				if err := h.RuleAdd(newRule(isp.addr, isp.table, 1000+i)); err != nil {
					t.Fatalf("heal: add rule from %s lookup %d: %v", isp.addr, isp.table, err)
				}
			}
		},
	}
}

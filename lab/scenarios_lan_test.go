package lab

import (
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// healVia gives the host ISP A's source routing through gw; undo removes
// it again.
func healVia(t *testing.T, e *Env, gw string) (undo func()) {
	t.Helper()
	h := nlh(t, e, "host")
	eth0 := link(t, h, "eth0")
	routes := []*netlink.Route{
		{Table: 100, Dst: cidr("192.0.2.0/24"), LinkIndex: eth0, Scope: netlink.SCOPE_LINK, Src: ip(ispHostA)},
		{Table: 100, Dst: cidr("0.0.0.0/0"), LinkIndex: eth0, Gw: ip(gw)},
	}
	for _, r := range routes {
		if err := h.RouteAdd(r); err != nil {
			t.Fatalf("heal: add route %v: %v", r, err)
		}
	}
	rule := newRule(ispHostA, 100, 1000)
	if err := h.RuleAdd(rule); err != nil {
		t.Fatalf("heal: add rule: %v", err)
	}
	return func() {
		h.RuleDel(rule)
		for _, r := range routes {
			h.RouteDel(r)
		}
	}
}

func init() {
	scenarioTests["two-isps-shared-lan"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "isp-b", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n == 0 {
				t.Error("isp-b: the ingress filter dropped nothing: the reply did not leave by eth1")
			}
			// Two resolved routers on eth0 and no route by it: nothing
			// the host holds says which one is the gateway.
			h := nlh(t, e, "host")
			ns, err := h.NeighList(link(t, h, "eth0"), netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			known := map[string]bool{}
			for _, n := range ns {
				if len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
					known[n.IP.String()] = true
				}
			}
			if !known[ispGWA] || !known[lanVPN] {
				t.Errorf("host: eth0's neighbours %v, want both %s and %s resolved", known, ispGWA, lanVPN)
			}
			rs, err := h.RouteList(nil, netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range rs {
				if r.Gw != nil && r.LinkIndex == link(t, h, "eth0") {
					t.Errorf("host: a route goes by eth0 via %s; the scenario needs none", r.Gw)
				}
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// The other router of the LAN is no way out: a fix that
			// guessed it would not heal, which is why asym must not guess.
			undo := healVia(t, e, lanVPN)
			defer undo()
			if err := e.Try(t.Context(), tryTimeout); err == nil {
				t.Error("source routing by the VPN box healed the flow: the scenario must make the choice of router matter")
			}
		},
		heal: func(t *testing.T, e *Env) { healVia(t, e, ispGWA) },
	}
}

package lab

import (
	"net/netip"
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

func init() {
	scenarioTests["route-src-hint"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			// The kernel picks eth1's address for an unbound socket's
			// connection out of eth0, and the gateway drops it there.
			rs, err := nlh(t, e, "client").RouteGet(ip(hintServer))
			if err != nil || len(rs) != 1 {
				t.Fatalf("client: route get %s: %v %v", hintServer, rs, err)
			}
			if !rs[0].Src.Equal(ip(hintMgmt)) || rs[0].LinkIndex != link(t, nlh(t, e, "client"), "eth0") {
				t.Errorf("client: route get %s answers src %s via ifindex %d, want src %s out of eth0", hintServer, rs[0].Src, rs[0].LinkIndex, hintMgmt)
			}
			if n := nftCounter(t, e, "gw", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n == 0 {
				t.Error("gw: the ingress filter dropped nothing: the SYN did not leave with eth1's address")
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// The path is fine: an application that binds the address the
			// user typed gets through.
			n := nftCounter(t, e, "gw", nftables.TableFamilyIPv4, "filter", "forward", "eth0")
			if err := e.tryWith(t.Context(), e.flow, tryTimeout, dialer{}); err != nil {
				t.Errorf("a socket bound to %s should get through: %v", e.flow.src, err)
			} else {
				t.Logf("a socket bound to %s gets through", e.flow.src)
			}
			if m := nftCounter(t, e, "gw", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); m != n {
				t.Errorf("gw: the ingress filter dropped %d packets of the bound socket", m-n)
			}
		},
		heal: func(t *testing.T, e *Env) {
			h := nlh(t, e, "client")
			r := &netlink.Route{Dst: cidr("0.0.0.0/0"), LinkIndex: link(t, h, "eth0"), Gw: ip(hintGW), Src: ip(hintProd)}
			if err := h.RouteReplace(r); err != nil {
				t.Fatalf("heal: replace the default route with src %s: %v", hintProd, err)
			}
		},
	}
	scenarioTests["port-selective-rule"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "fabric", nftables.TableFamilyBridge, "fabric", "forward", "host0"); n == 0 {
				t.Error("fabric: the source check on port host0 dropped nothing: the reply did not leave by eth0")
			}
			// The kernel's own answer: port 8080's reply by eth0, another
			// port's by eth1.
			b := e.builderFor(t)
			src, dst := netip.MustParseAddr(vpcEth1), netip.MustParseAddr(vpcClient)
			for sport, want := range map[uint16]string{portRulePort: "eth0", portRulePort + 1: "eth1"} {
				dev, err := b.egressIf("host", src, dst, sport, e.flow.src.Port())
				if err != nil {
					t.Fatal(err)
				}
				if dev != want {
					t.Errorf("host: the reply from port %d leaves by %s, want %s", sport, dev, want)
				}
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// Another port of the same address works: only the rule's port
			// takes the wrong way.
			other := netip.AddrPortFrom(e.flow.dst.Addr(), portRulePort+1)
			if err := e.listenAt("host", other); err != nil {
				t.Fatal(err)
			}
			g := e.flow
			g.dst = other
			if err := e.try(t.Context(), g, tryTimeout); err != nil {
				t.Errorf("%s should work next to the failing port: %v", g, err)
			} else {
				t.Logf("%s works", g)
			}
			// A source rule that outranks the port rule heals it too; it is
			// taken away again so the heal below proves the other fix.
			h := nlh(t, e, "host")
			outrank := newRule(vpcEth1, 200, portRulePrio-100)
			if err := h.RuleAdd(outrank); err != nil {
				t.Fatalf("add rule %d from %s lookup 200: %v", outrank.Priority, vpcEth1, err)
			}
			if err := e.Try(t.Context(), healedTimeout); err != nil {
				t.Errorf("with rule %d from %s lookup 200 the flow should work: %v", outrank.Priority, vpcEth1, err)
			} else {
				t.Logf("with rule %d from %s lookup 200 the flow works", outrank.Priority, vpcEth1)
			}
			if err := h.RuleDel(outrank); err != nil {
				t.Fatalf("delete rule %d: %v", outrank.Priority, err)
			}
		},
		heal: func(t *testing.T, e *Env) {
			if err := nlh(t, e, "host").RuleDel(newPortRule(portRulePort, portRuleTable, portRulePrio)); err != nil {
				t.Fatalf("heal: delete rule %d: %v", portRulePrio, err)
			}
		},
	}
}

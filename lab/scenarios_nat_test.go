package lab

import (
	"testing"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

func init() {
	scenarioTests["nat-gateway-pair"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			f, _ := parseFlow(e.Checks[0].Flow)
			// gw-b: the replies arrive and are dropped as INVALID, for a
			// connection it never saw: its DNAT rule counted none.
			if n := nftCounter(t, e, "gw-b", nftables.TableFamilyINet, "filter", "forward", ""); n == 0 {
				t.Error("gw-b: `ct state invalid counter drop` dropped nothing: the SYN-ACK did not come back by gw-b")
			}
			if n := nftCounter(t, e, "gw-b", nftables.TableFamilyIPv4, "nat", "prerouting", ""); n != 0 {
				t.Errorf("gw-b: its DNAT rule counted %d connections: the request went through gw-b too", n)
			}
			if got := conntrackOf(t, e, "gw-b", f.src.Port()); len(got) != 0 {
				t.Errorf("gw-b: tracks the flow: %v", got)
			}
			// gw-a: translated the SYN and never saw an answer.
			if n := nftCounter(t, e, "gw-a", nftables.TableFamilyIPv4, "nat", "prerouting", ""); n == 0 {
				t.Error("gw-a: its DNAT rule counted no connection: the SYN did not reach gw-a")
			}
			if n := nftCounter(t, e, "gw-a", nftables.TableFamilyINet, "filter", "forward", ""); n != 0 {
				t.Errorf("gw-a: `ct state invalid` dropped %d packets, want 0", n)
			}
			got := conntrackOf(t, e, "gw-a", f.src.Port())
			if len(got) != 1 {
				t.Fatalf("gw-a: %d conntrack entries for client port %d, want the translated flow: %v", len(got), f.src.Port(), got)
			}
			c := got[0]
			if !c.Forward.DstIP.Equal(f.dst.Addr().AsSlice()) || c.Forward.DstPort != f.dst.Port() {
				t.Errorf("gw-a: the entry's original destination is %s:%d, want the VIP %s", c.Forward.DstIP, c.Forward.DstPort, f.dst)
			}
			if !c.Reverse.SrcIP.Equal(ip(natServer)) || c.Reverse.SrcPort != natPort {
				t.Errorf("gw-a: the entry's reply source is %s:%d, want the DNAT target %s:%d", c.Reverse.SrcIP, c.Reverse.SrcPort, natServer, natPort)
			}
			if p, ok := c.ProtoInfo.(*netlink.ProtoInfoTCP); !ok || p.State != 1 {
				t.Errorf("gw-a: the entry's TCP state is %+v, want 1 (SYN_SENT: no SYN-ACK came back through gw-a)", c.ProtoInfo)
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// The cause is the server's route: replies sent to the gateway
			// that translated the request come back through its state.
			h := nlh(t, e, "server")
			r := &netlink.Route{Dst: cidr("0.0.0.0/0"), LinkIndex: link(t, h, "eth0"), Gw: ip(natGWAIn)}
			if err := h.RouteReplace(r); err != nil {
				t.Fatalf("server: point the default route at gw-a: %v", err)
			}
			if err := e.Try(t.Context(), healedTimeout); err != nil {
				t.Errorf("with the server's default route via gw-a the flow should work: %v", err)
			} else {
				t.Log("with the server's default route via gw-a the flow works")
			}
		},
	}
}

// conntrackOf lists the IPv4 TCP conntrack entries of a role's namespace
// whose original source port is port: the flow's, whatever translation
// its addresses went through.
func conntrackOf(t *testing.T, e *Env, role string, port uint16) []*netlink.ConntrackFlow {
	t.Helper()
	flows, err := nlh(t, e, role).ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("%s: conntrack dump: %v", role, err)
	}
	var out []*netlink.ConntrackFlow
	for _, c := range flows {
		if c.Forward.Protocol == 6 && (c.Forward.SrcPort == port || c.Reverse.DstPort == port) {
			out = append(out, c)
		}
	}
	return out
}

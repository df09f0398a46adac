package lab

import (
	"testing"

	"github.com/vishvananda/netlink"
)

func init() {
	scenarioTests["stateless-router"] = scenarioTest{
		// The flow works; prove it really crosses the router asymmetrically
		// and that the router keeps no state. The first try has resolved
		// every neighbour, so a second one moves only the flow's packets.
		evidence: func(t *testing.T, e *Env) {
			before := linkPackets(t, e, "router")
			if err := e.Try(t.Context(), tryTimeout); err != nil {
				t.Fatalf("the second try failed: %v", err)
			}
			after := linkPackets(t, e, "router")
			moved := map[string]uint64{}
			for k, n := range after {
				moved[k] = n - before[k]
			}
			t.Logf("router packets moved by one try: %v", moved)
			// In on eth0 and out on eth1 (SYN, ACK, the byte, RST); in on
			// eth2 and out on eth0 (SYN-ACK, the echo).
			for _, k := range []string{"eth0 rx", "eth1 tx"} {
				if moved[k] < 3 {
					t.Errorf("router: %s moved %d packets, want the request's (at least 3)", k, moved[k])
				}
			}
			for _, k := range []string{"eth2 rx", "eth0 tx"} {
				if moved[k] < 2 {
					t.Errorf("router: %s moved %d packets, want the reply's (at least 2)", k, moved[k])
				}
			}
			for _, k := range []string{"eth1 rx", "eth2 tx"} {
				if moved[k] != 0 {
					t.Errorf("router: %s moved %d packets, want none: the paths are not asymmetric", k, moved[k])
				}
			}
			flows, err := nlh(t, e, "router").ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
			if err != nil {
				t.Fatal(err)
			}
			if len(flows) != 0 {
				t.Errorf("router: %d conntrack entries, want none (a stateless router)", len(flows))
			}
		},
	}
}

// linkPackets reads the packet counters of a role's eth interfaces, keyed
// "eth0 rx", "eth0 tx" ...
func linkPackets(t *testing.T, e *Env, role string) map[string]uint64 {
	t.Helper()
	links, err := nlh(t, e, role).LinkList()
	if err != nil {
		t.Fatalf("%s: list links: %v", role, err)
	}
	out := map[string]uint64{}
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" || a.Statistics == nil {
			continue
		}
		out[a.Name+" rx"] = a.Statistics.RxPackets
		out[a.Name+" tx"] = a.Statistics.TxPackets
	}
	return out
}

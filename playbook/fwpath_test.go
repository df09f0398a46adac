package playbook

import (
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"
)

// routerPaths is a router (fw) that the reply of tcp 192.0.2.10:40000 →
// 203.0.113.10:8080 crosses: its walk says the reply without state is
// dropped behind a jump, the reply with state accepted.
func routerPaths(dropPackets uint64) *evidence.Evidence {
	f, _ := flow.ParseString("tcp 192.0.2.10:40000 203.0.113.10:8080")
	e := &evidence.Evidence{Flow: f}
	e.Host = &evidence.HostView{Report: okRep("host"), Role: evidence.RoleMiddle}
	jump := evidence.PathHit{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Hook: "forward", Handle: 4, Verdict: "jump replies", Text: "iifname \"eth1\" jump replies", Certain: true}
	drop := evidence.PathHit{Source: "nftables", Family: "inet", Table: "filter", Chain: "replies", Hook: "forward", Handle: 7, Depth: 1, Verdict: "drop",
		Kind: evidence.RuleCtInvalid, HasCounter: true, Packets: dropPackets, Text: "ct state invalid counter packets 3 bytes 120 drop", Certain: true}
	accept := evidence.PathHit{Source: "nftables", Family: "inet", Table: "filter", Chain: "replies", Hook: "forward", Handle: 8, Depth: 1, Verdict: "accept",
		Text: "ct state established accept", Certain: true}
	e.Firewall = &evidence.FirewallView{Report: okRep("firewall"), Tables: 1, Paths: []evidence.FirewallPath{
		{Direction: evidence.DirRequest, Case: evidence.PathFirst, Packet: "tcp 192.0.2.10:40000 → 203.0.113.10:8080 [S] in eth0", Hooks: []string{"prerouting", "forward", "postrouting"}, Verdict: "accept", Certain: true, By: -1},
		{Direction: evidence.DirReply, Case: evidence.PathTracked, Packet: "tcp 203.0.113.10:8080 → 192.0.2.10:40000 [S.] in eth1", Hooks: []string{"prerouting", "forward", "postrouting"},
			Hits: []evidence.PathHit{jump, accept}, Verdict: "accept", Certain: true, By: -1},
		{Direction: evidence.DirReply, Case: evidence.PathUntracked, Packet: "tcp 203.0.113.10:8080 → 192.0.2.10:40000 [S.] in eth1", CtState: "invalid", Hooks: []string{"prerouting", "forward"},
			Hits: []evidence.PathHit{jump, drop}, Verdict: "drop", Certain: true, By: 1},
	}}
	e.Conntrack = &evidence.ConntrackView{Report: okRep("conntrack"), Looked: true, Count: 5}
	e.Conntrack.Stats.Invalid = 3
	return e
}

func TestCtInvalidDropOnPath(t *testing.T) {
	e := routerPaths(3)
	got := ctInvalidDrop(e)
	if len(got) != 1 || got[0].ID != CtInvalidDrop || got[0].Severity != Warning {
		t.Fatalf("findings %+v, want one ct_invalid_drop warning", got)
	}
	f := got[0]
	if !strings.Contains(f.Title, "inet filter replies handle 7 (ct state invalid counter packets 3 bytes 120 drop)") {
		t.Errorf("title does not name the rule: %q", f.Title)
	}
	var texts []string
	for _, l := range f.Evidence {
		texts = append(texts, l.Text)
	}
	all := strings.Join(texts, "\n")
	for _, want := range []string{
		"inet filter forward: iifname \"eth1\" jump replies",
		"inet filter replies: ct state invalid counter packets 3 bytes 120 drop   ← drops it",
		"no conntrack entry for",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("evidence lacks %q:\n%s", want, all)
		}
	}

	// A rule that never dropped anything is no sign the flow's replies come.
	if got := ctInvalidDrop(routerPaths(0)); len(got) != 0 {
		t.Errorf("a drop rule with a zero counter: %+v", got)
	}
	// The flow tracked both ways here: its reply is not invalid.
	e = routerPaths(3)
	e.Conntrack.Entries = []evidence.ConntrackEntry{{Text: "tcp 6 431999 ESTABLISHED src=192.0.2.10 …"}}
	if got := ctInvalidDrop(e); len(got) != 0 {
		t.Errorf("a flow tracked both ways: %+v", got)
	}
	// Neither the path nor the finding for a tracked reply that is accepted.
	if got := firewallPathDrop(routerPaths(3)); len(got) != 0 {
		t.Errorf("firewall_path_drop on an accepted path: %+v", got)
	}
}

func TestFirewallPathDrop(t *testing.T) {
	e := routerPaths(3)
	p := &e.Firewall.Paths[1]
	p.Hits = append(p.Hits[:1], evidence.PathHit{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Hook: "forward",
		Policy: true, Verdict: "drop", Certain: true})
	p.Verdict, p.By = "drop", 1
	// A router that does not track the flow: the tracked reply is
	// hypothetical there.
	if got := firewallPathDrop(e); len(got) != 0 {
		t.Fatalf("a router without the flow's entry: %+v", got)
	}
	e.Conntrack.Entries = []evidence.ConntrackEntry{{Text: "tcp 6 118 SYN_SENT src=192.0.2.10 … [UNREPLIED]", Unreplied: true}}
	got := firewallPathDrop(e)
	if len(got) != 1 || got[0].ID != FirewallPathDrop || got[0].Severity != "" { // not overridden: the catalog says critical
		t.Fatalf("findings %+v, want one firewall_path_drop", got)
	}
	if !strings.Contains(got[0].Title, "drops the reply") || !strings.Contains(got[0].Title, "the policy of inet filter forward") {
		t.Errorf("title %q", got[0].Title)
	}
	// May-drops are not a finding.
	p.Certain = false
	if got := firewallPathDrop(e); len(got) != 0 {
		t.Errorf("an uncertain drop: %+v", got)
	}
}

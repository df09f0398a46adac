package firewall

import (
	"slices"
	"strings"
	"testing"

	"asym/evidence"

	"github.com/google/nftables"
)

func TestFirewallLines(t *testing.T) {
	fwd := evidence.FirewallRule{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Hook: "forward"}
	in := fwd
	in.Chain, in.Hook = "input", "input"
	hit := func(chain string, handle uint64, depth int, text string) evidence.PathHit {
		return evidence.PathHit{Source: "nftables", Family: "inet", Table: "filter", Chain: chain, Handle: handle, Depth: depth, Text: text, Verdict: "drop"}
	}
	headers := map[string]string{
		chainKey("nftables", fwd.Where()): nftChainHeader(fwd, "accept", "", false),
		chainKey("nftables", in.Where()):  nftChainHeader(in, "drop", "", true),
	}
	legacy := evidence.PathHit{Source: evidence.SourceIptablesLegacy, Family: "ip", Table: "filter", Chain: "FORWARD", Handle: 2, Text: "[3:120] -A FORWARD -j DROP"}
	headers[chainKey(legacy.Source, legacy.Where())] = "iptables-legacy table filter  chain FORWARD (policy ACCEPT)"
	paths := []evidence.FirewallPath{{Direction: evidence.DirReply, Case: evidence.PathUntracked, Packet: "tcp 203.0.113.10:8080 → 192.0.2.10:40000 [S.] in eth1",
		CtState: "invalid", Hooks: []string{"prerouting", "forward"}, Verdict: "drop", Certain: true, By: 3, Others: 2,
		Hits: []evidence.PathHit{
			hit("forward", 4, 0, "ct state invalid counter packets 3 bytes 120 drop"),
			hit("input", 7, 0, "fib saddr . iif oif 0 drop"),
			hit("input", 9, 0, "fib saddr . iif oif 0 drop"),
			hit("my_chain", 2, 1, "ct state invalid counter packets 3 bytes 120 drop"),
			legacy,
		}}}
	got := pathLines(paths, headers)
	want := []string{
		"# reply, if this host never saw the request, ct state invalid: tcp 203.0.113.10:8080 → 192.0.2.10:40000 [S.] in eth1 (prerouting → forward)",
		"table inet filter  chain forward (hook forward priority 0; policy accept)",
		"  ct state invalid counter packets 3 bytes 120 drop  # handle 4",
		"table inet filter (dormant: not applied)  chain input (hook input priority 0; policy drop)",
		"  fib saddr . iif oif 0 drop  # handle 7",
		"  fib saddr . iif oif 0 drop  # handle 9",
		"  table inet filter my_chain",
		"    ct state invalid counter packets 3 bytes 120 drop  # handle 2",
		"iptables-legacy table filter  chain FORWARD (policy ACCEPT)",
		"  [3:120] -A FORWARD -j DROP  # rule 2",
		"# verdict: drop by inet filter my_chain handle 2; 2 rule(s) on the way cannot match it",
	}
	if !slices.Equal(got, want) {
		t.Errorf("lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ingress := evidence.FirewallRule{Family: "netdev", Table: "t", Chain: "c", Hook: "ingress", Priority: -500}
	if h := nftChainHeader(ingress, "accept", "eth0", false); h != `table netdev t  chain c (hook ingress device "eth0" priority -500; policy accept)` {
		t.Errorf("netdev header = %q", h)
	}
	for n, want := range map[int]string{
		0: "no nftables tables: nothing here filters with nftables",
		1: "no ct state invalid or fib reverse-path rules in 1 nftables table",
		2: "no ct state invalid or fib reverse-path rules in 2 nftables tables",
	} {
		if got := noRulesLine(n); got != want {
			t.Errorf("noRulesLine(%d) = %q", n, got)
		}
	}
}

func TestFirewallRuleDropsWhere(t *testing.T) {
	for v, want := range map[string]bool{"drop": true, "reject": true, "accept": false, "jump x": false, "": false} {
		if got := (evidence.FirewallRule{Verdict: v}).Drops(); got != want {
			t.Errorf("Drops(%q) = %v", v, got)
		}
	}
	if w := (evidence.FirewallRule{Family: "inet", Table: "filter", Chain: "forward"}).Where(); w != "inet filter forward" {
		t.Errorf("Where = %q", w)
	}
	if h := hookName(nftables.TableFamilyNetdev, 0); h != "ingress" {
		t.Errorf("netdev hook 0 = %q", h)
	}
	if h := hookName(nftables.TableFamilyINet, 5); h != "ingress" {
		t.Errorf("inet hook 5 = %q", h)
	}
}

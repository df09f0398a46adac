package firewall

import (
	"slices"
	"strings"
	"testing"

	"asym/evidence"

	"github.com/google/nftables"
)

func TestFirewallLines(t *testing.T) {
	fwd := evidence.FirewallRule{Source: "nftables", Family: "inet", Table: "filter", Chain: "forward", Hook: "forward",
		Handle: 4, Kind: "ct_invalid", Verdict: "drop", Text: "ct state invalid counter packets 3 bytes 120 drop"}
	in := fwd
	in.Chain, in.Hook, in.Handle, in.Kind, in.Text = "input", "input", 7, "fib_rpfilter", "fib saddr . iif oif 0 drop"
	in2 := in
	in2.Handle = 9
	user := fwd
	user.Chain, user.Hook, user.Handle = "my_chain", "", 2
	headers := map[string]string{
		groupKey(fwd): nftChainHeader(fwd, "accept", "", false),
		groupKey(in):  nftChainHeader(in, "drop", "", true),
	}
	got := renderLines([]evidence.FirewallRule{fwd, in, in2, user}, headers)
	want := []string{
		"table inet filter  chain forward (hook forward priority 0; policy accept)",
		"  ct state invalid counter packets 3 bytes 120 drop  # handle 4",
		"table inet filter (dormant: not applied)  chain input (hook input priority 0; policy drop)",
		"  fib saddr . iif oif 0 drop  # handle 7",
		"  fib saddr . iif oif 0 drop  # handle 9",
		"table inet filter  chain my_chain",
		"  ct state invalid counter packets 3 bytes 120 drop  # handle 2",
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

package playbook

import (
	"testing"
)

func TestCatalogComplete(t *testing.T) {
	want := []string{"rp_filter_strict_drop", "reply_wrong_egress", "missing_source_rule", "rule_unknown_source", "rule_empty_table", "rule_shadowed", "rule_port_selective",
		"missing_link_route", "wrong_source_address", "ct_invalid_drop", "firewall_path_drop", "nft_fib_rpfilter_drop", "ecmp_multipath", "conntrack_unreplied", "nat_state_miss", "mark_not_restored", "src_valid_mark_off", "mtu_blackhole", "arp_flux",
		"syn_unanswered", "reply_lost_in_path", "reply_returns_elsewhere", "request_lost_in_path", "peer_role_conflict",
		"peer_unreachable", "peer_no_asym", "peer_no_sudo", "peer_timeout", "peer_incompatible", "peer_failed", "peer_not_root",
		"neighbour_failed", "kernel_drop", "path_diverges", "state_missing_in_path", "route_refused"}
	for _, id := range want {
		e, ok := Lookup(FindingID(id))
		if !ok || e.Explain == "" || e.Title == "" || StepIndex(e.Step) < 0 {
			t.Errorf("catalog entry %s missing or incomplete", id)
		}
	}
	if len(Catalog) != len(want) {
		t.Errorf("catalog has %d entries, want %d", len(Catalog), len(want))
	}
}

package evidence

import "strconv"

// FirewallRuleKind says why a firewall rule matters to asymmetric routing.
type FirewallRuleKind string

const (
	// RuleCtInvalid matches ct state invalid: native ct, or xt conntrack/state.
	RuleCtInvalid FirewallRuleKind = "ct_invalid"
	// RuleFibRPFilter is a reverse-path check: fib saddr . iif oif missing /
	// eq 0, or xt rpfilter --invert.
	RuleFibRPFilter FirewallRuleKind = "fib_rpfilter"
)

// Where firewall rules come from.
const (
	SourceNftables       = "nftables"        // native nftables expressions
	SourceIptablesNft    = "iptables-nft"    // xt compat matches in nftables tables
	SourceIptablesLegacy = "iptables-legacy" // x_tables, read with iptables-legacy-save
)

// FirewallRule is one rule that can drop a flow for asymmetric-routing reasons.
type FirewallRule struct {
	Source   string `json:"source"` // SourceNftables, SourceIptablesNft or SourceIptablesLegacy
	Family   string `json:"family"` // "inet","ip","ip6","bridge","netdev","arp"
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Hook     string `json:"hook,omitempty"` // "prerouting","input","forward","output","postrouting","ingress" or "" for a non-base chain
	Priority int    `json:"priority"`
	// Handle is the nftables rule handle (nft delete rule … handle N). For
	// iptables-legacy, which has no handles, it is the rule's 1-based
	// position in its chain (iptables -D CHAIN N).
	Handle     uint64           `json:"handle"`
	Kind       FirewallRuleKind `json:"kind"`
	Verdict    string           `json:"verdict"` // "drop", "reject", "accept", "jump NAME", "goto NAME", "return", "" when no verdict
	HasCounter bool             `json:"has_counter"`
	Packets    uint64           `json:"packets"`
	Bytes      uint64           `json:"bytes"`
	// Text renders the rule as nft would (for iptables-legacy: as
	// iptables-legacy-save -c prints it), e.g.
	// `ct state invalid counter packets 3 bytes 120 drop`. "…" stands for
	// conditions or statements asym does not spell out.
	Text string `json:"text"`
}

// Drops says whether the rule discards what it matches.
func (r FirewallRule) Drops() bool { return r.Verdict == "drop" || r.Verdict == "reject" }

// Where renders "inet filter forward" style location.
func (r FirewallRule) Where() string { return r.Family + " " + r.Table + " " + r.Chain }

// CounterKey is the rule's key in a live Sample's counters.
func (r FirewallRule) CounterKey() string {
	return CounterRulePrefix + r.Where() + " #" + strconv.FormatUint(r.Handle, 10)
}

// FirewallView is what the firewall probe found: the rules that drop packets
// conntrack calls invalid (the reply of an asymmetric flow that this host
// never saw start) or that fail a reverse-path (fib) check.
type FirewallView struct {
	Report
	Rules        []FirewallRule `json:"rules"`
	Tables       int            `json:"tables"`                  // nftables tables seen
	LegacyTables []string       `json:"legacy_tables,omitempty"` // iptables-legacy tables present, e.g. "ip filter", "ip6 raw"
}

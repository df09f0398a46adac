package evidence

import (
	"net/netip"
	"strconv"

	"asym/flow"
)

// FirewallRuleKind says why a firewall rule matters to asymmetric routing.
type FirewallRuleKind string

const (
	// RuleCtInvalid matches ct state invalid: native ct, or xt conntrack/state.
	RuleCtInvalid FirewallRuleKind = "ct_invalid"
	// RuleFibRPFilter is a reverse-path check: fib saddr . iif oif missing /
	// eq 0, or xt rpfilter --invert.
	RuleFibRPFilter FirewallRuleKind = "fib_rpfilter"
	// RuleICMPError matches ICMP errors (destination unreachable,
	// fragmentation needed, packet too big, time exceeded): dropped where
	// this host sends them, path MTU discovery stops working through it.
	RuleICMPError FirewallRuleKind = "icmp_error"
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

// FirewallView is what the firewall probe found on the flow's way through
// this host: the rules that drop packets conntrack calls invalid (the reply
// of an asymmetric flow that this host never saw start), that fail a
// reverse-path (fib) check or that drop the ICMP errors path MTU discovery
// needs; the NAT and mark rules the flow meets; and the paths themselves.
type FirewallView struct {
	Report
	Rules        []FirewallRule `json:"rules"`
	Tables       int            `json:"tables"`                  // nftables tables seen
	LegacyTables []string       `json:"legacy_tables,omitempty"` // iptables-legacy tables present, e.g. "ip filter", "ip6 raw"
	// NAT are the nftables NAT rules that can translate the flow, either
	// direction; NATOthers counts the NAT rules that cannot.
	NAT       []NATRule `json:"nat,omitempty"`
	NATOthers int       `json:"nat_others,omitempty"`
	// Marks are the rules that set packet or connection marks.
	Marks []MarkRule `json:"marks,omitempty"`
	// Paths are the flow's ways through the firewall, one per direction
	// and case (the request's first packet; the reply with and without
	// the request seen here; the ICMP errors a router sends about it).
	// Rules, NAT and Marks hold what these paths meet.
	Paths []FirewallPath `json:"paths,omitempty"`
	// Read is what the probe fetched from the kernel to walk them.
	Read *FirewallRead `json:"read,omitempty"`
}

// NATKind is what a NAT rule does to a flow.
type NATKind string

const (
	NATDest       NATKind = "dnat"       // rewrites the destination (a port forward, a load-balanced service)
	NATSource     NATKind = "snat"       // rewrites the source
	NATMasquerade NATKind = "masquerade" // rewrites the source to the outgoing interface's address
	NATRedirect   NATKind = "redirect"   // rewrites the destination to this host
)

// NATRule is a firewall rule that translates the flow (or may: Partial
// says it has conditions asym did not read). Only rules whose conditions
// can match either direction of the flow are reported; NATView.Others
// counts the rest.
type NATRule struct {
	Source   string  `json:"source"`
	Family   string  `json:"family"`
	Table    string  `json:"table"`
	Chain    string  `json:"chain"`
	Hook     string  `json:"hook,omitempty"`
	Priority int     `json:"priority"`
	Handle   uint64  `json:"handle"`
	Kind     NATKind `json:"kind"`
	// To is where it translates to: an address, a port, or both (invalid
	// address or port 0 when the rule does not say).
	ToAddr netip.Addr `json:"to_addr,omitzero"`
	ToPort uint16     `json:"to_port,omitempty"`
	// What it selects, as far as asym read it (zero: any).
	Proto      uint8        `json:"proto,omitempty"`
	Src        netip.Prefix `json:"src,omitzero"`
	Dst        netip.Prefix `json:"dst,omitzero"`
	Sport      uint16       `json:"sport,omitempty"`
	Dport      uint16       `json:"dport,omitempty"`
	Iif        string       `json:"iif,omitempty"`
	Oif        string       `json:"oif,omitempty"`
	Partial    bool         `json:"partial,omitempty"` // conditions asym did not read: it may not apply
	HasCounter bool         `json:"has_counter"`
	Packets    uint64       `json:"packets"`
	Text       string       `json:"text"`
}

// Matches says whether the rule's conditions select the flow's packets
// going one way (src to dst), as far as asym read them.
func (r NATRule) Matches(f flow.Flow) bool {
	ok := (r.Proto == 0 || r.Proto == uint8(f.Proto)) &&
		(!r.Src.IsValid() || r.Src.Contains(f.Src.Addr())) && (!r.Dst.IsValid() || r.Dst.Contains(f.Dst.Addr())) &&
		(r.Sport == 0 || r.Sport == f.Src.Port()) && (r.Dport == 0 || r.Dport == f.Dst.Port())
	return ok
}

// Translate is the flow as the rule rewrites it (the request's direction).
func (r NATRule) Translate(f flow.Flow) flow.Flow {
	switch r.Kind {
	case NATDest, NATRedirect:
		to := f.Dst
		if r.ToAddr.IsValid() {
			to = netip.AddrPortFrom(r.ToAddr, to.Port())
		}
		if r.ToPort != 0 {
			to = netip.AddrPortFrom(to.Addr(), r.ToPort)
		}
		f.Dst = to
	case NATSource:
		from := f.Src
		if r.ToAddr.IsValid() {
			from = netip.AddrPortFrom(r.ToAddr, from.Port())
		}
		if r.ToPort != 0 {
			from = netip.AddrPortFrom(from.Addr(), r.ToPort)
		}
		f.Src = from
	}
	return f
}

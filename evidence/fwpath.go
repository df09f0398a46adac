package evidence

import (
	"fmt"
	"strconv"
	"strings"
)

// PathCase is which packet of the flow a firewall path follows: what the
// rules see of its connection decides which of them match.
type PathCase string

const (
	// PathFirst is the request's first packet: conntrack calls it new.
	PathFirst PathCase = "first"
	// PathTracked is the reply to a request this host saw: established.
	PathTracked PathCase = "tracked"
	// PathUntracked is the reply to a request this host never saw: a TCP
	// SYN-ACK or an ICMP echo reply without state is invalid, a UDP reply
	// a new connection of its own.
	PathUntracked PathCase = "untracked"
	// PathICMPError is the ICMP error (fragmentation needed, IPv6 packet
	// too big) a router sends back about one of the flow's packets.
	PathICMPError PathCase = "icmp-error"
)

// Describe says the case in words, for the path's heading.
func (c PathCase) Describe() string {
	switch c {
	case PathFirst:
		return "the connection's first packet"
	case PathTracked:
		return "if this host saw the request"
	case PathUntracked:
		return "if this host never saw the request"
	case PathICMPError:
		return "the fragmentation-needed this host would send about it"
	}
	return string(c)
}

// FirewallPath is the way one packet of the flow takes through this host's
// firewall, as asym works it out the way the kernel would: the base chains
// of the hooks it crosses in priority order (nftables and iptables-legacy
// alike), each rule evaluated against the packet, jumps and gotos followed
// only where they can match. Hits are the rules that match or may match,
// in the order the packet meets them; the rest are only counted.
type FirewallPath struct {
	Direction Direction `json:"direction"`
	Case      PathCase  `json:"case"`
	// Packet is the packet as the first hook sees it, e.g. "tcp
	// 203.0.113.10:40000 → 198.51.100.11:8080 [S] in eth1".
	Packet  string    `json:"packet"`
	CtState string    `json:"ct_state,omitempty"` // "new", "established", "invalid", "related", "" when unknown
	Hooks   []string  `json:"hooks"`
	Hits    []PathHit `json:"hits,omitempty"`
	// Verdict is what becomes of the packet: "accept" when nothing on the
	// path drops it, else the first drop, reject or queue on the way.
	// Certain says no "may match" stands between the packet and it.
	Verdict string `json:"verdict"`
	Certain bool   `json:"certain"`
	// By is the index in Hits of the rule (or policy) that decides the
	// verdict; -1 when the packet passes every chain without one.
	By int `json:"by"`
	// Others counts the rules the walk evaluated that cannot match the
	// packet: they are not shown.
	Others int `json:"others"`
	// Truncated says why the walk stopped short (a bound), "" when it did not.
	Truncated string `json:"truncated,omitempty"`
}

// PathHit is a rule on a packet's path that matches it or may, or the
// policy of a base chain the packet reaches the end of.
type PathHit struct {
	Source   string `json:"source"` // SourceNftables, SourceIptablesNft or SourceIptablesLegacy
	Family   string `json:"family"`
	Table    string `json:"table"`
	Chain    string `json:"chain"`
	Hook     string `json:"hook,omitempty"` // the hook the packet crosses while it meets the rule
	Priority int    `json:"priority"`       // the base chain's
	// Handle is the nftables handle, the iptables-legacy position; 0 for
	// a policy.
	Handle uint64 `json:"handle,omitempty"`
	Policy bool   `json:"policy,omitempty"`
	Depth  int    `json:"depth,omitempty"` // 0 in a base chain, 1 in a chain it jumps to, …
	// Maybe says the rule may match: a condition asym cannot evaluate
	// statically (Why) stands in it.
	Maybe bool   `json:"maybe,omitempty"`
	Why   string `json:"why,omitempty"`
	// Certain says the packet certainly meets the rule and it matches: no
	// "may match" before it could have decided first.
	Certain    bool             `json:"certain,omitempty"`
	Verdict    string           `json:"verdict,omitempty"` // "drop", "accept", "jump NAME", … "" when it goes on
	Kind       FirewallRuleKind `json:"kind,omitempty"`
	HasCounter bool             `json:"has_counter,omitempty"`
	Packets    uint64           `json:"packets,omitempty"`
	Bytes      uint64           `json:"bytes,omitempty"`
	Text       string           `json:"text"`
}

// Where renders "inet filter forward" style location.
func (h PathHit) Where() string { return h.Family + " " + h.Table + " " + h.Chain }

// Drops says whether the hit discards the packet.
func (h PathHit) Drops() bool { return h.Verdict == "drop" || h.Verdict == "reject" }

// Ref names the hit as a person finds it again: "inet filter forward
// handle 4", "ip filter FORWARD rule 2", "policy of inet filter forward".
func (h PathHit) Ref() string {
	switch {
	case h.Policy:
		return "the policy of " + h.Where()
	case h.Source == SourceIptablesLegacy:
		return h.Where() + " rule " + strconv.FormatUint(h.Handle, 10)
	}
	return h.Where() + " handle " + strconv.FormatUint(h.Handle, 10)
}

// Line renders the hit as nft list does under its chain, indented by its
// depth, with its handle (or position) and, for a may-match, why.
func (h PathHit) Line() string {
	indent := strings.Repeat("  ", h.Depth+1)
	if h.Policy {
		return indent + "policy " + h.Verdict
	}
	ref := "# handle " + strconv.FormatUint(h.Handle, 10)
	if h.Source == SourceIptablesLegacy {
		ref = "# rule " + strconv.FormatUint(h.Handle, 10)
	}
	if h.Maybe {
		ref += ", may match (" + h.Why + ")"
	}
	return indent + h.Text + "  " + ref
}

// Decider is the hit that decides the verdict, or nil.
func (p *FirewallPath) Decider() *PathHit {
	if p == nil || p.By < 0 || p.By >= len(p.Hits) {
		return nil
	}
	return &p.Hits[p.By]
}

// Drops says whether the path ends in a drop or a reject, for sure when
// certain is set.
func (p *FirewallPath) Drops(certain bool) bool {
	if p == nil || (p.Verdict != "drop" && p.Verdict != "reject") {
		return false
	}
	return p.Certain || !certain
}

// Heading is the line that introduces the path in the probe's output.
func (p *FirewallPath) Heading() string {
	state := ""
	if p.CtState != "" {
		state = ", ct state " + p.CtState
	}
	return fmt.Sprintf("# %s, %s%s: %s (%s)", p.Direction, p.Case.Describe(), state, p.Packet, strings.Join(p.Hooks, " → "))
}

// Summary is the line that ends the path: its verdict, the rule that
// decides it and how many rules on the way cannot match.
func (p *FirewallPath) Summary() string {
	var b strings.Builder
	b.WriteString("# verdict: ")
	d := p.Decider()
	switch {
	case d == nil:
		b.WriteString("accept: no rule on the way drops it")
	case !p.Certain:
		fmt.Fprintf(&b, "may %s: %s", p.Verdict, d.Ref())
	default:
		fmt.Fprintf(&b, "%s by %s", p.Verdict, d.Ref())
	}
	if p.Others > 0 {
		fmt.Fprintf(&b, "; %d rule(s) on the way cannot match it", p.Others)
	}
	if p.Truncated != "" {
		b.WriteString("; stopped short: " + p.Truncated)
	}
	return b.String()
}

// Path returns the path of one direction and case, or nil.
func (v *FirewallView) Path(d Direction, c PathCase) *FirewallPath {
	if v == nil {
		return nil
	}
	for i := range v.Paths {
		if v.Paths[i].Direction == d && v.Paths[i].Case == c {
			return &v.Paths[i]
		}
	}
	return nil
}

// FirewallRead is what the firewall probe asked the kernel for: the
// chains it fetched, one request each, and the rules they held. A walk
// fetches only what the flow can reach.
type FirewallRead struct {
	Chains   int `json:"chains"`   // chains listed (headers only)
	Fetched  int `json:"fetched"`  // nftables chains whose rules were fetched
	Rules    int `json:"rules"`    // nftables rules decoded
	Sets     int `json:"sets"`     // sets whose elements were read
	Legacy   int `json:"legacy"`   // iptables-legacy rules decoded (the kernel hands out whole tables)
	Requests int `json:"requests"` // nfnetlink requests sent
}

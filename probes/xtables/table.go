package xtables

import (
	"fmt"
	"strconv"

	"asym/evidence"
)

// Table is one iptables-legacy table as the kernel holds it.
type Table struct {
	Family string // "ip" or "ip6"
	Name   string // "filter", "raw", "mangle", "nat", "security"
	Chains []Chain
	// Err says why the table could not be read; Chains is empty then.
	Err error
	// Stray counts entries no chain reaches (after a built-in chain's
	// policy, before the next chain starts): iptables never writes them.
	Stray int
}

// Chain is a built-in chain (Hook set, with a policy) or a user chain.
type Chain struct {
	Name     string
	Hook     string // "input", "forward", … as evidence.FirewallRule spells it; "" for a user chain
	Priority int    // the table's hook priority (NF_IP_PRI_*); 0 for a user chain
	// Policy is "ACCEPT" or "DROP" for a built-in chain, "" for a user chain
	// (iptables-save prints "-"). PolicyPackets and PolicyBytes count the
	// packets that reached it.
	Policy        string
	PolicyPackets uint64
	PolicyBytes   uint64
	Rules         []Rule
}

// Rule is one rule of a chain.
type Rule struct {
	Position int // 1-based, as iptables -D CHAIN N counts
	// Text is the rule as iptables-legacy-save -c prints it, e.g.
	// "[3:120] -A FORWARD -m conntrack --ctstate INVALID -j DROP".
	Text string
	// Kind is evidence.RuleCtInvalid when an invalid packet satisfies the
	// rule's conntrack or state match, evidence.RuleFibRPFilter for
	// `-m rpfilter --invert`, "" otherwise.
	Kind    evidence.FirewallRuleKind
	Verdict string // as evidence.FirewallRule: "drop", "accept", "jump NAME", … or "" when the rule goes on
	Packets uint64
	Bytes   uint64
	Matches []string // the match names, in order
	Target  string   // "DROP", "ACCEPT", a chain, an extension such as "LOG"; "" when none
	// Select, Exts and TargetExt are what the kernel matches the rule with,
	// for asym's path walk.
	Select    Selector
	Exts      []Extension
	TargetExt Extension
}

// buildTable turns a table's decoded entries into chains and rules.
func buildTable(fam family, ti tableInfo, entries []entry) Table {
	t := Table{Family: fam.name, Name: ti.name}
	spans, stray := splitChains(ti, entries)
	t.Stray = stray
	idx := newChainIndex(spans)
	for _, s := range spans {
		c := Chain{Name: s.name}
		if s.hook >= 0 {
			c.Hook = hookWords[s.hook]
			c.Priority = hookPriority(ti.name, s.hook)
		}
		if s.policy != nil {
			c.Policy = policyName(*s.policy)
			c.PolicyPackets, c.PolicyBytes = s.policy.packets, s.policy.bytes
		}
		for i, e := range s.rules {
			c.Rules = append(c.Rules, buildRule(fam, idx, s.name, i+1, e))
		}
		t.Chains = append(t.Chains, c)
	}
	return t
}

// buildRule renders one rule and works out its kind and verdict.
func buildRule(fam family, idx chainIndex, chain string, pos int, e entry) Rule {
	r := Rule{Position: pos, Packets: e.packets, Bytes: e.bytes, Select: selectorOf(fam, e.ip)}
	r.Exts, r.TargetExt = extensionsOf(e)
	text := "[" + strconv.FormatUint(e.packets, 10) + ":" + strconv.FormatUint(e.bytes, 10) + "] -A " + chain + ipText(fam, e.ip)
	for _, m := range e.matches {
		s, kind := renderMatch(fam, m)
		text += s
		r.Matches = append(r.Matches, m.name)
		// A conntrack INVALID condition outweighs rpfilter, as in the
		// iptables-save parser this replaces.
		switch {
		case kind == evidence.RuleCtInvalid:
			r.Kind = kind
		case kind != "" && r.Kind == "":
			r.Kind = kind
		}
	}
	tt := describeTarget(fam, idx, e)
	r.Text, r.Verdict, r.Target = text+tt.text, tt.verdict, tt.name
	return r
}

// targetDesc is what a rule's target does.
type targetDesc struct {
	text    string // " -j DROP"; "" for a rule that only counts
	verdict string
	name    string
}

// describeTarget renders a target: a standard verdict, a jump or goto by
// offset, or an extension.
func describeTarget(fam family, idx chainIndex, e entry) targetDesc {
	switch t := e.target; t.name {
	case targetStandard:
		return standardTarget(fam, idx, e)
	case "REJECT":
		return targetDesc{renderReject(fam, t), "reject", "REJECT"}
	default:
		return targetDesc{opaque(" -j ", t), "", t.name}
	}
}

// standardTarget renders the target without a name: a verdict, or a jump
// or goto to the byte offset of a chain.
func standardTarget(fam family, idx chainIndex, e entry) targetDesc {
	v, ok := e.target.verdict()
	if !ok {
		return targetDesc{" -j [standard target without a verdict]", "", ""}
	}
	switch v {
	case verdictDrop:
		return targetDesc{" -j DROP", "drop", "DROP"}
	case verdictAccept:
		return targetDesc{" -j ACCEPT", "accept", "ACCEPT"}
	case verdictQueue:
		return targetDesc{" -j QUEUE", "queue", "QUEUE"}
	case verdictReturn:
		return targetDesc{" -j RETURN", "return", "RETURN"}
	}
	if v < 0 {
		return targetDesc{fmt.Sprintf(" -j [verdict %d]", v), "", ""}
	}
	if uint32(v) == e.offset+e.size && e.ip.flags&fam.flagGoto == 0 {
		// A jump to the next rule: iptables writes this for a rule
		// without -j, which only counts (libiptc IPTCC_R_FALLTHROUGH).
		return targetDesc{}
	}
	name, found := idx.at(uint32(v))
	if !found {
		return targetDesc{fmt.Sprintf(" -j [jump to byte %d, outside every chain]", v), "", ""}
	}
	if e.ip.flags&fam.flagGoto != 0 {
		return targetDesc{" -g " + name, "goto " + name, name}
	}
	return targetDesc{" -j " + name, "jump " + name, name}
}

// policyName names a built-in chain's policy from its policy rule.
func policyName(e entry) string {
	v, ok := e.target.verdict()
	switch {
	case !ok || e.target.name != targetStandard:
		return "?"
	case v == verdictAccept:
		return "ACCEPT"
	case v == verdictDrop:
		return "DROP"
	}
	return fmt.Sprintf("[verdict %d]", v)
}

// hookPriority is the priority a table registers its hooks with
// (NF_IP_PRI_*, the same for IPv6), as the iptables-save parser had it.
func hookPriority(table string, hook int) int {
	switch table {
	case "raw":
		return -300
	case "mangle":
		return -150
	case "security":
		return 50
	case "nat":
		if hookWords[hook] == "prerouting" || hookWords[hook] == "output" {
			return -100 // NF_IP_PRI_NAT_DST
		}
		return 100 // NF_IP_PRI_NAT_SRC
	}
	return 0
}

package xtables

import (
	"fmt"

	"asym/evidence"
)

// Source is the evidence.FirewallRule source of every rule read here.
const Source = evidence.SourceIptablesLegacy

// Names lists the tables as evidence.FirewallView.LegacyTables does:
// "ip filter", "ip6 raw".
func (rs *Ruleset) Names() []string {
	var out []string
	for _, t := range rs.Tables {
		out = append(out, t.Family+" "+t.Name)
	}
	return out
}

// FirewallRules are the rules of the kinds asym looks for (conntrack
// INVALID and inverted rpfilter), in table order, as the firewall probe
// reports them: Handle is the rule's position in its chain.
func (rs *Ruleset) FirewallRules() []evidence.FirewallRule {
	var out []evidence.FirewallRule
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			for _, r := range c.Rules {
				if r.Kind == "" {
					continue
				}
				out = append(out, evidence.FirewallRule{
					Source: Source, Family: t.Family, Table: t.Name, Chain: c.Name,
					Hook: c.Hook, Priority: c.Priority, Handle: uint64(r.Position),
					Kind: r.Kind, Verdict: r.Verdict,
					HasCounter: true, Packets: r.Packets, Bytes: r.Bytes, Text: r.Text,
				})
			}
		}
	}
	return out
}

// Headers gives the line that introduces each chain's rules, keyed as the
// firewall probe groups them (source, then FirewallRule.Where()), e.g.
// "iptables-legacy table filter  chain INPUT (policy DROP)".
func (rs *Ruleset) Headers() map[string]string {
	out := map[string]string{}
	for _, t := range rs.Tables {
		tool := familyNamed(t.Family).tool
		for _, c := range t.Chains {
			h := tool + " table " + t.Name + "  chain " + c.Name
			if c.Policy != "" {
				h += " (policy " + c.Policy + ")"
			}
			out[Source+" "+t.Family+" "+t.Name+" "+c.Name] = h
		}
	}
	return out
}

// Problems are sentences about what could not be read, or was odd, for the
// probe's output lines.
func (rs *Ruleset) Problems() []string {
	var out []string
	for _, t := range rs.Tables {
		tool := familyNamed(t.Family).tool
		if t.Err != nil {
			out = append(out, fmt.Sprintf("%s table %s could not be read: %v", tool, t.Name, t.Err))
		}
		if t.Stray > 0 {
			out = append(out, fmt.Sprintf("%s table %s has %d rule(s) that no chain reaches (not written by iptables)", tool, t.Name, t.Stray))
		}
	}
	return out
}

func familyNamed(name string) family {
	if name == familyIPv6.name {
		return familyIPv6
	}
	return familyIPv4
}

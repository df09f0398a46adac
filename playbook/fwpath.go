package playbook

// Analyzers of the flow's paths through the firewall: the rule that drops
// the reply of a flow this host never saw begin (ct_invalid_drop, named on
// its path), and a rule that drops the flow outright on its way
// (firewall_path_drop). Evidence recorded before the paths existed has
// none: ctInvalidDrop then judges from the rule list as it always did.

import (
	"fmt"
	"strings"

	"asym/evidence"
	"asym/fix"
)

// pathLines are the evidence of a path: where it goes, and the hits that
// lead to the rule deciding it (the jumps that reach it, then the rule).
func pathLines(p *evidence.FirewallPath) []Line {
	out := []Line{{Probe: evidence.ProbeFirewall, Text: fmt.Sprintf("the %s, %s: %s, through %s", p.Direction, p.Case.Describe(), p.Packet, strings.Join(p.Hooks, " → "))}}
	d := p.Decider()
	if d == nil {
		return out
	}
	// The jumps that lead to it: the last one at each depth above it.
	var via []Line
	need := d.Depth
	for i := p.By - 1; i >= 0 && need > 0; i-- {
		h := p.Hits[i]
		if h.Depth == need-1 && (strings.HasPrefix(h.Verdict, "jump ") || strings.HasPrefix(h.Verdict, "goto ")) {
			via = append([]Line{{Probe: evidence.ProbeFirewall, Text: h.Where() + ": " + h.Text}}, via...)
			need--
		}
	}
	out = append(out, via...)
	text := d.Where() + ": " + d.Text
	if d.Policy {
		text = d.Where() + ": policy " + d.Verdict + " (no rule before it accepts the packet)"
	}
	mark := "   ← drops it"
	if !p.Certain {
		mark = "   ← may drop it: " + strings.TrimPrefix(p.Summary(), "# verdict: ")
	}
	return append(out, Line{Probe: evidence.ProbeFirewall, Text: text + mark})
}

// ctInvalidDropOnPath: the reply of a flow this host never saw begin (no
// conntrack entry, or one that never saw a reply) is dropped on its way
// through the firewall, by a rule that has been dropping such packets (its
// counter, or conntrack's invalid count when it has none).
func ctInvalidDropOnPath(e *evidence.Evidence, p *evidence.FirewallPath) []Finding {
	d := p.Decider()
	if d == nil || !p.Drops(false) {
		return nil
	}
	ct := e.Conntrack
	if counted := d.HasCounter && d.Packets > 0 || !d.HasCounter && ct.Stats.Invalid > 0; !counted || liveTracked(e) {
		return nil
	}
	ev := pathLines(p)
	switch {
	case len(ct.Entries) == 0:
		ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: "no conntrack entry for " + e.Flow.String() + " in either direction: its first packet never passed this host"})
	default:
		for _, en := range ct.Entries {
			if !en.Unreplied {
				return nil // the flow is tracked both ways here: its packets are not INVALID
			}
			ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: en.Text})
		}
	}
	if ct.Stats.Invalid > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: fmt.Sprintf("conntrack statistics: invalid=%d (summed over %d CPUs)", ct.Stats.Invalid, ct.Stats.CPUs)})
	}
	ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: "not proven for this flow from state alone: watch it live (check --watch) while it fails"})
	what := d.Ref()
	if !d.Policy {
		what += " (" + d.Text + ")"
	}
	return []Finding{{
		ID:       CtInvalidDrop,
		Severity: Warning,
		Title:    fmt.Sprintf("This host never saw the flow begin, and its reply's way through the firewall ends at %s: the reply is dropped if it crosses this host", what),
		Evidence: ev,
		Fix:      ctInvalidFix(e),
	}}
}

// ctInvalidFix is the advice of ct_invalid_drop: the same device for both
// directions.
func ctInvalidFix(e *evidence.Evidence) *fix.Fix {
	return &fix.Fix{Summary: "Make both directions of the flow cross the same stateful device",
		Advice: "The request reached another device (or took another path) than the reply. Pin the route for the prefix so both " +
			"directions cross this firewall, take the prefix out of ECMP, or give the firewall pair shared state (conntrackd). " +
			"Accepting INVALID would hide the problem and weaken the firewall.",
		Caveat: "On the other firewall the same flow shows [UNREPLIED]: the request went through it.",
		Prove:  []string{proveConntrack(e), proveRoute(e, true) + "   # on the router before the pair: which member the reply hashes to"}}
}

// firewallPathDrop: a rule on the flow's way through this host certainly
// drops it, whatever state conntrack gives it: the request's first packet
// on the host that sends or answers it, or the reply to a request this
// host tracks. (A router that never saw the request is ct_invalid_drop's.)
func firewallPathDrop(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) {
		return nil
	}
	tracked := ok(e.Conntrack) && len(e.Conntrack.Entries) > 0
	cases := []struct {
		p    *evidence.FirewallPath
		sure bool // the packet does come here
	}{
		{e.Firewall.Path(evidence.DirRequest, evidence.PathFirst), role(e) != evidence.RoleMiddle},
		{e.Firewall.Path(evidence.DirReply, evidence.PathTracked), role(e) != evidence.RoleMiddle || tracked},
	}
	for _, c := range cases {
		if !c.sure || !c.p.Drops(true) {
			continue
		}
		d := c.p.Decider()
		ev := pathLines(c.p)
		if d.HasCounter && d.Packets > 0 {
			ev = append(ev, Line{Probe: evidence.ProbeFirewall, Text: fmt.Sprintf("its counter: %d packets dropped so far", d.Packets)})
		}
		return []Finding{{
			ID:       FirewallPathDrop,
			Title:    fmt.Sprintf("The firewall drops the %s on its way through this host: %s", c.p.Direction, d.Ref()),
			Evidence: ev,
			Fix: &fix.Fix{Summary: "Let the flow through where the rule stops it",
				Advice: fmt.Sprintf("%s drops the %s (%s). Accept the flow before it (for a reply, `ct state established,related accept` early in the chain), "+
					"or route the %s by an interface the firewall lets it through.", d.Ref(), c.p.Direction, c.p.Packet, c.p.Direction),
				Prove: []string{proveConntrack(e)}},
		}}
	}
	return nil
}

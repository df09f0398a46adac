package playbook

// The kernel refuses to route the flow: a blackhole, unreachable or
// prohibit route (or rule) ends it, or no table the rules lead to has a
// route. The First step proves it from the kernel's own answer; the route
// that ends it comes from a dump the kernel filters by route type, the rule
// from the policy rules when the Third step has read them.

import (
	"fmt"

	"asym/evidence"
	"asym/fix"
)

func routeRefused(e *evidence.Evidence) []Finding {
	if role(e) == evidence.RoleOffPath {
		return nil // not forwarding: every forwarded lookup is refused, and means nothing
	}
	var out []Finding
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil {
			continue
		}
		kind := p.Decision.Refusal()
		if kind == "" {
			continue
		}
		out = append(out, refusedFinding(e, p, kind))
	}
	return out
}

func refusedFinding(e *evidence.Evidence, p *evidence.PathView, kind string) Finding {
	dst := p.Decision.Query.Dst
	why := "the kernel refuses to route the " + string(p.Direction)
	if p.Decision.Error != "" {
		why += " (" + p.Decision.Error + ")"
	}
	f := Finding{
		ID:       RouteRefused,
		Evidence: []Line{cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text + "   ← " + why}},
	}
	switch r := refusingRule(e, p, kind); {
	case len(p.Refusers) > 0:
		rf := p.Refusers[0]
		table := evidence.TableName(rf.Table)
		f.Title = fmt.Sprintf("The kernel refuses to route the %s to %s: the %s route %s in table %s ends it", p.Direction, dst, kind, evidence.HostOrPrefix(rf.Route.Dst), table)
		f.Evidence = append(f.Evidence, Line{Probe: p.Probe, Text: rf.Route.Text + " table " + table})
		f.Fix = refuserFix(kind, rf, dst)
	case r != nil:
		f.Title = fmt.Sprintf("The kernel refuses to route the %s to %s: policy rule %d (%s) ends it", p.Direction, dst, r.Priority, r.Action)
		f.Evidence = append(f.Evidence, Line{Probe: evidence.ProbeRules, Text: r.Text})
		f.Fix = &fix.Fix{
			Summary: fmt.Sprintf("Take out policy rule %d if it is not meant to block this flow", r.Priority),
			Advice: fmt.Sprintf("The rule %q matches the %s and ends it (%s). If it is meant (a block list), this flow is blocked on purpose. Otherwise delete it: ip rule del priority %d. asym does not remove a rule it did not add.",
				r.Text, p.Direction, r.Action, r.Priority),
		}
	case kind == "no route":
		f.Title = fmt.Sprintf("The kernel has no route for the %s to %s in the tables the policy rules lead to", p.Direction, dst)
		f.Fix = &fix.Fix{
			Summary: fmt.Sprintf("Give the host a route to %s", dst),
			Advice:  fmt.Sprintf("No table the policy rules lead to (main among them) has a route that holds %s, not even a default route: the %s is dropped before it leaves (ENETUNREACH). Add the route (or the default route) the host is missing, in the table its rules use for this traffic; a network manager that lost it (a DHCP lease that expired, an interface that went down) is the usual cause.", dst, p.Direction),
		}
	default:
		f.Title = fmt.Sprintf("The kernel refuses to route the %s to %s (%s)", p.Direction, dst, kind)
		f.Fix = &fix.Fix{
			Summary: fmt.Sprintf("Find the %s route or rule that holds %s", kind, dst),
			Advice:  fmt.Sprintf("The kernel answers as a %s route or rule does, but asym found no such route that holds %s; read the rules (ip rule) and the tables they lead to.", kind, dst),
		}
	}
	return f
}

// refusingRule is the first policy rule that matches the packet and ends
// it the way the kernel did, when the rules were read.
func refusingRule(e *evidence.Evidence, p *evidence.PathView, kind string) *evidence.Rule {
	if kind == "no route" {
		kind = "unreachable" // an unreachable rule answers ENETUNREACH, as no route does
	}
	if !ok(e.Rules) || (kind != "blackhole" && kind != "unreachable" && kind != "prohibit") {
		return nil
	}
	for _, r := range e.Rules.Matching(p.Packet) {
		if r.Action == kind {
			return &r
		}
	}
	return nil
}

// refuserFix shows how to take the route out; asym does not apply it: a
// discard route is often meant (a block list, a routing daemon's summary),
// and only a person can tell.
func refuserFix(kind string, rf evidence.Refuser, dst fmt.Stringer) *fix.Fix {
	words := []string{"ip"}
	if rf.Route.Dst.Addr().Is6() {
		words = append(words, "-6")
	}
	words = append(words, "route", "del", kind, evidence.HostOrPrefix(rf.Route.Dst), "table", evidence.TableName(rf.Table))
	return &fix.Fix{
		Summary: fmt.Sprintf("Remove the %s route %s from table %s if it is not meant to block this flow", kind, evidence.HostOrPrefix(rf.Route.Dst), evidence.TableName(rf.Table)),
		Advice: fmt.Sprintf("Every packet to %s ends at this route. Such routes are left by DDoS blocks, decommissioned VPNs and routing daemons' summary routes; if it is meant, this flow is blocked on purpose. Otherwise remove it (in the target's namespace): %s. asym does not remove a route it did not add.",
			dst, evidence.Command(words...)),
	}
}

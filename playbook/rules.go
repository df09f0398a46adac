package playbook

// Analyzers of configuration (the Third step): the policy rules, the tables
// they point at and the ARP sysctls that make a multi-homed host asymmetric.

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// typoRule is a source rule whose address no interface holds, with the
// address it most likely meant.
type typoRule struct {
	Rule  evidence.Rule
	Iface string
	Meant netip.Addr
	Table *evidence.Table
}

func typoRules(e *evidence.Evidence) []typoRule {
	if !ok(e.Rules) || e.Host == nil {
		return nil
	}
	var out []typoRule
	for _, r := range e.Rules.Rules {
		if r.Default() || !r.Src.IsValid() || r.Src.Bits() != r.Src.Addr().BitLen() || e.Host.Owner(r.Src.Addr()) != nil {
			continue
		}
		for _, c := range e.Host.Connected(r.Src.Addr()) {
			tb := e.Tables.Table(r.Table)
			if tb != nil && len(tb.Routes) > 0 && !slices.ContainsFunc(tb.Routes, func(rt evidence.Route) bool { return rt.Dev == c.Iface.Name }) {
				continue // the table sends elsewhere: not this interface's rule
			}
			out = append(out, typoRule{Rule: r, Iface: c.Iface.Name, Meant: c.Prefix.Addr(), Table: tb})
			break
		}
	}
	return out
}

func ruleUnknownSource(e *evidence.Evidence) []Finding {
	var out []Finding
	for _, t := range typoRules(e) {
		ev := []Line{
			{Probe: evidence.ProbeRules, Text: t.Rule.Text},
			{Probe: evidence.ProbeHost, Text: fmt.Sprintf("no interface holds %s; %s holds %s", t.Rule.Src.Addr(), t.Iface, t.Meant)},
		}
		if t.Table != nil {
			for _, rt := range t.Table.Routes {
				ev = append(ev, Line{Probe: evidence.ProbeTables, Text: fmt.Sprintf("table %d: %s", t.Table.ID, rt.Text)})
			}
		}
		out = append(out, Finding{
			ID:       RuleUnknownSource,
			Title:    fmt.Sprintf("Rule %d selects on %s, which no interface holds (%s has %s)", t.Rule.Priority, t.Rule.Src.Addr(), t.Iface, t.Meant),
			Evidence: ev,
			Fix:      typoFix(t),
		})
	}
	return out
}

func ruleEmptyTable(e *evidence.Evidence) []Finding {
	if !ok(e.Rules) || !ok(e.Tables) {
		return nil
	}
	var out []Finding
	seen := map[int]bool{}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil {
			continue
		}
		for _, r := range e.Rules.Matching(p.Packet) {
			tb := e.Tables.Table(r.Table)
			if r.Default() || r.Action != "lookup" || tb == nil || len(tb.Routes) > 0 || tb.Truncated || seen[r.Table] {
				continue
			}
			seen[r.Table] = true
			f := Finding{
				ID:       RuleEmptyTable,
				Title:    fmt.Sprintf("Rule %d matches the %s but table %d is empty, so the lookup falls through", r.Priority, p.Direction, r.Table),
				Evidence: []Line{{Probe: evidence.ProbeRules, Text: r.Text}, {Probe: evidence.ProbeTables, Text: fmt.Sprintf("table %d: no routes", r.Table)}, cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text}},
			}
			f.Fix = fillTableFix(e, r.Table)
			out = append(out, f)
		}
	}
	return out
}

func ruleShadowed(e *evidence.Evidence) []Finding {
	if !ok(e.Rules) || !ok(e.Tables) {
		return nil
	}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || p.Decision.Failed() {
			continue
		}
		served := e.Rules.Served(&p.Decision, p.Packet)
		if served == nil || served.Priority == 0 {
			continue
		}
		r, answer, shadowed := shadowedRule(e, p, served)
		if !shadowed || portSelective(*served) || !misrouted(e, p, answer) {
			continue // a selective rule that answers first is rule_port_selective's story
		}
		return []Finding{{
			ID:    RuleShadowed,
			Title: fmt.Sprintf("Rule %d (table %d) would route the %s, but rule %d answers first from table %s", r.Priority, r.Table, p.Direction, served.Priority, evidence.TableName(p.Decision.Table)),
			Evidence: []Line{{Probe: evidence.ProbeRules, Text: served.Text}, {Probe: evidence.ProbeRules, Text: r.Text}, cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text},
				{Probe: evidence.ProbeTables, Text: fmt.Sprintf("table %d would answer: %s", r.Table, answer.Text)}},
			Fix: moveRuleFix(e, r, *served),
		}}
	}
	return nil
}

// expectedEgress is the interface a direction should leave by for the flow
// to be symmetric here: a reply by the interface its request came in on,
// a request by the interface that holds its source. "" when unknown.
func expectedEgress(e *evidence.Evidence, p *evidence.PathView) string {
	if p.Direction == evidence.DirReply {
		if req := okPath(e.Request); req != nil {
			return req.Ingress
		}
		return ""
	}
	if role(e) == evidence.RoleClient {
		return e.Host.LocalIface
	}
	return ""
}

// misrouted: the direction leaves by another interface than it should, and
// the other rule's route (when given) would send it the right way.
func misrouted(e *evidence.Evidence, p *evidence.PathView, better *evidence.Route) bool {
	want := expectedEgress(e, p)
	if want == "" || p.Egress == "" || p.Egress == want {
		return false
	}
	return better == nil || better.Dev == want
}

// portSelective says whether a rule selects on more than addresses: the
// protocol, a port, the input interface, a user or a mark. Such a rule,
// added for one service or one kind of traffic, catches replies nobody
// meant it to.
func portSelective(r evidence.Rule) bool {
	return r.IPProto != 0 || r.Sport != [2]uint16{} || r.Dport != [2]uint16{} || r.Iif != "" || r.HasUID || r.Mark != 0 || r.Mask != 0
}

// rulePortSelective: the rule that decides a direction of the flow selects
// on its protocol, ports, input interface, user or mark, and sends it by
// another interface than the symmetric one. The finding names that rule
// as the cause; its fix puts the flow's own rule before it.
func rulePortSelective(e *evidence.Evidence) []Finding {
	if !ok(e.Rules) {
		return nil
	}
	for _, p := range []*evidence.PathView{okPath(e.Reply), okPath(e.Request)} {
		if p == nil || p.Decision.Failed() {
			continue
		}
		served := e.Rules.Served(&p.Decision, p.Packet)
		if served == nil || served.Default() || !portSelective(*served) || !misrouted(e, p, nil) {
			continue
		}
		want := expectedEgress(e, p)
		ev := []Line{{Probe: evidence.ProbeRules, Text: served.Text + "   ← matches this flow's " + string(p.Direction)},
			cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text + "   ← leaves by " + p.Egress + ", not " + want}}
		fx := outrankFix(e, p, *served)
		if r, answer, shadowed := shadowedRule(e, p, served); shadowed && answer.Dev == want {
			ev = append(ev, Line{Probe: evidence.ProbeRules, Text: r.Text + "   ← would send it by " + want + ", but comes after"})
			fx = moveRuleFix(e, r, *served)
		}
		return []Finding{{
			ID: RulePortSelective,
			Title: fmt.Sprintf("Rule %d (%s) catches this flow's %s and sends it by %s; it should leave by %s",
				served.Priority, ruleSelectors(*served), p.Direction, p.Egress, want),
			Evidence: ev,
			Fix:      fx,
		}}
	}
	return nil
}

// ruleSelectors is a rule's text after its priority.
func ruleSelectors(r evidence.Rule) string {
	if _, after, found := strings.Cut(r.Text, ":"); found {
		return strings.TrimSpace(after)
	}
	return r.Text
}

// shadowedRule finds a later rule that matches the packet and looks up
// another table with a route for it: the rule that would route it, were
// served not answering first; with that table's route.
func shadowedRule(e *evidence.Evidence, p *evidence.PathView, served *evidence.Rule) (evidence.Rule, *evidence.Route, bool) {
	for _, r := range e.Rules.Matching(p.Packet) {
		if r.Default() || r.Action != "lookup" || r.Priority <= served.Priority || r.Table == p.Decision.Table {
			continue
		}
		if tb := e.Tables.Table(r.Table); tb != nil && tb.Lookup(p.Packet.Dst) != nil {
			return r, tb.Lookup(p.Packet.Dst), true
		}
	}
	return evidence.Rule{}, nil, false
}

func missingLinkRoute(e *evidence.Evidence) []Finding {
	sp := sender(e)
	if sp == nil || !ok(e.Tables) || sp.Decision.Failed() || !sp.Decision.Gateway.IsValid() {
		return nil
	}
	tb := e.Tables.Table(sp.Decision.Table)
	if tb == nil || tb.Truncated {
		return nil
	}
	pr := farAddr(e)
	for _, c := range e.Host.Connected(pr) {
		if c.Iface.Name != sp.Egress {
			continue
		}
		if slices.ContainsFunc(tb.Routes, func(r evidence.Route) bool { return r.Covers(pr) }) {
			return nil
		}
		ev := []Line{cmdLine(sp), {Probe: sp.Probe, Text: sp.Decision.Text + "   ← via the gateway"},
			{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s is on %s's own subnet %s", pr, c.Iface.Name, c.Prefix.Masked())}}
		for _, r := range tb.Routes {
			ev = append(ev, Line{Probe: evidence.ProbeTables, Text: fmt.Sprintf("table %d: %s", tb.ID, r.Text)})
		}
		src := e.Host.Local
		if !c.Prefix.Contains(src) {
			src = c.Prefix.Addr()
		}
		return []Finding{{
			ID:       MissingLinkRoute,
			Title:    fmt.Sprintf("Table %d has no route for %s, so replies to %s on the same subnet go via %s", tb.ID, c.Prefix.Masked(), pr, sp.Decision.Gateway),
			Evidence: ev,
			Fix: &fix.Fix{Summary: fmt.Sprintf("Add %s's link route to table %d", c.Iface.Name, tb.ID),
				Steps: fix.Steps{&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: tb.ID, Dst: c.Prefix.Masked(), Dev: c.Iface.Name, Scope: "link", PrefSrc: src}}}},
		}}
	}
	return nil
}

func missingSourceRule(e *evidence.Evidence) []Finding {
	sp := sender(e)
	h := e.Host
	if sp == nil || !ok(e.Rules) || !multiHomed(h) || sp.Egress == "" || sp.Egress == h.LocalIface || role(e) == evidence.RoleServer && replyMarkedBack(e) {
		return nil
	}
	if len(markNotRestored(e)) > 0 {
		return nil // the host routes this address's replies by mark: mark_not_restored says what breaks it
	}
	owner := h.Iface(h.LocalIface)
	if owner == nil || owner.Kind == "dummy" || owner.Name == "lo" {
		return nil
	}
	for _, r := range e.Rules.Rules {
		if !r.Default() && r.Src.IsValid() && r.Src.Contains(h.Local) && r.Src.Bits() > 0 {
			return nil // a rule exists; rule_shadowed / rule_empty_table say why it does not work
		}
	}
	for _, t := range typoRules(e) {
		if t.Meant == h.Local {
			return nil // rule_unknown_source has the fix: the rule names the wrong address
		}
	}
	var ev []Line
	for _, i := range h.Ifaces {
		if i.Name != "lo" && len(i.Addrs) > 0 {
			ev = append(ev, Line{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s holds %s", i.Name, joinPrefixes(i.Addrs))})
		}
	}
	ev = append(ev, cmdLine(sp), Line{Probe: sp.Probe, Text: sp.Decision.Text + "   ← " + h.Local.String() + " leaves by " + sp.Egress})
	ev = append(ev, Line{Probe: evidence.ProbeRules, Text: "no rule selects on from " + h.Local.String() + ": " + strings.Join(ruleTexts(e.Rules), " | ")})
	return []Finding{{
		ID:       MissingSourceRule,
		Title:    fmt.Sprintf("No policy rule sends traffic from %s out of %s; it follows table %s by %s", h.Local, h.LocalIface, evidence.TableName(sp.Decision.Table), sp.Egress),
		Evidence: ev,
		Fix:      sourceRoutingFix(e, ""),
	}}
}

func ruleTexts(v *evidence.RulesView) []string {
	var out []string
	for _, r := range v.Rules {
		out = append(out, strings.ReplaceAll(r.Text, "\t", " "))
	}
	return out
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

func arpFlux(e *evidence.Evidence) []Finding {
	h := e.Host
	if h == nil || !ok(e.Sysctls) || !h.Local.Is4() || h.LocalIface == "" {
		return nil
	}
	sub := subnetOf(h.Iface(h.LocalIface), h.Local)
	if !sub.IsValid() || sub.Bits() == 32 {
		return nil
	}
	group := []string{h.LocalIface}
	for _, i := range h.Ifaces {
		if i.Name == h.LocalIface || i.Name == "lo" {
			continue
		}
		for _, a := range i.Addrs {
			if a.Masked() == sub.Masked() {
				group = append(group, i.Name)
				break
			}
		}
	}
	if len(group) < 2 {
		return nil
	}
	var ev []Line
	var steps fix.Steps
	for _, name := range group {
		ign := e.Sysctls.Effective(name, "arp_ignore", -1)
		filt := e.Sysctls.Effective(name, "arp_filter", -1)
		if ign != 0 || filt != 0 {
			continue
		}
		ev = append(ev, Line{Probe: evidence.ProbeSysctls, Text: fmt.Sprintf("%s: arp_ignore=0, arp_filter=0: %s answers ARP for every address of this host", name, name)})
		steps = append(steps,
			&fix.SysctlSet{Sysctl: "net.ipv4.conf." + name + ".arp_ignore", Value: "1"},
			&fix.SysctlSet{Sysctl: "net.ipv4.conf." + name + ".arp_announce", Value: "2"})
	}
	if len(ev) == 0 {
		return nil
	}
	// The neighbours learnt the wrong MACs already: each address announced
	// once from the interface that holds it corrects their entries now.
	for _, name := range group {
		for _, a := range h.Iface(name).Addrs {
			if a.Addr().Is4() && a.Masked() == sub.Masked() {
				steps = append(steps, &fix.ARPAnnounce{Dev: name, Addr: a.Addr()})
			}
		}
	}
	ev = append([]Line{{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s share the subnet %s", strings.Join(group, " and "), sub.Masked())}}, ev...)
	return []Finding{{
		ID:       ARPFlux,
		Title:    fmt.Sprintf("%s are on one subnet and answer ARP for each other's addresses", strings.Join(group, " and ")),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Answer ARP only on the interface that holds the address", Steps: steps,
			Caveat: "The neighbours (the gateway, the hosts of the subnet) keep the MAC they learnt until their entry ages out, minutes on Linux, hours on some routers: asym announces each address once from its own interface (gratuitous ARP), which Linux neighbours take at once; a device that ignores it needs its ARP entry cleared."},
	}}
}

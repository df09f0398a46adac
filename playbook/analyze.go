package playbook

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ---- helpers over evidence ----

// ok reports whether a probe ran and produced data. Generic so that a nil
// *View is seen as nil (an interface holding a nil pointer is not).
func ok[P interface {
	comparable
	OK() bool
}](p P) bool {
	var none P
	return p != none && p.OK()
}

func role(e *evidence.Evidence) evidence.Role {
	if e.Host == nil {
		return ""
	}
	return e.Host.Role
}

// sender is the direction this host originates (client: the request,
// server: the reply); nil in the middle.
func sender(e *evidence.Evidence) *evidence.PathView {
	switch role(e) {
	case evidence.RoleClient:
		return okPath(e.Request)
	case evidence.RoleServer:
		return okPath(e.Reply)
	}
	return nil
}

func okPath(p *evidence.PathView) *evidence.PathView {
	if p == nil || !p.OK() {
		return nil
	}
	return p
}

// farAddr is the far end of the flow as seen from this host.
func farAddr(e *evidence.Evidence) netip.Addr {
	if role(e) == evidence.RoleServer {
		return e.Flow.Src.Addr()
	}
	return e.Flow.Dst.Addr()
}

func cmdLine(p *evidence.PathView) Line { return Line{Probe: p.Probe, Text: "$ " + p.Command} }

// multiHomed: two or more interfaces (not loopback or dummy) hold addresses
// of the flow's family.
func multiHomed(h *evidence.HostView) bool {
	n := 0
	for _, i := range h.Ifaces {
		if i.Name == "lo" || i.Kind == "dummy" {
			continue
		}
		for _, a := range i.Addrs {
			if !a.Addr().IsLinkLocalUnicast() && !a.Addr().IsLoopback() {
				n++
				break
			}
		}
	}
	return n >= 2
}

// subnetOf returns the connected prefix holding addr on its interface.
func subnetOf(ifc *evidence.Iface, addr netip.Addr) netip.Prefix {
	if ifc == nil {
		return netip.Prefix{}
	}
	for _, p := range ifc.Addrs {
		if p.Addr() == addr {
			return p
		}
	}
	return netip.Prefix{}
}

func mtuOf(e *evidence.Evidence, name string) int {
	if e.Host != nil {
		if i := e.Host.Iface(name); i != nil && i.MTU > 0 {
			return i.MTU
		}
	}
	if e.Neighbours != nil {
		for _, l := range e.Neighbours.Links {
			if l.Name == name {
				return l.MTU
			}
		}
	}
	return 0
}

func counter(e *evidence.Evidence, key string) (uint64, bool) {
	if e.Counters == nil || e.Counters.Values == nil {
		return 0, false
	}
	v, ok := e.Counters.Values[key]
	return v, ok
}

// ---- First ----

func rpFilterStrictDrop(e *evidence.Evidence) []Finding {
	var out []Finding
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || !p.Input() || !p.Decision.RPFReject() || p.RPFilter == nil || p.RPFilter.Effective != 1 {
			continue
		}
		src := p.Decision.Query.Src
		back := "another interface"
		ev := []Line{cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text + "   ← the kernel refuses the packet (" + p.Decision.Error + ")"}}
		if rp := p.ReversePath; rp != nil && rp.Dev != "" {
			back = rp.Dev
			ev = append(ev, Line{Probe: p.Probe, Text: "way back to " + src.String() + ": " + rp.Text})
		}
		ev = append(ev, Line{Probe: p.Probe, Text: fmt.Sprintf("net.ipv4.conf.all.rp_filter = %d, net.ipv4.conf.%s.rp_filter = %d: effective %d (strict)", p.RPFilter.All, p.Ingress, p.RPFilter.Dev, p.RPFilter.Effective)})
		if n, ok := counter(e, "TcpExt:IPReversePathFilter"); ok && n > 0 {
			ev = append(ev, Line{Probe: "counters", Text: fmt.Sprintf("TcpExt IPReversePathFilter = %d (packets this namespace dropped for failing the reverse-path check)", n)})
		}
		f := Finding{
			ID:       "rp_filter_strict_drop",
			Title:    fmt.Sprintf("Strict rp_filter on %s drops the %s from %s: the way back leaves by %s", p.Ingress, p.Direction, src, back),
			Evidence: ev,
		}
		f.Fix = sourceRoutingFix(e, "")
		loose := fix.Fix{
			Summary: fmt.Sprintf("Loose reverse-path filter on %s (rp_filter=2): the drop stops, the asymmetry stays", p.Ingress),
			Steps:   fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf." + p.Ingress + ".rp_filter", Value: "2"}},
			Caveat:  "The reply still leaves by " + back + "; a fabric, ISP or firewall that checks source addresses will drop it there. Prefer policy routing.",
		}
		if f.Fix == nil {
			loose.Caveat = "This hides the asymmetry on this host only; make the routing symmetric where you can."
			f.Fix = &loose
		} else {
			f.Fix.Alternatives = append(f.Fix.Alternatives, loose)
		}
		out = append(out, f)
	}
	return out
}

func replyWrongEgress(e *evidence.Evidence) []Finding {
	req, rep := okPath(e.Request), okPath(e.Reply)
	if req == nil || rep == nil || req.Ingress == "" || rep.Egress == "" || req.Ingress == rep.Egress {
		return nil
	}
	switch role(e) {
	case evidence.RoleServer:
	case evidence.RoleMiddle:
		// When asym inferred the ingress from this host's own route back and
		// that route is multipath, the mismatch is the ECMP hash, which
		// ecmp_multipath reports with the right advice.
		if !strings.HasPrefix(req.IngressWhy, "given") && rep.FIB != nil {
			for _, nh := range rep.FIB.Nexthops {
				if nh.Dev == req.Ingress {
					return nil
				}
			}
		}
	default:
		return nil
	}
	f := Finding{
		ID:    "reply_wrong_egress",
		Title: fmt.Sprintf("The reply to %s leaves by %s, but the request came in on %s", e.Flow.Src.Addr(), rep.Egress, req.Ingress),
		Evidence: []Line{
			{Probe: req.Probe, Text: fmt.Sprintf("the request arrives on %s (%s)", req.Ingress, req.IngressWhy)},
			cmdLine(rep),
			{Probe: rep.Probe, Text: rep.Decision.Text + "   ← leaves by " + rep.Egress},
		},
	}
	if role(e) == evidence.RoleServer {
		f.Fix = sourceRoutingFix(e, "")
	} else {
		f.Fix = &fix.Fix{Summary: "Make this router send the reply back the way the request came",
			Advice: fmt.Sprintf("This host forwards the request from %s and the reply towards %s; give the reply a route by %s (a policy rule for %s, or a more specific route), or make the upstream routing symmetric.", req.Ingress, rep.Egress, req.Ingress, e.Flow.Dst.Addr()),
			Prove:  []string{proveCapture(e) + "   # here: the request in on " + req.Ingress + ", the reply out on " + rep.Egress}}
	}
	return []Finding{f}
}

func wrongSourceAddress(e *evidence.Evidence) []Finding {
	if role(e) != evidence.RoleClient {
		return nil
	}
	req := okPath(e.Request)
	h := e.Host
	if req == nil || req.Egress == "" || req.Egress == h.LocalIface {
		return nil
	}
	owner := h.Iface(h.LocalIface)
	sub := subnetOf(owner, h.Local)
	// Addresses on loopback or dummy interfaces (service VIPs, anycast) are
	// meant to leave by whichever interface routes; only a NIC's own
	// connected address makes this a mistake.
	if owner == nil || owner.Name == "lo" || owner.Kind == "dummy" || !sub.IsValid() || sub.Bits() == sub.Addr().BitLen() {
		return nil
	}
	f := Finding{
		ID:    "wrong_source_address",
		Title: fmt.Sprintf("The flow leaves by %s carrying %s's address %s", req.Egress, owner.Name, h.Local),
		Evidence: []Line{
			{Probe: "host", Text: fmt.Sprintf("%s is on %s (%s)", h.Local, owner.Name, sub)},
			cmdLine(req),
			{Probe: req.Probe, Text: req.Decision.Text + "   ← leaves by " + req.Egress},
		},
	}
	f.Fix = sourceRoutingFix(e, "")
	return []Finding{f}
}

// ---- Second ----

func hookRelevant(r evidence.Role, hook string) bool {
	switch hook {
	case "", "prerouting", "ingress":
		return true
	case "forward":
		return r == evidence.RoleMiddle
	case "input":
		return r != evidence.RoleMiddle
	}
	return false
}

func ctInvalidDrop(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) || !ok(e.Conntrack) || !e.Conntrack.Looked {
		return nil
	}
	var ev []Line
	for _, r := range e.Firewall.Rules {
		if r.Kind == "ct_invalid" && r.Drops() && r.Packets > 0 && hookRelevant(role(e), r.Hook) {
			ev = append(ev, Line{Probe: "firewall", Text: r.Where() + ": " + r.Text})
		}
	}
	if len(ev) == 0 {
		return nil
	}
	ct := e.Conntrack
	switch {
	case len(ct.Entries) == 0:
		ev = append(ev, Line{Probe: "conntrack", Text: "no conntrack entry for " + e.Flow.String() + " in either direction: its first packet never passed this host"})
	default:
		for _, en := range ct.Entries {
			if !en.Unreplied {
				return nil // the flow is tracked both ways here: its packets are not INVALID
			}
			ev = append(ev, Line{Probe: "conntrack", Text: en.Text})
		}
	}
	if ct.Stats.Invalid > 0 {
		ev = append(ev, Line{Probe: "conntrack", Text: fmt.Sprintf("conntrack statistics: invalid=%d (summed over %d CPUs)", ct.Stats.Invalid, ct.Stats.CPUs)})
	}
	return []Finding{{
		ID:       "ct_invalid_drop",
		Title:    "A ct state invalid rule drops packets of a flow this host never saw begin",
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Make both directions of the flow cross the same stateful device",
			Advice: "The request reached another device (or took another path) than the reply. Pin the route for the prefix so both " +
				"directions cross this firewall, take the prefix out of ECMP, or give the firewall pair shared state (conntrackd). " +
				"Accepting INVALID would hide the problem and weaken the firewall.",
			Caveat: "On the other firewall the same flow shows [UNREPLIED]: the request went through it.",
			Prove:  []string{proveConntrack(e), proveRoute(e, true) + "   # on the router before the pair: which member the reply hashes to"}},
	}}
}

func nftFibRPFilterDrop(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) {
		return nil
	}
	var rules []evidence.FirewallRule
	for _, r := range e.Firewall.Rules {
		if r.Kind == "fib_rpfilter" && r.Drops() {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return nil
	}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || !p.Input() || p.ReversePath == nil || p.ReversePath.Dev == "" || p.ReversePath.Dev == p.Ingress {
			continue
		}
		var ev []Line
		for _, r := range rules {
			ev = append(ev, Line{Probe: "firewall", Text: r.Where() + ": " + r.Text})
		}
		ev = append(ev, Line{Probe: p.Probe, Text: fmt.Sprintf("the %s arrives on %s, but the way back to %s leaves by %s: %s", p.Direction, p.Ingress, p.Decision.Query.Src, p.ReversePath.Dev, p.ReversePath.Text)})
		f := Finding{
			ID:       "nft_fib_rpfilter_drop",
			Title:    fmt.Sprintf("A fib reverse-path rule drops the %s arriving on %s (the way back leaves by %s)", p.Direction, p.Ingress, p.ReversePath.Dev),
			Evidence: ev,
		}
		if f.Fix = sourceRoutingFix(e, ""); f.Fix == nil {
			f.Fix = &fix.Fix{Summary: "Make the way back symmetric, or loosen the rule", Advice: "Route replies back by " + p.Ingress + ", or change the rule to loose mode (fib saddr oif missing drop) for this interface."}
		}
		return []Finding{f}
	}
	return nil
}

func conntrackUnreplied(e *evidence.Evidence) []Finding {
	if !ok(e.Conntrack) {
		return nil
	}
	for _, en := range e.Conntrack.Entries {
		if !en.Unreplied || en.SrcNAT || en.DstNAT {
			continue
		}
		state := ""
		if en.TCPState != "" {
			state = ", " + en.TCPState
		}
		return []Finding{{
			ID:       "conntrack_unreplied",
			Title:    fmt.Sprintf("This host saw the request but never the reply ([UNREPLIED]%s)", state),
			Evidence: []Line{{Probe: "conntrack", Text: en.Text}},
			Fix: &fix.Fix{Summary: "Find where the reply goes instead",
				Advice: "Check the route back to " + e.Flow.Src.Addr().String() + " on " + e.Flow.Dst.Addr().String() +
					"'s side and on the devices between: the reply takes another path, or is dropped before it gets here.",
				Prove: []string{proveRoute(e, true) + "   # on the far end and the routers between", proveCapture(e) + "   # on the far end: does the reply leave?"}},
		}}
	}
	return nil
}

func natStateMiss(e *evidence.Evidence) []Finding {
	if !ok(e.Conntrack) {
		return nil
	}
	for _, en := range e.Conntrack.Entries {
		if !en.Unreplied || !(en.SrcNAT || en.DstNAT) {
			continue
		}
		kind := "source"
		if en.DstNAT {
			kind = "destination"
		}
		return []Finding{{
			ID:       "nat_state_miss",
			Title:    fmt.Sprintf("This host %s-NATed the flow but no reply came back to it", kind),
			Evidence: []Line{{Probe: "conntrack", Text: en.Text}},
			Fix: &fix.Fix{Summary: "Route the replies back through this translator",
				Advice: fmt.Sprintf("Replies go to %s:%d; make them return through this host (the one holding the translation), or share NAT state between the translators.", en.ReplyDst.Addr(), en.ReplyDst.Port()),
				Prove:  []string{evidence.Command("ip", "route", "get", en.ReplyDst.Addr().String()) + "   # on the replying side: which translator does it reach?"}},
		}}
	}
	return nil
}

func ecmpMultipath(e *evidence.Evidence) []Finding {
	var ev []Line
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || p.FIB == nil {
			continue
		}
		alive := 0
		for _, nh := range p.FIB.Nexthops {
			if !nh.Dead {
				alive++
			}
		}
		if alive < 2 {
			continue
		}
		ev = append(ev,
			Line{Probe: p.Probe, Text: fmt.Sprintf("the %s's route has %d next hops: %s", p.Direction, alive, p.FIB.Text)},
			Line{Probe: p.Probe, Text: fmt.Sprintf("this flow's %s hashes to %s", p.Direction, p.Decision.Text)})
	}
	if len(ev) == 0 {
		return nil
	}
	return []Finding{{
		ID:       "ecmp_multipath",
		Title:    "The flow's route has several next hops (ECMP): the request and the reply are hashed separately",
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Keep both directions on one stateful path",
			Advice: "If the next hops are stateful (firewalls, NAT, load balancers) without shared state, pin this prefix to one next hop or make them share state; a retry with another source port may land on another path, which is why failures look random.",
			Prove: []string{proveConntrack(e) + "   # on each stateful next hop: one has the flow, the other drops its reply",
				proveRoute(e, true) + "   # on the router on the other side: the reply's next hop"}},
	}}
}

// ---- Third ----

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
			{Probe: "rules", Text: t.Rule.Text},
			{Probe: "host", Text: fmt.Sprintf("no interface holds %s; %s holds %s", t.Rule.Src.Addr(), t.Iface, t.Meant)},
		}
		if t.Table != nil {
			for _, rt := range t.Table.Routes {
				ev = append(ev, Line{Probe: "tables", Text: fmt.Sprintf("table %d: %s", t.Table.ID, rt.Text)})
			}
		}
		out = append(out, Finding{
			ID:       "rule_unknown_source",
			Title:    fmt.Sprintf("Rule %d selects on %s, which no interface holds (%s has %s)", t.Rule.Priority, t.Rule.Src.Addr(), t.Iface, t.Meant),
			Evidence: ev,
			Fix:      typoFix(t),
		})
	}
	return out
}

// typoFix points a source rule at the address it was meant for.
func typoFix(t typoRule) *fix.Fix {
	meant := netip.PrefixFrom(t.Meant, t.Meant.BitLen())
	return &fix.Fix{
		Summary: fmt.Sprintf("Point rule %d at %s, the address that is on %s", t.Rule.Priority, t.Meant, t.Iface),
		Steps: fix.Steps{
			&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: t.Rule.Priority, Src: t.Rule.Src, Table: t.Rule.Table}},
			&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: t.Rule.Priority, Src: meant, Table: t.Rule.Table}},
		},
		Caveat: "If " + t.Rule.Src.Addr().String() + " is an address that is coming back (a failover VIP), keep the rule and add one for " + t.Meant.String() + " instead.",
	}
}

// fillTableFix gives an existing, empty table the routes of the flow's
// local interface.
func fillTableFix(e *evidence.Evidence, table int) *fix.Fix {
	fx := newTableFix(e, table)
	if fx == nil {
		return nil
	}
	var steps fix.Steps
	for _, s := range fx.Steps {
		if _, route := s.(*fix.RouteAdd); route {
			steps = append(steps, s)
		}
	}
	return &fix.Fix{Summary: fmt.Sprintf("Fill table %d with %s's link and default routes", table, e.Host.LocalIface), Steps: steps}
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
				ID:       "rule_empty_table",
				Title:    fmt.Sprintf("Rule %d matches the %s but table %d is empty, so the lookup falls through", r.Priority, p.Direction, r.Table),
				Evidence: []Line{{Probe: "rules", Text: r.Text}, {Probe: "tables", Text: fmt.Sprintf("table %d: no routes", r.Table)}, cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text}},
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
		for _, r := range e.Rules.Matching(p.Packet) {
			if r.Default() || r.Action != "lookup" || r.Priority <= served.Priority || r.Table == p.Decision.Table {
				continue
			}
			tb := e.Tables.Table(r.Table)
			if tb == nil || tb.Lookup(p.Packet.Dst) == nil {
				continue
			}
			prio := freePriority(e, served.Priority-1, 0)
			fx := &fix.Fix{Summary: fmt.Sprintf("Move rule %d before rule %d", r.Priority, served.Priority)}
			if prio > 0 {
				fx.Steps = fix.Steps{
					&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: r.Priority, Src: r.Src, Table: r.Table}},
					&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: prio, Src: r.Src, Table: r.Table}},
				}
				if r.Dst.IsValid() || r.Iif != "" || r.Oif != "" || r.Mark != 0 || r.IPProto != 0 {
					fx.Steps = nil
					fx.Advice = fmt.Sprintf("Re-add rule %q with priority %d (below %d).", r.Text, prio, served.Priority)
				}
			}
			return []Finding{{
				ID:    "rule_shadowed",
				Title: fmt.Sprintf("Rule %d (table %d) would route the %s, but rule %d answers first from table %s", r.Priority, r.Table, p.Direction, served.Priority, evidence.TableName(p.Decision.Table)),
				Evidence: []Line{{Probe: "rules", Text: served.Text}, {Probe: "rules", Text: r.Text}, cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text},
					{Probe: "tables", Text: fmt.Sprintf("table %d would answer: %s", r.Table, tb.Lookup(p.Packet.Dst).Text)}},
				Fix: fx,
			}}
		}
	}
	return nil
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
			{Probe: "host", Text: fmt.Sprintf("%s is on %s's own subnet %s", pr, c.Iface.Name, c.Prefix.Masked())}}
		for _, r := range tb.Routes {
			ev = append(ev, Line{Probe: "tables", Text: fmt.Sprintf("table %d: %s", tb.ID, r.Text)})
		}
		src := e.Host.Local
		if !c.Prefix.Contains(src) {
			src = c.Prefix.Addr()
		}
		return []Finding{{
			ID:       "missing_link_route",
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
	if sp == nil || !ok(e.Rules) || !multiHomed(h) || sp.Egress == "" || sp.Egress == h.LocalIface {
		return nil
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
			ev = append(ev, Line{Probe: "host", Text: fmt.Sprintf("%s holds %s", i.Name, joinPrefixes(i.Addrs))})
		}
	}
	ev = append(ev, cmdLine(sp), Line{Probe: sp.Probe, Text: sp.Decision.Text + "   ← " + h.Local.String() + " leaves by " + sp.Egress})
	ev = append(ev, Line{Probe: "rules", Text: "no rule selects on from " + h.Local.String() + ": " + strings.Join(ruleTexts(e.Rules), " | ")})
	return []Finding{{
		ID:       "missing_source_rule",
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
		ev = append(ev, Line{Probe: "sysctls", Text: fmt.Sprintf("%s: arp_ignore=0, arp_filter=0: %s answers ARP for every address of this host", name, name)})
		steps = append(steps,
			&fix.SysctlSet{Sysctl: "net.ipv4.conf." + name + ".arp_ignore", Value: "1"},
			&fix.SysctlSet{Sysctl: "net.ipv4.conf." + name + ".arp_announce", Value: "2"})
	}
	if len(ev) == 0 {
		return nil
	}
	ev = append([]Line{{Probe: "host", Text: fmt.Sprintf("%s share the subnet %s", strings.Join(group, " and "), sub.Masked())}}, ev...)
	return []Finding{{
		ID:       "arp_flux",
		Title:    fmt.Sprintf("%s are on one subnet and answer ARP for each other's addresses", strings.Join(group, " and ")),
		Evidence: ev,
		Fix:      &fix.Fix{Summary: "Answer ARP only on the interface that holds the address", Steps: steps},
	}}
}

// mtuBlackhole: large packets vanish while small ones pass. Proven from
// the flow's packets (findMTUStall: the sender sends the same large segment
// again and again, unanswered, with no ICMP fragmentation-needed back),
// which is the usual case: the smaller link is between hosts, and nothing
// on this host shows it. Suspected from this host's own interfaces when the
// two directions cross different MTUs; that stays as supporting evidence.
func mtuBlackhole(e *evidence.Evidence) []Finding {
	mismatch := mtuMismatch(e)
	if s := findMTUStall(e); s != nil {
		f := mtuStallFinding(e, s)
		if mismatch != nil {
			f.Evidence = append(f.Evidence, mismatch.Evidence...)
		}
		return []Finding{f}
	}
	if mismatch == nil {
		return nil
	}
	if l := live(e); l != nil {
		for _, reply := range []bool{false, true} {
			if frag, _ := fragNeeded(l, reply); len(frag) > 0 {
				mismatch.Evidence = append(mismatch.Evidence,
					Line{Probe: "live", Text: frag[0].Text},
					Line{Probe: "live", Text: "ICMP fragmentation-needed for the flow is seen here and no segment is sent again at the old size: path MTU discovery works on this path, so the mismatch alone does not stall the flow"})
				break
			}
		}
	}
	return []Finding{*mismatch}
}

// mtuMismatch: the request and the reply cross interfaces of this host with
// different MTUs.
func mtuMismatch(e *evidence.Evidence) *Finding {
	req, rep := okPath(e.Request), okPath(e.Reply)
	if req == nil || rep == nil {
		return nil
	}
	type pair struct{ in, out, what string }
	var pairs []pair
	switch role(e) {
	case evidence.RoleServer:
		pairs = []pair{{req.Ingress, rep.Egress, "request in / reply out"}}
	case evidence.RoleMiddle:
		pairs = []pair{{req.Ingress, rep.Egress, "request in / reply out"}, {req.Egress, rep.Ingress, "request out / reply in"}}
	}
	for _, p := range pairs {
		if p.in == "" || p.out == "" || p.in == p.out {
			continue
		}
		a, b := mtuOf(e, p.in), mtuOf(e, p.out)
		if a == 0 || b == 0 || a == b {
			continue
		}
		ev := []Line{{Probe: "neighbours", Text: fmt.Sprintf("%s: %s has mtu %d, %s has mtu %d", p.what, p.in, a, p.out, b)}}
		for _, pv := range []*evidence.PathView{req, rep} {
			if pv.Decision.MTU != 0 {
				ev = append(ev, Line{Probe: pv.Probe, Text: "cached path MTU: " + pv.Decision.Text})
			}
		}
		return &Finding{
			ID:       "mtu_blackhole",
			Title:    fmt.Sprintf("The two directions cross interfaces with different MTUs (%s %d, %s %d)", p.in, a, p.out, b),
			Evidence: ev,
			Fix: &fix.Fix{Summary: "Make the MTU consistent or clamp the MSS",
				Advice: "Large packets may vanish on the smaller path if ICMP fragmentation-needed is filtered: test with DF pings of the larger size from both ends, allow ICMP type 3 code 4, or clamp the TCP MSS to the smaller MTU. asym check --watch proves it from the flow's packets while the failure is reproduced.",
				Prove: []string{evidence.Command("ping", "-M", "do", "-s", fmt.Sprint(max(a, b)-28), "-c", "3", e.Flow.Src.Addr().String()) + "   # from this host: large packets with DF set",
					evidence.Command("tracepath", "-n", e.Flow.Src.Addr().String())}},
		}
	}
	return nil
}

// ---- fixes ----

// sourceRoutingFix builds the fix of both seed articles for the flow's local
// address: a table of its own for its interface (link route and default
// route) and a "from ADDRESS" rule before main. Nil when this host does not
// own an end of the flow.
func sourceRoutingFix(e *evidence.Evidence, _ string) *fix.Fix {
	h := e.Host
	if h == nil || (h.Role != evidence.RoleServer && h.Role != evidence.RoleClient) {
		return nil
	}
	// A rule meant for this address already exists: mend it rather than add
	// a competing table (whose rule would shadow it, or be shadowed).
	for _, t := range typoRules(e) {
		if t.Meant == h.Local {
			return typoFix(t)
		}
	}
	if ok(e.Rules) {
		for _, r := range e.Rules.Rules {
			if r.Default() || !r.Src.IsValid() || r.Src.Bits() == 0 || !r.Src.Contains(h.Local) {
				continue
			}
			if tb := e.Tables.Table(r.Table); tb != nil && len(tb.Routes) == 0 && r.Action == "lookup" {
				return fillTableFix(e, r.Table)
			}
			return nil // it exists and has routes: rule_shadowed or the table's content is the story
		}
	}
	return newTableFix(e, freeTable(e))
}

// newTableFix is the articles' recipe in a table of its own.
func newTableFix(e *evidence.Evidence, table int) *fix.Fix {
	h := e.Host
	ifc := h.Iface(h.LocalIface)
	sub := subnetOf(ifc, h.Local)
	if ifc == nil || !sub.IsValid() || ifc.Name == "lo" {
		return nil
	}
	fx := &fix.Fix{
		Summary: fmt.Sprintf("Source-based routing for %s: table %d sends its traffic by %s, rule \"from %s lookup %d\"", h.Local, table, ifc.Name, h.Local, table),
		Caveat:  "Other interfaces that serve traffic need the same pattern. Make it permanent with the host's network manager, or it is gone at reboot.",
	}
	if sub.Bits() < sub.Addr().BitLen() {
		fx.Steps = append(fx.Steps, &fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: table, Dst: sub.Masked(), Dev: ifc.Name, Scope: "link", PrefSrc: h.Local}})
	}
	gw, how := gatewayFor(e, ifc.Name, sub)
	def := &fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: table, Dst: netip.PrefixFrom(unspecified(h.Local), 0), Dev: ifc.Name, Gateway: gw}}
	if !gw.IsValid() {
		def.Unknown = "the gateway of " + ifc.Name + " (" + how + "): replace GATEWAY"
	}
	pr := farAddr(e)
	if gw.IsValid() || !sub.Contains(pr) {
		fx.Steps = append(fx.Steps, def)
	}
	fx.Steps = append(fx.Steps, &fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: freePriority(e, 1000, 32765), Src: netip.PrefixFrom(h.Local, h.Local.BitLen()), Table: table}})
	return fx
}

func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// gatewayFor finds the interface's gateway: from the gateway probe, or from
// a decision that already goes by a gateway on that subnet.
func gatewayFor(e *evidence.Evidence, iface string, sub netip.Prefix) (netip.Addr, string) {
	if e.Neighbours != nil {
		for _, g := range e.Neighbours.Gateways {
			if g.Iface == iface && g.Gateway.IsValid() {
				return g.Gateway, g.How
			}
		}
	}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p != nil && p.Decision.Gateway.IsValid() && sub.Masked().Contains(p.Decision.Gateway) {
			return p.Decision.Gateway, "the gateway the flow already uses, on " + iface + "'s subnet"
		}
	}
	return netip.Addr{}, "not found yet: run the Third step"
}

// freeTable picks a table id no rule uses and no table seen holds routes.
func freeTable(e *evidence.Evidence) int {
	used := map[int]bool{}
	if e.Rules != nil {
		for _, r := range e.Rules.Rules {
			used[r.Table] = true
		}
	}
	if e.Tables != nil {
		for _, t := range e.Tables.Tables {
			used[t.ID] = true
		}
	}
	for id := 100; id < 252; id++ {
		if !used[id] {
			return id
		}
	}
	return 1000
}

// freePriority picks a rule priority no rule uses, searching from start
// towards stop (either direction). 0 when none.
func freePriority(e *evidence.Evidence, start, stop int) int {
	used := map[int]bool{}
	if e.Rules != nil {
		for _, r := range e.Rules.Rules {
			used[r.Priority] = true
		}
	}
	step := 1
	if stop < start {
		step = -1
	}
	for p := start; p != stop+step; p += step {
		if p > 0 && p < 32766 && !used[p] {
			return p
		}
	}
	return 0
}

// Commands to prove a diagnosis on another device, with the flow filled in.
func proveConntrack(e *evidence.Evidence) string {
	f := e.Flow
	w := []string{"conntrack", "-L", "-p", f.Proto.String(), "--src", f.Src.Addr().String(), "--dst", f.Dst.Addr().String()}
	if f.Proto.HasPorts() && f.Src.Port() != 0 && f.Dst.Port() != 0 {
		w = append(w, "--sport", fmt.Sprint(f.Src.Port()), "--dport", fmt.Sprint(f.Dst.Port()))
	}
	return evidence.Command(w...)
}

func proveRoute(e *evidence.Evidence, reply bool) string {
	f := e.Flow
	if reply {
		f = f.Reverse()
	}
	w := []string{"ip", "route", "get", f.Dst.Addr().String(), "from", f.Src.Addr().String()}
	if f.Proto.HasPorts() && f.Src.Port() != 0 && f.Dst.Port() != 0 {
		w = append(w, "ipproto", f.Proto.String(), "sport", fmt.Sprint(f.Src.Port()), "dport", fmt.Sprint(f.Dst.Port()))
	}
	return evidence.Command(w...)
}

func proveCapture(e *evidence.Evidence) string {
	f := e.Flow
	filter := "host " + f.Src.Addr().String() + " and host " + f.Dst.Addr().String()
	if f.Proto.HasPorts() && f.Src.Port() != 0 {
		filter += " and " + f.Proto.String() + " port " + fmt.Sprint(f.Src.Port())
	}
	return evidence.Command("tcpdump", "-ni", "any", filter)
}

package playbook

// Fixes as data: the articles' source routing and its variants (a new table,
// a rule pointed at the right address, an empty table filled), the free ids
// they need, and commands that prove a diagnosis on another device.

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"net/netip"
)

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

// moveRuleFix gives a shadowed rule a free priority before the rule that
// answers first. A rule that selects on more than its source is left to a
// person as advice (these steps rebuild only its source and table), and a
// rule with no free priority before the one that answers gets the summary
// alone.
func moveRuleFix(e *evidence.Evidence, r, served evidence.Rule) *fix.Fix {
	fx := &fix.Fix{Summary: fmt.Sprintf("Move rule %d before rule %d", r.Priority, served.Priority)}
	prio := freePriority(e, served.Priority-1, 0)
	if prio == 0 {
		return fx
	}
	if r.Dst.IsValid() || r.Iif != "" || r.Oif != "" || r.Mark != 0 || r.IPProto != 0 {
		fx.Advice = fmt.Sprintf("Re-add rule %q with priority %d (below %d).", r.Text, prio, served.Priority)
		return fx
	}
	fx.Steps = fix.Steps{
		&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: r.Priority, Src: r.Src, Table: r.Table}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: prio, Src: r.Src, Table: r.Table}},
	}
	return fx
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

// srcHintFix corrects the source hint of the route the flow uses, when the
// flow's own address belongs to that route's interface (otherwise the route
// is not this address's way out, and binding the application or source
// routing is the fix).
func srcHintFix(e *evidence.Evidence, sp *evidence.PathView) *fix.Fix {
	h, u, fib := e.Host, sp.Unbound, sp.UnboundFIB
	if fib == nil || !fib.Dst.IsValid() || fib.Dev == "" || h.LocalIface != fib.Dev || len(fib.Nexthops) > 0 {
		return &fix.Fix{Summary: "Send from " + h.Local.String() + " on purpose",
			Advice: fmt.Sprintf("The route to %s leaves by %s, which does not hold %s: bind the application to %s, and give %s's address its own table and source rule (source-based routing) so that its traffic leaves by %s.",
				farAddr(e), u.Dev, h.Local, h.Local, h.LocalIface, h.LocalIface)}
	}
	table := fib.Table
	if table == 0 {
		table = evidence.TableMain
	}
	route := fix.RouteSpec{Table: table, Dst: netip.PrefixFrom(fib.Dst.Addr(), fib.Dst.Bits()), Gateway: fib.Gateway, Dev: fib.Dev, PrefSrc: h.Local}
	return &fix.Fix{
		Summary: fmt.Sprintf("Give the route to %s the source hint %s (%s's own address)", fib.Dst, h.Local, fib.Dev),
		Steps:   fix.Steps{&fix.RouteReplace{Route: route}},
		Caveat:  "Connections already open keep their source. Make it permanent where the route is configured (the network manager, DHCP's or cloud-init's route settings), or it comes back with the old hint.",
	}
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
		def.Unknown = "the gateway of " + ifc.Name + " (" + how + ")"
	} else {
		def.GatewayFrom = how
	}
	pr := farAddr(e)
	if gw.IsValid() || !sub.Contains(pr) {
		fx.Steps = append(fx.Steps, def)
	}
	fx.Steps = append(fx.Steps, &fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: sourceRulePriority(e), Src: netip.PrefixFrom(h.Local, h.Local.BitLen()), Table: table}})
	return fx
}

// sourceRulePriority picks the priority of a new source rule: 1000 or the
// next free one, unless a rule with a smaller number decides the flow's
// direction now — a source rule after it could never work, so it goes
// before it.
func sourceRulePriority(e *evidence.Evidence) int {
	if sp := sender(e); sp != nil && ok(e.Rules) {
		if served := e.Rules.Served(&sp.Decision, sp.Packet); served != nil && !served.Default() && served.Priority <= 1000 {
			if p := freePriority(e, served.Priority-1, 1); p > 0 {
				return p
			}
		}
	}
	return freePriority(e, 1000, 32765)
}

// outrankFix puts the flow's own source rule before a rule that catches
// its direction: source-based routing whose rule sits before the culprit.
func outrankFix(e *evidence.Evidence, p *evidence.PathView, culprit evidence.Rule) *fix.Fix {
	fx := sourceRoutingFix(e, "")
	if fx == nil {
		return &fix.Fix{Summary: fmt.Sprintf("Remove rule %d, or give this flow a rule before it", culprit.Priority),
			Advice: fmt.Sprintf("Rule %q sends the %s by %s. Delete it if nothing needs it any more (ip rule del priority %d), or add a rule for this flow with a priority below %d.", culprit.Text, p.Direction, p.Egress, culprit.Priority, culprit.Priority)}
	}
	fx.Caveat = fmt.Sprintf("Rule %d stays for the traffic it was made for; the new rule only wins for %s's own traffic.", culprit.Priority, e.Host.Local)
	return fx
}

func unspecified(a netip.Addr) netip.Addr {
	if a.Is4() {
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// gatewayFor finds the interface's gateway: from the gateway probe (a
// route, the network's configuration, the only neighbour, or the person),
// from a decision that already goes by a gateway on that subnet, or from
// the MAC of the frames the flow brought in on that interface.
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
	if gw, how := gatewayByFrames(e, iface); gw.IsValid() {
		return gw, how
	}
	looked := "no route, configuration or single neighbour names it"
	if e.Neighbours != nil {
		for _, g := range e.Neighbours.Gateways {
			if g.Iface == iface && g.How != "" {
				looked = g.How
			}
		}
	}
	if e.Live == nil {
		return netip.Addr{}, looked + ": retry the flow with the live view (l) or --watch to learn it from the frames that arrive on " + iface
	}
	return netip.Addr{}, looked + ", and no frame of the flow arrived on " + iface + " from a single known neighbour"
}

// gatewayByFrames names the gateway of an interface from the frames of the
// flow that arrived on it: their source MAC is the router that handed them
// over, and the neighbour table knows its address. Only one MAC may have
// sent them: two routers on the link prove nothing about which is the way.
func gatewayByFrames(e *evidence.Evidence, iface string) (netip.Addr, string) {
	if e.Live == nil || e.Neighbours == nil {
		return netip.Addr{}, ""
	}
	macs := map[string]bool{}
	for _, p := range e.Live.Packets {
		if p.Iface == iface && p.Dir == evidence.DirIn && !p.OtherHost && p.SrcMAC != "" && p.ICMPMsg == nil {
			macs[p.SrcMAC] = true
		}
	}
	if len(macs) != 1 {
		return netip.Addr{}, ""
	}
	for _, n := range e.Neighbours.Candidates {
		if n.Dev == iface && macs[n.MAC] {
			return n.Addr, fmt.Sprintf("the router whose MAC %s sent the flow's packets in on %s (neighbour %s)", n.MAC, iface, n.Addr)
		}
	}
	return netip.Addr{}, ""
}

// GatewayChoices are the addresses to offer a person who must name the
// gateway of iface: its resolved neighbours on the subnet, the most recent
// first, each with what is known of it.
func GatewayChoices(e *evidence.Evidence, iface string) []evidence.Neighbour {
	if e == nil || e.Neighbours == nil {
		return nil
	}
	var out []evidence.Neighbour
	for _, n := range e.Neighbours.Candidates {
		if n.Dev == iface {
			out = append(out, n)
		}
	}
	return out
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

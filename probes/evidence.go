package probes

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/firewall"

	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds one probe.
const DefaultTimeout = 3 * time.Second

// Collector runs probes for one flow in one target and gathers their
// evidence. It is safe for concurrent use: the TUI runs probes as commands.
type Collector struct {
	T       *Target
	Flow    flow.Flow
	Iif     string        // where the request arrives, when the person knows better than asym
	Timeout time.Duration // per probe; DefaultTimeout when zero

	mu sync.Mutex
	ev evidence.Evidence
}

// NewCollector prepares a collector.
func NewCollector(t *Target, f flow.Flow, iif string) *Collector {
	return &Collector{T: t, Flow: f, Iif: iif, ev: evidence.Evidence{Flow: f}}
}

// Evidence returns a snapshot of what has been collected so far.
func (c *Collector) Evidence() evidence.Evidence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ev
}

// Run runs one probe (and any probe it needs first that has not run) and
// returns its report. It never panics on kernel errors: they become the
// report's status.
func (c *Collector) Run(ctx context.Context, id evidence.ProbeID) evidence.Reporter {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f := c.Flow
	switch id {
	case evidence.ProbeHost:
		h := ProbeHost(ctx, c.T, f, c.Iif)
		c.set(func(e *evidence.Evidence) { e.Host = h })
		return h
	case evidence.ProbeRequest:
		h := c.host(ctx)
		p := probePath(ctx, c.T, routed(f, h), h, evidence.DirRequest, c.requestIngress(ctx, h))
		c.set(func(e *evidence.Evidence) { e.Request = p })
		return p
	case evidence.ProbeReply:
		h := c.host(ctx)
		req := c.request(ctx)
		var in ingress
		if req.Egress != "" {
			in = ingress{req.Egress, "where the request leaves this host, so where a symmetric reply comes back", evidence.IngressEgress}
		}
		p := probePath(ctx, c.T, routed(f, h), h, evidence.DirReply, in)
		c.set(func(e *evidence.Evidence) { e.Reply = p })
		return p
	case evidence.ProbeCounters:
		v := ProbeCounters(ctx, c.T)
		c.set(func(e *evidence.Evidence) { e.Counters = v })
		return v
	case evidence.ProbeFirewall:
		// The walk needs where the flow crosses this host: the First
		// step's role and interfaces.
		cr := firewall.CrossingOf(c.host(ctx), c.request(ctx), c.reply(ctx))
		v := firewall.ProbePath(ctx, c.T, f, cr)
		c.set(func(e *evidence.Evidence) { e.Firewall = v })
		return v
	case evidence.ProbeConntrack:
		// The forms this host's own NAT rules give the flow are looked up
		// too: a gateway that translates it keys its entry by them.
		var nat []flow.Flow
		if fw := c.Evidence().Firewall; fw != nil {
			nat = evidence.NATForms(fw.NAT, f)
		}
		v := ProbeConntrack(ctx, c.T, f, nat...)
		c.set(func(e *evidence.Evidence) { e.Conntrack = v })
		return v
	case evidence.ProbeMarks:
		ev := c.Evidence()
		in := marksInput{host: c.host(ctx), req: c.request(ctx), rep: c.reply(ctx), fw: ev.Firewall, ct: ev.Conntrack, rules: c.rules(ctx)}
		v := ProbeMarks(ctx, c.T, f, in)
		c.set(func(e *evidence.Evidence) { e.Marks = v })
		return v
	case evidence.ProbeRules:
		v := ProbeRules(ctx, c.T, f, c.ruleScope(ctx))
		c.set(func(e *evidence.Evidence) { e.Rules = v })
		return v
	case evidence.ProbeTables:
		h, rules := c.host(ctx), c.rules(ctx)
		ids, why := c.tablesInPlay(h, rules)
		v := ProbeTables(ctx, c.T, f, ids, why)
		c.set(func(e *evidence.Evidence) { e.Tables = v })
		return v
	case evidence.ProbeSysctls:
		h := c.host(ctx)
		v := ProbeSysctls(ctx, c.T, f, c.ifacesInPlay(ctx, h, true))
		c.set(func(e *evidence.Evidence) { e.Sysctls = v })
		return v
	case evidence.ProbeNeighbours:
		h := c.host(ctx)
		var hops []NeighQuery
		for _, p := range []*evidence.PathView{c.request(ctx), c.reply(ctx)} {
			if p.Egress != "" {
				hops = append(hops, NeighQuery{Addr: p.Decision.NextHop(), Dev: p.Egress})
			}
		}
		v := ProbeNeighbours(ctx, c.T, hops, c.ifacesInPlay(ctx, h, false))
		if v.OK() {
			c.gateways(ctx, h, v)
		}
		c.set(func(e *evidence.Evidence) { e.Neighbours = v })
		return v
	}
	r := &evidence.Report{Probe: id, Status: evidence.StatusFailed, Reason: fmt.Sprintf("asym has no probe named %q", id)}
	return r
}

// gateways adds, on an end of the flow, each interface's gateway towards
// the other end, which the fixes that route by interface need. A flow
// whose other end is on this host too (loopback, or another local
// address) meets no gateway, so none is named. For one whose other end is
// on a subnet of this host (on-link) the gateways are kept for the fixes
// but not shown: the lines would read as the flow's way, and no gateway is
// on it.
func (c *Collector) gateways(ctx context.Context, h *evidence.HostView, v *evidence.NeighView) {
	peer := c.Flow.Dst.Addr()
	switch {
	case h.Role == evidence.RoleServer:
		peer = c.Flow.Src.Addr()
	case h.Role != evidence.RoleClient:
		return
	}
	if peer.IsLoopback() || h.Owner(peer) != nil {
		return
	}
	v.Gateways = ProbeGateways(ctx, c.T, h, peer)
	v.Candidates = ProbeGatewayCandidates(ctx, c.T, h, v.Gateways, peer)
	if len(h.Connected(peer)) > 0 {
		return
	}
	for _, g := range v.Gateways {
		if g.Gateway.IsValid() {
			v.Add("# gateway of %s towards %s: %s (%s)", g.Iface, peer, g.Gateway, g.How)
		}
	}
	for _, n := range v.Candidates {
		v.Add("# could be the gateway of %s: %s", n.Dev, n.Text)
	}
}

func (c *Collector) set(fn func(*evidence.Evidence)) {
	c.mu.Lock()
	fn(&c.ev)
	c.mu.Unlock()
}

// host, request, reply and rules return the evidence a later probe builds
// on, running the probe first when it has not run.
func (c *Collector) host(ctx context.Context) *evidence.HostView {
	if h := c.Evidence().Host; h != nil {
		return h
	}
	return c.Run(ctx, evidence.ProbeHost).(*evidence.HostView)
}

func (c *Collector) request(ctx context.Context) *evidence.PathView {
	if p := c.Evidence().Request; p != nil {
		return p
	}
	return c.Run(ctx, evidence.ProbeRequest).(*evidence.PathView)
}

func (c *Collector) reply(ctx context.Context) *evidence.PathView {
	if p := c.Evidence().Reply; p != nil {
		return p
	}
	return c.Run(ctx, evidence.ProbeReply).(*evidence.PathView)
}

func (c *Collector) rules(ctx context.Context) *evidence.RulesView {
	if r := c.Evidence().Rules; r != nil {
		return r
	}
	return c.Run(ctx, evidence.ProbeRules).(*evidence.RulesView)
}

// ruleScope is what makes a policy rule concern the flow here: its two
// packets as the First step found them, the marks the firewall and
// conntrack may give them, the host's addresses. Nil (report every rule)
// when the host could not be read.
func (c *Collector) ruleScope(ctx context.Context) *evidence.RuleScope {
	h := c.host(ctx)
	if h == nil || !h.OK() {
		return nil
	}
	f := c.Flow
	s := &evidence.RuleScope{Packets: []evidence.Packet{
		{Src: f.Src.Addr(), Dst: f.Dst.Addr(), Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()},
		{Src: f.Dst.Addr(), Dst: f.Src.Addr(), Proto: uint8(f.Proto), Sport: f.Dst.Port(), Dport: f.Src.Port()},
	}}
	for i, p := range []*evidence.PathView{c.request(ctx), c.reply(ctx)} {
		if p != nil && p.OK() {
			s.Packets[i] = p.Packet
		}
	}
	for _, ifc := range h.Ifaces {
		s.Local = append(s.Local, ifc.Addrs...)
	}
	s.Marks = c.possibleMarks()
	return s
}

// possibleMarks are the marks the flow's packets may carry: none, what the
// firewall's mark rules on its way set, what its conntrack entries hold.
// Nil (any mark) when the firewall was not read or sets a mark asym could
// not read.
func (c *Collector) possibleMarks() []uint32 {
	ev := c.Evidence()
	if ev.Firewall == nil || !ev.Firewall.OK() {
		return nil
	}
	marks := []uint32{0}
	for _, m := range ev.Firewall.Marks {
		if m.Partial && !m.Copy && m.Value == 0 {
			return nil
		}
		marks = append(marks, m.Value)
	}
	if ev.Conntrack != nil {
		for _, en := range ev.Conntrack.Entries {
			marks = append(marks, en.Mark)
		}
	}
	return marks
}

// requestIngress decides where the request arrives when this host does not
// send it: --iif if given; on the server, the interface that holds the
// destination (a fabric delivers to that NIC's MAC); in the middle, the
// interface this host would use to reach the source (its reverse path).
func (c *Collector) requestIngress(ctx context.Context, h *evidence.HostView) ingress {
	if c.Iif != "" {
		return ingress{c.Iif, "given with --iif", evidence.IngressGiven}
	}
	switch h.Role {
	case evidence.RoleServer:
		return ingress{h.LocalIface, "the interface that holds " + h.Local.String(), evidence.IngressOwner}
	case evidence.RoleMiddle:
		f := c.Flow.Reverse()
		q := evidence.RouteQuery{Dst: f.Dst.Addr(), Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()}
		if d, err := c.T.RouteGet(ctx, q); err == nil && !d.Failed() && d.Dev != "" {
			return ingress{d.Dev, "the interface this host routes " + q.Dst.String() + " through (the flow's source); give --iif if it arrives elsewhere", evidence.IngressRouteBack}
		}
	}
	return ingress{}
}

// ifacesInPlay lists interfaces whose settings matter: where the flow
// arrives and leaves, the local address's interface, and with all set every
// interface holding an address of the flow's family (two NICs on one subnet
// matter even when the flow uses one).
func (c *Collector) ifacesInPlay(ctx context.Context, h *evidence.HostView, all bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && n != "lo" && !seen[n] && len(out) < 64 {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, p := range []*evidence.PathView{c.request(ctx), c.reply(ctx)} {
		add(p.Ingress)
		add(p.Egress)
	}
	add(h.LocalIface)
	if all {
		for _, i := range h.Ifaces {
			add(i.Name)
		}
	}
	return out
}

// tablesInPlay picks the policy tables worth reading: those of rules that
// match either direction of the flow, and those of rules selecting on an
// address in one of this host's subnets (per-interface tables, and typos).
func (c *Collector) tablesInPlay(h *evidence.HostView, rules *evidence.RulesView) ([]int, map[int]string) {
	why := map[int]string{}
	var ids []int
	add := func(id int, reason string) {
		if id == unix.RT_TABLE_MAIN || id == unix.RT_TABLE_LOCAL || id == unix.RT_TABLE_DEFAULT || id == 0 {
			return
		}
		if _, ok := why[id]; !ok && len(ids) < 64 {
			ids = append(ids, id)
			why[id] = reason
		}
	}
	f := c.Flow
	pkts := []evidence.Packet{
		{Src: f.Src.Addr(), Dst: f.Dst.Addr(), Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()},
		{Src: f.Dst.Addr(), Dst: f.Src.Addr(), Proto: uint8(f.Proto), Sport: f.Dst.Port(), Dport: f.Src.Port()},
	}
	ev := c.Evidence()
	for i, p := range []*evidence.PathView{ev.Request, ev.Reply} {
		if p != nil && p.OK() {
			pkts[i] = p.Packet
		}
	}
	for _, r := range rules.Rules {
		if r.Action != "lookup" {
			continue
		}
		for i, p := range pkts {
			if r.Matches(p) {
				add(r.Table, fmt.Sprintf("rule %d matches the %s", r.Priority, []string{"request", "reply"}[i]))
			}
		}
		if r.Src.IsValid() {
			for _, ifc := range h.Ifaces {
				for _, a := range ifc.Addrs {
					if a.Masked().Contains(r.Src.Addr()) || r.Src.Contains(a.Addr()) {
						add(r.Table, fmt.Sprintf("rule %d selects on %s, in %s's subnet", r.Priority, evidence.HostOrPrefix(r.Src), ifc.Name))
					}
				}
			}
		}
	}
	sort.Ints(ids)
	return ids, why
}

// routed is the form of the flow the kernel routes here: as this host
// translates it when it owns the destination and forwards the flow (DNAT
// happens in prerouting, before the route lookup).
func routed(f flow.Flow, h *evidence.HostView) flow.Flow {
	if h.Translated != nil {
		return *h.Translated
	}
	return f
}

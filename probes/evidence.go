package probes

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"sync"
	"time"

	"asym/flow"

	"golang.org/x/sys/unix"
)

// Evidence is everything the probes learned about one flow on one host.
// Analyzers read it; a nil field means that probe has not run (yet).
type Evidence struct {
	Flow       flow.Flow      `json:"flow"`
	Host       *HostView      `json:"host,omitempty"`
	Request    *PathView      `json:"request,omitempty"`
	Reply      *PathView      `json:"reply,omitempty"`
	Counters   *Counters      `json:"counters,omitempty"`
	Firewall   *FirewallView  `json:"firewall,omitempty"`
	Conntrack  *ConntrackView `json:"conntrack,omitempty"`
	Rules      *RulesView     `json:"rules,omitempty"`
	Tables     *TablesView    `json:"tables,omitempty"`
	Sysctls    *SysctlView    `json:"sysctls,omitempty"`
	Neighbours *NeighView     `json:"neighbours,omitempty"`
	Live       *LiveEvidence  `json:"live,omitempty"`
}

// Probe ids, in the order a full check runs them.
const (
	ProbeIDHost       = "host"
	ProbeIDRequest    = "route.request"
	ProbeIDReply      = "route.reply"
	ProbeIDCounters   = "counters"
	ProbeIDFirewall   = "firewall"
	ProbeIDConntrack  = "conntrack"
	ProbeIDRules      = "rules"
	ProbeIDTables     = "tables"
	ProbeIDSysctls    = "sysctls"
	ProbeIDNeighbours = "neighbours"
	ProbeIDLive       = "live" // not run by Run: WatchLive observes over a window
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
	ev Evidence
}

// NewCollector prepares a collector.
func NewCollector(t *Target, f flow.Flow, iif string) *Collector {
	return &Collector{T: t, Flow: f, Iif: iif, ev: Evidence{Flow: f}}
}

// Evidence returns a snapshot of what has been collected so far.
func (c *Collector) Evidence() Evidence {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ev
}

// Run runs one probe (and any probe it needs first that has not run) and
// returns its report. It never panics on kernel errors: they become the
// report's status.
func (c *Collector) Run(ctx context.Context, id string) Reporter {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f := c.Flow
	switch id {
	case ProbeIDHost:
		h := ProbeHost(ctx, c.T, f)
		c.set(func(e *Evidence) { e.Host = h })
		return h
	case ProbeIDRequest:
		h := c.host(ctx)
		in, why := c.requestIngress(ctx, h)
		p := probePath(ctx, c.T, f, h, "request", in, why)
		c.set(func(e *Evidence) { e.Request = p })
		return p
	case ProbeIDReply:
		h := c.host(ctx)
		req := c.request(ctx)
		in, why := "", ""
		if req.Egress != "" {
			in, why = req.Egress, "where the request leaves this host, so where a symmetric reply comes back"
		} else if h.Role != RoleServer {
			in, why = "", ""
		}
		p := probePath(ctx, c.T, f, h, "reply", in, why)
		c.set(func(e *Evidence) { e.Reply = p })
		return p
	case ProbeIDCounters:
		v := ProbeCounters(ctx, c.T)
		c.set(func(e *Evidence) { e.Counters = v })
		return v
	case ProbeIDFirewall:
		v := ProbeFirewall(ctx, c.T)
		c.set(func(e *Evidence) { e.Firewall = v })
		return v
	case ProbeIDConntrack:
		v := ProbeConntrack(ctx, c.T, f)
		c.set(func(e *Evidence) { e.Conntrack = v })
		return v
	case ProbeIDRules:
		v := ProbeRules(ctx, c.T, f)
		c.set(func(e *Evidence) { e.Rules = v })
		return v
	case ProbeIDTables:
		h, rules := c.host(ctx), c.rules(ctx)
		ids, why := c.tablesInPlay(h, rules)
		v := ProbeTables(ctx, c.T, f, ids, why)
		c.set(func(e *Evidence) { e.Tables = v })
		return v
	case ProbeIDSysctls:
		h := c.host(ctx)
		v := ProbeSysctls(ctx, c.T, f, c.ifacesInPlay(ctx, h, true))
		c.set(func(e *Evidence) { e.Sysctls = v })
		return v
	case ProbeIDNeighbours:
		h := c.host(ctx)
		var hops []NeighQuery
		for _, p := range []*PathView{c.request(ctx), c.reply(ctx)} {
			if p.Egress != "" {
				hops = append(hops, NeighQuery{Addr: p.Decision.NextHop(), Dev: p.Egress})
			}
		}
		v := ProbeNeighbours(ctx, c.T, hops, c.ifacesInPlay(ctx, h, false))
		if h.Role != RoleMiddle && v.OK() {
			peer := f.Dst.Addr()
			if h.Role == RoleServer {
				peer = f.Src.Addr()
			}
			v.Gateways = ProbeGateways(ctx, c.T, h, peer)
			for _, g := range v.Gateways {
				if g.Gateway.IsValid() {
					v.Add("# gateway of %s towards %s: %s (%s)", g.Iface, peer, g.Gateway, g.How)
				}
			}
		}
		c.set(func(e *Evidence) { e.Neighbours = v })
		return v
	}
	r := &Report{Probe: id, Status: StatusFailed, Reason: fmt.Sprintf("asym has no probe named %q", id)}
	return r
}

func (c *Collector) set(fn func(*Evidence)) {
	c.mu.Lock()
	fn(&c.ev)
	c.mu.Unlock()
}

// host, request, reply and rules return the evidence a later probe builds
// on, running the probe first when it has not run.
func (c *Collector) host(ctx context.Context) *HostView {
	if h := c.Evidence().Host; h != nil {
		return h
	}
	return c.Run(ctx, ProbeIDHost).(*HostView)
}

func (c *Collector) request(ctx context.Context) *PathView {
	if p := c.Evidence().Request; p != nil {
		return p
	}
	return c.Run(ctx, ProbeIDRequest).(*PathView)
}

func (c *Collector) reply(ctx context.Context) *PathView {
	if p := c.Evidence().Reply; p != nil {
		return p
	}
	return c.Run(ctx, ProbeIDReply).(*PathView)
}

func (c *Collector) rules(ctx context.Context) *RulesView {
	if r := c.Evidence().Rules; r != nil {
		return r
	}
	return c.Run(ctx, ProbeIDRules).(*RulesView)
}

// requestIngress decides where the request arrives when this host does not
// send it: --iif if given; on the server, the interface that holds the
// destination (a fabric delivers to that NIC's MAC); in the middle, the
// interface this host would use to reach the source (its reverse path).
func (c *Collector) requestIngress(ctx context.Context, h *HostView) (string, string) {
	if c.Iif != "" {
		return c.Iif, "given with --iif"
	}
	switch h.Role {
	case RoleServer:
		return h.LocalIface, "the interface that holds " + h.Local.String()
	case RoleMiddle:
		f := c.Flow.Reverse()
		q := RouteQuery{Dst: f.Dst.Addr(), Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()}
		if d, err := c.T.RouteGet(ctx, q); err == nil && !d.Failed() && d.Dev != "" {
			return d.Dev, "the interface this host routes " + q.Dst.String() + " through (the flow's source); give --iif if it arrives elsewhere"
		}
	}
	return "", ""
}

// ifacesInPlay lists interfaces whose settings matter: where the flow
// arrives and leaves, the local address's interface, and with all set every
// interface holding an address of the flow's family (two NICs on one subnet
// matter even when the flow uses one).
func (c *Collector) ifacesInPlay(ctx context.Context, h *HostView, all bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && n != "lo" && !seen[n] && len(out) < 64 {
			seen[n] = true
			out = append(out, n)
		}
	}
	for _, p := range []*PathView{c.request(ctx), c.reply(ctx)} {
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
func (c *Collector) tablesInPlay(h *HostView, rules *RulesView) ([]int, map[int]string) {
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
	pkts := []Packet{
		{Src: f.Src.Addr(), Dst: f.Dst.Addr(), Proto: uint8(f.Proto), Sport: f.Src.Port(), Dport: f.Dst.Port()},
		{Src: f.Dst.Addr(), Dst: f.Src.Addr(), Proto: uint8(f.Proto), Sport: f.Dst.Port(), Dport: f.Src.Port()},
	}
	ev := c.Evidence()
	for i, p := range []*PathView{ev.Request, ev.Reply} {
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
						add(r.Table, fmt.Sprintf("rule %d selects on %s, in %s's subnet", r.Priority, hostOrPrefix(r.Src), ifc.Name))
					}
				}
			}
		}
	}
	sort.Ints(ids)
	return ids, why
}

// LocalAddrs lists every address on the host of the flow's family.
func (h *HostView) LocalAddrs() []netip.Addr {
	var out []netip.Addr
	for _, i := range h.Ifaces {
		for _, p := range i.Addrs {
			out = append(out, p.Addr())
		}
	}
	return out
}

// Reports returns the report of every probe whose evidence is present, by
// probe id: evidence read back from JSON (a peer's) shows the same probe
// output as evidence collected here.
func (e *Evidence) Reports() map[string]Reporter {
	out := map[string]Reporter{}
	add := func(id string, r Reporter, present bool) {
		if present {
			out[id] = r
		}
	}
	add(ProbeIDHost, e.Host, e.Host != nil)
	add(ProbeIDRequest, e.Request, e.Request != nil)
	add(ProbeIDReply, e.Reply, e.Reply != nil)
	add(ProbeIDCounters, e.Counters, e.Counters != nil)
	add(ProbeIDFirewall, e.Firewall, e.Firewall != nil)
	add(ProbeIDConntrack, e.Conntrack, e.Conntrack != nil)
	add(ProbeIDRules, e.Rules, e.Rules != nil)
	add(ProbeIDTables, e.Tables, e.Tables != nil)
	add(ProbeIDSysctls, e.Sysctls, e.Sysctls != nil)
	add(ProbeIDNeighbours, e.Neighbours, e.Neighbours != nil)
	add(ProbeIDLive, e.Live, e.Live != nil)
	return out
}

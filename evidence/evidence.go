package evidence

import (
	"context"
	"net/netip"

	"asym/flow"
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
	Marks      *MarksView     `json:"marks,omitempty"`
	Live       *LiveEvidence  `json:"live,omitempty"`
}

// ProbeID names a probe; evidence lines name the probe that saw them.
type ProbeID string

// Probe ids, in the order a full check runs them.
const (
	ProbeHost       ProbeID = "host"
	ProbeRequest    ProbeID = "route.request"
	ProbeReply      ProbeID = "route.reply"
	ProbeCounters   ProbeID = "counters"
	ProbeFirewall   ProbeID = "firewall"
	ProbeConntrack  ProbeID = "conntrack"
	ProbeRules      ProbeID = "rules"
	ProbeTables     ProbeID = "tables"
	ProbeSysctls    ProbeID = "sysctls"
	ProbeNeighbours ProbeID = "neighbours"
	ProbeMarks      ProbeID = "route.marks"
	ProbeLive       ProbeID = "live" // observed over a window, not run with the others
)

// Reports returns the report of every probe whose evidence is present, by
// probe id: evidence read back from JSON (a peer's) shows the same probe
// output as evidence collected here.
func (e *Evidence) Reports() map[ProbeID]Reporter {
	out := map[ProbeID]Reporter{}
	for _, s := range slots {
		if r := s.get(e); r != nil {
			out[s.id] = r
		}
	}
	return out
}

// Path returns the view of one direction, nil when it did not run.
func (e *Evidence) Path(d Direction) *PathView {
	if d == DirReply {
		return e.Reply
	}
	return e.Request
}

// Prober runs the probes of one flow in one target and keeps what they
// found: probes.Collector is one; tests replay recorded evidence with
// another.
type Prober interface {
	// Run runs one probe (and any it needs first) and returns its report;
	// kernel errors become the report's status, never a panic.
	Run(ctx context.Context, id ProbeID) Reporter
	// Evidence is a snapshot of what has been collected so far.
	Evidence() Evidence
}

// TargetInfo says where a diagnosis runs, for headers and pasted commands.
type TargetInfo struct {
	Hostname string
	Kernel   string
	Target   string   // "host namespace", "netns asym-lab-host", "pid 4242"
	Prefix   []string // words that enter the target (ip netns exec NAME), for commands shown to people
}

// Forms are the other tuples the flow's packets carry on this host, as the
// evidence shows them: the flow as NAT translated it (its conntrack
// entry's reply tuple, reversed, when it is not the flow's own reverse),
// and, on the client, the flow sent from the address the kernel picks for
// a socket that does not bind one. The capture and the live analyzers look
// for these as well as for the typed flow.
func (e *Evidence) Forms() []flow.Flow {
	var out []flow.Flow
	add := func(f flow.Flow) {
		if f == e.Flow || f == e.Flow.Reverse() || !f.Src.Addr().IsValid() || !f.Dst.Addr().IsValid() {
			return
		}
		for _, o := range out {
			if o == f {
				return
			}
		}
		out = append(out, f)
	}
	if e.Conntrack != nil {
		for _, en := range e.Conntrack.Entries {
			translated := flow.Flow{Proto: e.Flow.Proto, Src: en.ReplyDst, Dst: en.ReplySrc}
			if en.MatchedAs == "reply" { // the flow is the entry's reply tuple: its other form is the original, reversed
				translated = flow.Flow{Proto: e.Flow.Proto, Src: en.OrigDst, Dst: en.OrigSrc}
			}
			add(withPortsOf(e.Flow, translated))
		}
	}
	if e.Firewall != nil {
		for _, f := range NATForms(e.Firewall.NAT, e.Flow) {
			add(f)
		}
	}
	if e.Host != nil && e.Host.Role == RoleClient && e.Request != nil && e.Request.Unbound != nil {
		if src := e.Request.Unbound.PrefSrc; src.IsValid() && src != e.Flow.Src.Addr() {
			add(flow.Flow{Proto: e.Flow.Proto, Src: netip.AddrPortFrom(src, e.Flow.Src.Port()), Dst: e.Flow.Dst})
		}
	}
	return out
}

// withPortsOf keeps in form only the ports the flow has. A flow given
// without a source port stands for all its connections, and its
// conntrack entries (one per connection) for the ports they used: their
// forms stand for all the connections too, not one form per port, which
// would crowd out the forms NAT gives.
func withPortsOf(f, form flow.Flow) flow.Flow {
	if f.Src.Port() == 0 {
		form.Src = netip.AddrPortFrom(form.Src.Addr(), 0)
	}
	if f.Dst.Port() == 0 {
		form.Dst = netip.AddrPortFrom(form.Dst.Addr(), 0)
	}
	return form
}

// NATForms are the flow as the NAT rules translate it: the request's
// direction through a DNAT or SNAT that selects it, and the reply's (a
// rule written for the other side's connections), turned back into the
// flow's direction.
func NATForms(rules []NATRule, f flow.Flow) []flow.Flow {
	var out []flow.Flow
	for _, r := range rules {
		switch {
		case r.Matches(f):
			out = append(out, r.Translate(f))
		case r.Matches(f.Reverse()):
			out = append(out, r.Translate(f.Reverse()).Reverse())
		}
	}
	return out
}

package evidence

import (
	"context"

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

// Package playbook is pure: the first/second/third steps of the diagnosis,
// analyzers that turn evidence into findings, fixes as data, and the report.
// Nothing here talks to the kernel.
package playbook

import (
	"asym/evidence"
	"asym/fix"
	"net/netip"
)

// Severity orders findings.
type Severity string

const (
	Critical Severity = "critical" // the flow fails because of this
	Warning  Severity = "warning"  // likely to break flows, or to explain intermittent failure
	Info     Severity = "info"
)

func (s Severity) rank() int {
	switch s {
	case Critical:
		return 0
	case Warning:
		return 1
	}
	return 2
}

// Line is one piece of evidence: which probe saw it, and what it saw.
type Line struct {
	Probe evidence.ProbeID `json:"probe"`
	Text  string           `json:"text"`
	// Side says which end of the flow saw it, in a report that covers both
	// (--peer): SideHere or SidePeer. Empty in a one-host report.
	Side string `json:"side,omitempty"`
}

// Sides of a report that covers both ends of the flow.
const (
	SideHere = "here" // the host asym runs on (or its --netns/--pid target)
	SidePeer = "peer" // the host reached with --peer
	SideBoth = "both" // a finding that needs the evidence of both ends
)

// Finding is one diagnosis with the evidence that proves it.
type Finding struct {
	ID       FindingID `json:"id"`
	Severity Severity  `json:"severity"`
	Step     string    `json:"step"`
	Title    string    `json:"title"`
	Evidence []Line    `json:"evidence"`
	Why      string    `json:"why"`
	Fix      *fix.Fix  `json:"fix,omitempty"`
	// Side is empty for a finding about this host, SidePeer for one about
	// the far end (its fix is run there, never here), SideBoth for one that
	// joins both ends' evidence.
	Side string `json:"side,omitempty"`
}

func hostOrPrefix(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func catalogIndex(id FindingID) int {
	for i, e := range Catalog {
		if e.ID == id {
			return i
		}
	}
	return len(Catalog)
}

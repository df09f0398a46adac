// Package playbook is pure: the first/second/third steps of the diagnosis,
// analyzers that turn evidence into findings, fixes as data, and the report.
// Nothing here talks to the kernel.
package playbook

import (
	"net/netip"
	"sort"
	"strconv"

	"asym/probes"
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
	Probe string `json:"probe"`
	Text  string `json:"text"`
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
	ID       string   `json:"id"`
	Severity Severity `json:"severity"`
	Step     string   `json:"step"`
	Title    string   `json:"title"`
	Evidence []Line   `json:"evidence"`
	Why      string   `json:"why"`
	Fix      *Fix     `json:"fix,omitempty"`
	// Side is empty for a finding about this host, SidePeer for one about
	// the far end (its fix is run there, never here), SideBoth for one that
	// joins both ends' evidence.
	Side string `json:"side,omitempty"`
}

// Fix is what to change, as data: the same fix renders in the TUI, the
// notes and JSON, and one small executor applies it (another issue).
type Fix struct {
	Summary string `json:"summary"`
	// Steps is empty when the fix is not host-local: then Advice says what
	// to change and where.
	Steps  []FixStep `json:"steps,omitempty"`
	Advice string    `json:"advice,omitempty"`
	// Caveat says what it will not fix or what to check first.
	Caveat string `json:"caveat,omitempty"`
	// Alternatives are other fixes, explained, not recommended over Steps.
	Alternatives []Fix `json:"alternatives,omitempty"`
	// Prove lists commands to run elsewhere (the other firewall, the far
	// end) that confirm the diagnosis, with the flow filled in and quoted.
	Prove []string `json:"prove,omitempty"`
}

// FixStep is one change. Kind says which fields matter:
//   - "rule.add":  Priority, Src, Table
//   - "rule.del":  Priority, Src, Table
//   - "route.add": Table, Dst, Gateway, Dev, PrefSrc, Scope ("link" or "")
//   - "sysctl.set": Sysctl, Value
type FixStep struct {
	Kind     string       `json:"kind"`
	Priority int          `json:"priority,omitempty"`
	Src      netip.Prefix `json:"src,omitzero"`
	Dst      netip.Prefix `json:"dst,omitzero"`
	Table    int          `json:"table,omitempty"`
	Gateway  netip.Addr   `json:"via,omitzero"`
	Dev      string       `json:"dev,omitempty"`
	PrefSrc  netip.Addr   `json:"prefsrc,omitzero"`
	Scope    string       `json:"scope,omitempty"`
	Sysctl   string       `json:"sysctl,omitempty"`
	Value    string       `json:"value,omitempty"`
	// Unknown names what asym could not find out (e.g. the gateway); such
	// a step is shown but cannot be applied as is.
	Unknown string `json:"unknown,omitempty"`
}

// Command renders the step as the iproute2/sysctl command a person would
// type, every word quoted so that pasting it is safe.
func (s FixStep) Command() string {
	w := s.Words()
	if w == nil {
		return "# unknown step " + s.Kind
	}
	return probes.Command(w...)
}

// Words is the step's command as words (nil for an unknown kind).
func (s FixStep) Words() []string {
	var w []string
	switch s.Kind {
	case "rule.add", "rule.del":
		verb := "add"
		if s.Kind == "rule.del" {
			verb = "del"
		}
		w = []string{"ip", "rule", verb}
		if s.Src.IsValid() {
			w = append(w, "from", hostOrPrefix(s.Src))
		}
		w = append(w, "lookup", strconv.Itoa(s.Table), "priority", strconv.Itoa(s.Priority))
		if s.Src.IsValid() && s.Src.Addr().Is6() {
			w = append(w[:1], append([]string{"-6"}, w[1:]...)...)
		}
	case "route.add":
		w = []string{"ip", "route", "add"}
		if s.Dst.Bits() == 0 {
			w = append(w, "default")
		} else {
			w = append(w, s.Dst.String())
		}
		if s.Gateway.IsValid() {
			w = append(w, "via", s.Gateway.String())
		} else if s.Unknown != "" {
			w = append(w, "via", "GATEWAY")
		}
		w = append(w, "dev", s.Dev)
		if s.Scope != "" {
			w = append(w, "scope", s.Scope)
		}
		if s.PrefSrc.IsValid() {
			w = append(w, "src", s.PrefSrc.String())
		}
		w = append(w, "table", strconv.Itoa(s.Table))
		if s.Dst.Addr().Is6() {
			w = append(w[:1], append([]string{"-6"}, w[1:]...)...)
		}
	case "sysctl.set":
		w = []string{"sysctl", "-w", s.Sysctl + "=" + s.Value}
	default:
		return nil
	}
	return w
}

// Commands renders every step.
func (f *Fix) Commands() []string { return f.CommandsIn(nil) }

// CommandsIn renders every step to run inside a target, prefix being the
// words that enter it (e.g. ip netns exec NAME): a pasted fix must change
// the namespace that was diagnosed, never the host's own.
func (f *Fix) CommandsIn(prefix []string) []string { return f.CommandsVia(Prefixed(prefix)) }

// Render turns a command's words into the line shown to a person.
type Render func(words []string) string

// Prefixed renders words after prefix (e.g. ip netns exec NAME), each word
// quoted for the local shell.
func Prefixed(prefix []string) Render {
	return func(w []string) string { return probes.Command(append(append([]string{}, prefix...), w...)...) }
}

// CommandsVia renders every step with render: for the far end of the flow,
// the --peer words in front, quoted for ssh's remote shell as well.
func (f *Fix) CommandsVia(render Render) []string {
	if f == nil {
		return nil
	}
	out := make([]string, len(f.Steps))
	for i, s := range f.Steps {
		if w := s.Words(); w != nil {
			out[i] = render(w)
		} else {
			out[i] = s.Command()
		}
	}
	return out
}

func hostOrPrefix(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

// Sort orders findings by severity, then by playbook step (so they read as
// the story unfolds: the drop, the asymmetry, then its cause), then in
// catalog order.
func Sort(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Severity.rank() != fs[j].Severity.rank() {
			return fs[i].Severity.rank() < fs[j].Severity.rank()
		}
		if a, b := StepIndex(fs[i].Step), StepIndex(fs[j].Step); a != b {
			return a < b
		}
		return catalogIndex(fs[i].ID) < catalogIndex(fs[j].ID)
	})
}

func catalogIndex(id string) int {
	for i, e := range Catalog {
		if e.ID == id {
			return i
		}
	}
	return len(Catalog)
}

package playbook

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"asym/probes"
	"asym/probes/flow"
)

// SchemaVersion is the version of the JSON report; bump it when a field
// changes meaning or disappears.
const SchemaVersion = 1

// Report is a whole check: what ran, what it showed, what it means.
type Report struct {
	Schema int `json:"schema"`
	// Prefix is what enters the target (e.g. ip netns exec NAME); fix
	// commands are rendered with it.
	Prefix   []string     `json:"command_prefix,omitempty"`
	Time     time.Time    `json:"time"`
	Flow     flow.Flow    `json:"flow"`
	Host     HostSummary  `json:"host"`
	Steps    []StepReport `json:"steps"`
	Findings []Finding    `json:"findings"`
	// HandOff lists ready-to-run commands of deeper tools for the flow.
	HandOff []string `json:"hand_off,omitempty"`
}

// HostSummary is the header every report and screen shows.
type HostSummary struct {
	Hostname   string      `json:"hostname"`
	Kernel     string      `json:"kernel"`
	Target     string      `json:"target"`
	Role       probes.Role `json:"role"`
	Privileged bool        `json:"privileged"`
	Missing    string      `json:"missing_privileges,omitempty"`
}

// StepReport is one step's probes and findings.
type StepReport struct {
	ID       string            `json:"id"`
	Name     string            `json:"name"`
	Proves   string            `json:"proves"`
	Probes   []probes.Reporter `json:"probes"`
	Findings []string          `json:"findings"` // ids, details in Report.Findings
}

// NewReport assembles a report from the evidence, the reports of the probes
// that ran (by probe id) and the findings.
func NewReport(now time.Time, ev *probes.Evidence, prefix []string, ran map[string]probes.Reporter, findings []Finding) Report {
	r := Report{Schema: SchemaVersion, Time: now.UTC(), Flow: ev.Flow, Findings: findings, Prefix: prefix}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if h := ev.Host; h != nil {
		r.Host = HostSummary{Hostname: h.Hostname, Kernel: h.Kernel, Target: h.Target, Role: h.Role, Privileged: h.Privileged, Missing: h.Missing}
	}
	for _, s := range Steps {
		sr := StepReport{ID: s.ID, Name: s.Name, Proves: s.Proves, Probes: []probes.Reporter{}, Findings: []string{}}
		ids := s.Probes
		if s.ID == "third" {
			ids = append(ids[:len(ids):len(ids)], probes.ProbeIDLive) // live evidence, when watched, confirms in the third step
		}
		for _, id := range ids {
			if rep, ok := ran[id]; ok {
				sr.Probes = append(sr.Probes, rep)
			}
		}
		for _, f := range findings {
			if f.Step == s.ID {
				sr.Findings = append(sr.Findings, f.ID)
			}
		}
		r.Steps = append(r.Steps, sr)
	}
	if len(findings) > 0 {
		r.HandOff = HandOff(ev, prefix)
	}
	return r
}

// WriteJSON writes the report as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the report for a person at a terminal.
func (r Report) WriteText(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "asym check  %s\n", Clean(r.Flow.Arrow()))
	fmt.Fprintf(b, "host %s  kernel %s  %s  %s\n", Clean(r.Host.Hostname), Clean(r.Host.Kernel), Clean(r.Host.Target), r.Host.Role.Describe())
	if !r.Host.Privileged {
		fmt.Fprintf(b, "running without %s: some probes are unavailable\n", r.Host.Missing)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(b, "\n== %s\n   %s\n", s.Name, s.Proves)
		for _, p := range s.Probes {
			rep := p.Rep()
			fmt.Fprintf(b, "\n-- %s [%s]\n", rep.Title, statusText(rep))
			if rep.Command != "" {
				fmt.Fprintf(b, "   $ %s\n", Clean(rep.Command))
			}
			for _, l := range rep.Lines {
				fmt.Fprintf(b, "   %s\n", Clean(l))
			}
		}
	}
	b.WriteString("\n== Findings\n")
	if len(r.Findings) == 0 {
		b.WriteString("   none: asym found nothing on this host that breaks this flow's path.\n")
	}
	shown := map[string]string{} // fix summary → the finding that showed it
	for _, f := range r.Findings {
		fmt.Fprintf(b, "\n%s %s  (%s step)\n   %s\n", strings.ToUpper(string(f.Severity)), f.ID, f.Step, Clean(f.Title))
		b.WriteString("   evidence:\n")
		for _, l := range f.Evidence {
			fmt.Fprintf(b, "     [%s] %s\n", l.Probe, Clean(l.Text))
		}
		fmt.Fprintf(b, "   why: %s\n", Clean(f.Why))
		if f.Fix != nil && shown[f.Fix.Summary] != "" {
			fmt.Fprintf(b, "   fix: the same as %s above\n", shown[f.Fix.Summary])
			continue
		}
		writeFixText(b, f.Fix, "   ", r.Prefix)
		if f.Fix != nil {
			shown[f.Fix.Summary] = f.ID
		}
	}
	if len(r.HandOff) > 0 {
		b.WriteString("\n== Go deeper (commands for other tools, the flow filled in)\n")
		for _, c := range r.HandOff {
			fmt.Fprintf(b, "   %s\n", Clean(c))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFixText(b *strings.Builder, fx *Fix, indent string, prefix []string) {
	if fx == nil {
		return
	}
	fmt.Fprintf(b, "%sfix: %s\n", indent, Clean(fx.Summary))
	cmds := fx.CommandsIn(prefix)
	for i, s := range fx.Steps {
		fmt.Fprintf(b, "%s  %s\n", indent, Clean(cmds[i]))
		if s.Unknown != "" {
			fmt.Fprintf(b, "%s    # unknown: %s\n", indent, Clean(s.Unknown))
		}
	}
	if fx.Advice != "" {
		fmt.Fprintf(b, "%s  %s\n", indent, Clean(fx.Advice))
	}
	if fx.Caveat != "" {
		fmt.Fprintf(b, "%s  note: %s\n", indent, Clean(fx.Caveat))
	}
	if len(fx.Prove) > 0 {
		fmt.Fprintf(b, "%s  prove it elsewhere:\n", indent)
		for _, c := range fx.Prove {
			fmt.Fprintf(b, "%s    %s\n", indent, Clean(c))
		}
	}
	for _, alt := range fx.Alternatives {
		fmt.Fprintf(b, "%s  alternative: %s\n", indent, Clean(alt.Summary))
		for _, c := range alt.CommandsIn(prefix) {
			fmt.Fprintf(b, "%s    %s\n", indent, Clean(c))
		}
		if alt.Caveat != "" {
			fmt.Fprintf(b, "%s    note: %s\n", indent, Clean(alt.Caveat))
		}
	}
}

func statusText(r *probes.Report) string {
	if r.Status == probes.StatusOK {
		return fmt.Sprintf("ok, %s", r.Elapsed.Round(time.Microsecond*10))
	}
	return string(r.Status) + ": " + Clean(r.Reason)
}

// WriteMarkdown writes the report as incident notes.
func (r Report) WriteMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## asym: `%s`\n\n", mdCode(r.Flow.Arrow()))
	fmt.Fprintf(b, "- time: %s\n- host: %s (kernel %s), %s\n- role: %s\n", r.Time.Format(time.RFC3339), mdText(r.Host.Hostname), mdText(r.Host.Kernel), mdText(r.Host.Target), r.Host.Role.Describe())
	if !r.Host.Privileged {
		fmt.Fprintf(b, "- privileges: missing %s, some probes were unavailable\n", r.Host.Missing)
	}
	b.WriteString("\n### Findings\n\n")
	if len(r.Findings) == 0 {
		b.WriteString("None: nothing on this host breaks this flow's path.\n")
	}
	for _, f := range r.Findings {
		fmt.Fprintf(b, "#### %s `%s`: %s\n\n", strings.ToUpper(string(f.Severity)), f.ID, mdText(f.Title))
		b.WriteString("Evidence:\n\n")
		var ev []string
		for _, l := range f.Evidence {
			ev = append(ev, "["+l.Probe+"] "+l.Text)
		}
		writeFence(b, ev)
		fmt.Fprintf(b, "Why: %s\n\n", mdText(f.Why))
		if f.Fix != nil {
			fmt.Fprintf(b, "Fix: %s\n\n", mdText(f.Fix.Summary))
			if cmds := f.Fix.CommandsIn(r.Prefix); len(cmds) > 0 {
				writeFence(b, cmds)
			}
			if f.Fix.Advice != "" {
				fmt.Fprintf(b, "%s\n\n", mdText(f.Fix.Advice))
			}
			if f.Fix.Caveat != "" {
				fmt.Fprintf(b, "Note: %s\n\n", mdText(f.Fix.Caveat))
			}
			if len(f.Fix.Prove) > 0 {
				b.WriteString("Prove it elsewhere:\n\n")
				writeFence(b, f.Fix.Prove)
			}
		}
	}
	if len(r.HandOff) > 0 {
		b.WriteString("### Go deeper\n\n")
		writeFence(b, r.HandOff)
	}
	for _, s := range r.Steps {
		fmt.Fprintf(b, "### %s\n\n%s\n\n", s.Name, s.Proves)
		for _, p := range s.Probes {
			rep := p.Rep()
			fmt.Fprintf(b, "**%s** (%s)\n\n", mdText(rep.Title), statusText(rep))
			lines := []string{}
			if rep.Command != "" {
				lines = append(lines, "$ "+rep.Command)
			}
			writeFence(b, append(lines, rep.Lines...))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFence writes lines in a code block whose fence is longer than any run
// of backquotes inside, so hostile interface names cannot close it.
func writeFence(b *strings.Builder, lines []string) {
	longest := 0
	for _, l := range lines {
		run := 0
		for _, c := range l {
			if c == '`' {
				run++
				longest = max(longest, run)
			} else {
				run = 0
			}
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	b.WriteString(fence + "\n")
	for _, l := range lines {
		b.WriteString(Clean(l) + "\n")
	}
	b.WriteString(fence + "\n\n")
}

func mdCode(s string) string { return strings.ReplaceAll(Clean(s), "`", "'") }

func mdText(s string) string {
	r := strings.NewReplacer("<", "&lt;", ">", "&gt;")
	return r.Replace(Clean(s))
}

// Clean strips terminal control sequences from text that came from the
// kernel or a person (interface names may hold an ESC): C0 and C1 controls
// and DEL become visible escapes, tabs become spaces.
func Clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r == '\u2028' || r == '\u2029' || r == '\ufeff' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			// Line separators and bidi overrides can reorder what is shown.
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

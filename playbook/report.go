package playbook

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
)

// SchemaVersion is the version of the JSON report; bump it when a field
// changes meaning or disappears.
const SchemaVersion = 1

// Report is a whole check: what ran, what it showed, what it means.
type Report struct {
	Schema int `json:"schema"`
	// Prefix is what enters the target (e.g. ip netns exec NAME); fix
	// commands are rendered with it.
	Prefix []string    `json:"command_prefix,omitempty"`
	Time   time.Time   `json:"time"`
	Flow   flow.Flow   `json:"flow"`
	Host   HostSummary `json:"host"`
	// Verdict is what the whole check proved: broken, suspect, clean (only
	// when proven) or not proven, with its reasons and what would prove it.
	Verdict  Judgement    `json:"verdict"`
	Steps    []StepReport `json:"steps"`
	Findings []Finding    `json:"findings"`
	// HandOff lists ready-to-run commands of deeper tools for the flow.
	HandOff []string `json:"hand_off,omitempty"`
	// Peer is the far end, with --peer; Across the flow's way through both.
	Peer   *PeerReport `json:"peer,omitempty"`
	Across []string    `json:"across,omitempty"`
}

// HostSummary is the header every report and screen shows.
type HostSummary struct {
	Hostname   string        `json:"hostname"`
	Kernel     string        `json:"kernel"`
	Target     string        `json:"target"`
	Role       evidence.Role `json:"role"`
	Privileged bool          `json:"privileged"`
	Missing    string        `json:"missing_privileges,omitempty"`
}

// StepReport is one step's probes and findings.
type StepReport struct {
	ID       string              `json:"id"`
	Name     string              `json:"name"`
	Proves   string              `json:"proves"`
	Probes   []evidence.Reporter `json:"probes"`
	Findings []FindingID         `json:"findings"` // ids, details in Report.Findings
	Verdict  Judgement           `json:"verdict"`
}

// NewReport assembles a report from the evidence, the reports of the probes
// that ran (by probe id) and the findings.
func NewReport(now time.Time, ev *evidence.Evidence, prefix []string, ran map[evidence.ProbeID]evidence.Reporter, findings []Finding) Report {
	r := Report{Schema: SchemaVersion, Time: now.UTC(), Flow: ev.Flow, Findings: findings, Prefix: prefix}
	if r.Findings == nil {
		r.Findings = []Finding{}
	}
	if h := ev.Host; h != nil {
		r.Host = summarize(h)
	}
	r.Steps = stepReports(ev, ran, findings)
	r.Verdict = Judge(r.Steps)
	if len(findings) > 0 {
		r.HandOff = HandOff(ev, prefix)
	}
	return r
}

func summarize(h *evidence.HostView) HostSummary {
	return HostSummary{Hostname: h.Hostname, Kernel: h.Kernel, Target: h.Target, Role: h.Role, Privileged: h.Privileged, Missing: h.Missing}
}

// stepReports lists each step's probe reports (of those that ran) and the
// ids of its findings.
func stepReports(ev *evidence.Evidence, ran map[evidence.ProbeID]evidence.Reporter, findings []Finding) []StepReport {
	var out []StepReport
	for _, s := range Steps {
		sr := StepReport{ID: s.ID, Name: s.Name, Proves: s.Proves, Probes: []evidence.Reporter{}, Findings: []FindingID{}}
		ids := s.Probes
		if s.ID == "third" {
			ids = append(ids[:len(ids):len(ids)], evidence.ProbeLive) // live evidence, when watched, confirms in the third step
		}
		for _, id := range ids {
			if rep, ok := ran[id]; ok {
				sr.Probes = append(sr.Probes, rep)
			}
		}
		for _, f := range findings {
			if f.Step == s.ID && !slices.Contains(sr.Findings, f.ID) {
				sr.Findings = append(sr.Findings, f.ID)
			}
		}
		if len(sr.Probes) == 0 {
			sr.Verdict = Judgement{Verdict: VerdictNotProven, Why: []string{"the step has not run"}}
		} else {
			sr.Verdict = JudgeStep(s.ID, ev, findings)
		}
		out = append(out, sr)
	}
	return out
}

// MarkHere labels the evidence lines of this host's findings with their
// end, for a report that covers both.
func MarkHere(fs []Finding) {
	for i := range fs {
		if fs[i].Side != "" {
			continue
		}
		for j := range fs[i].Evidence {
			if fs[i].Evidence[j].Side == "" {
				fs[i].Evidence[j].Side = SideHere
			}
		}
	}
}

// AddPeer adds the far end (--peer): its report, the findings about it and
// across both ends, and the way the flow crosses both.
func (r *Report) AddPeer(pa PeerAnalysis) {
	r.Peer, r.Across = pa.Peer, pa.Across
	MarkHere(r.Findings)
	r.Findings = append(r.Findings, pa.Findings...)
	Sort(r.Findings)
	r.Verdict = JudgeBothEnds(r.Verdict, pa)
	for i := range r.Steps {
		for _, f := range pa.Findings {
			if f.Step == r.Steps[i].ID && !slices.Contains(r.Steps[i].Findings, f.ID) {
				r.Steps[i].Findings = append(r.Steps[i].Findings, f.ID)
			}
		}
	}
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
	who := "host"
	if r.Peer != nil {
		who = "here"
	}
	fmt.Fprintf(b, "%s %s  kernel %s  %s  %s\n", who, Clean(r.Host.Hostname), Clean(r.Host.Kernel), Clean(r.Host.Target), r.Host.Role.Describe())
	if !r.Host.Privileged {
		fmt.Fprintf(b, "running without %s: some probes are unavailable\n", r.Host.Missing)
	}
	if r.Peer != nil {
		fmt.Fprintf(b, "peer %s\n", Clean(r.Peer.headline()))
	}
	writeVerdictText(b, "verdict", r.Verdict)
	writeStepsText(b, r.Steps)
	b.WriteString("\n== Findings\n")
	if len(r.Findings) == 0 {
		fmt.Fprintf(b, "   %s\n", noFindingText(r.Verdict, r.Host.Role, "this host"))
	}
	writeFindingsText(b, r.Findings, fix.Prefixed(r.Prefix))
	if len(r.Across) > 0 {
		b.WriteString("\n== Across both ends\n")
		for _, l := range r.Across {
			fmt.Fprintf(b, "   %s\n", Clean(l))
		}
	}
	if len(r.HandOff) > 0 {
		b.WriteString("\n== Go deeper (commands for other tools, the flow filled in)\n")
		for _, c := range r.HandOff {
			fmt.Fprintf(b, "   %s\n", Clean(c))
		}
	}
	if p := r.Peer; p != nil && p.Failure == nil {
		fmt.Fprintf(b, "\n\n######## The peer: %s\n", Clean(p.headline()))
		writeStepsText(b, p.Steps)
		b.WriteString("\n== Findings on the peer (run their fixes there)\n")
		if len(p.Findings) == 0 && p.Verdict != nil {
			fmt.Fprintf(b, "   %s\n", noFindingText(*p.Verdict, p.Host.Role, "the peer"))
		}
		writeFindingsText(b, p.Findings, p.Render())
		if len(p.HandOff) > 0 {
			b.WriteString("\n== Go deeper on the peer\n")
			for _, c := range p.HandOff {
				fmt.Fprintf(b, "   %s\n", Clean(c))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// headline is the peer's line in a report's header.
func (p *PeerReport) headline() string {
	if p.Failure != nil {
		return "not diagnosed: " + p.Failure.Reason + " ($ " + p.Command + ")"
	}
	v := ""
	if p.Version != "" {
		v = ", asym " + p.Version
	}
	return fmt.Sprintf("%s  kernel %s  %s  %s  ($ %s%s)", p.Host.Hostname, p.Host.Kernel, p.Host.Target, p.Host.Role.Describe(), p.Command, v)
}

func writeStepsText(b *strings.Builder, steps []StepReport) {
	for _, s := range steps {
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
}

// Label names where a line of evidence comes from: its probe, and in a
// report of both ends, the end.
func (l Line) Label() string {
	if l.Side != "" {
		return l.Side + " " + string(l.Probe)
	}
	return string(l.Probe)
}

// Where says which end a finding is about, for headings; empty for this
// host's own.
func (f Finding) Where() string {
	switch f.Side {
	case SidePeer:
		return "on the peer"
	case SideBoth:
		return "across both ends"
	}
	return ""
}

func writeFindingsText(b *strings.Builder, findings []Finding, render fix.Render) {
	shown := map[string]FindingID{} // fix summary → the finding that showed it
	for _, f := range findings {
		where := f.Step + " step"
		if w := f.Where(); w != "" {
			where += ", " + w
		}
		fmt.Fprintf(b, "\n%s %s  (%s)\n   %s\n", strings.ToUpper(string(f.Severity)), f.ID, where, Clean(f.Title))
		b.WriteString("   evidence:\n")
		for _, l := range f.Evidence {
			fmt.Fprintf(b, "     [%s] %s\n", Clean(l.Label()), Clean(l.Text))
		}
		fmt.Fprintf(b, "   why: %s\n", Clean(f.Why))
		if f.Fix != nil && shown[f.Fix.Summary] != "" {
			fmt.Fprintf(b, "   fix: the same as %s above\n", shown[f.Fix.Summary])
			continue
		}
		writeFixText(b, f.Fix, "   ", render)
		if f.Fix != nil {
			shown[f.Fix.Summary] = f.ID
		}
	}
}

func writeFixText(b *strings.Builder, fx *fix.Fix, indent string, render fix.Render) {
	if fx == nil {
		return
	}
	fmt.Fprintf(b, "%sfix: %s\n", indent, Clean(fx.Summary))
	cmds := fx.CommandsVia(render)
	for i, s := range fx.Steps {
		fmt.Fprintf(b, "%s  %s\n", indent, Clean(cmds[i]))
		if s.Missing() != "" {
			fmt.Fprintf(b, "%s    # unknown: %s\n", indent, Clean(s.Missing()))
		}
		if o := fix.Origin(s); o != "" {
			fmt.Fprintf(b, "%s    # %s\n", indent, Clean(o))
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
		for _, c := range alt.CommandsVia(render) {
			fmt.Fprintf(b, "%s    %s\n", indent, Clean(c))
		}
		if alt.Caveat != "" {
			fmt.Fprintf(b, "%s    note: %s\n", indent, Clean(alt.Caveat))
		}
	}
}

func statusText(r *evidence.Report) string {
	if r.Status == evidence.StatusOK {
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
	if r.Peer != nil {
		fmt.Fprintf(b, "- peer: %s\n", mdText(r.Peer.headline()))
	}
	fmt.Fprintf(b, "- verdict: **%s**\n", r.Verdict.Verdict)
	writeVerdictMarkdown(b, r.Verdict)
	b.WriteString("\n### Findings\n\n")
	if len(r.Findings) == 0 {
		fmt.Fprintf(b, "%s\n\n", mdText(capitalize(noFindingText(r.Verdict, r.Host.Role, "this host"))))
	}
	writeFindingsMarkdown(b, r.Findings, fix.Prefixed(r.Prefix))
	if len(r.Across) > 0 {
		b.WriteString("### Across both ends\n\n")
		writeFence(b, r.Across)
	}
	if len(r.HandOff) > 0 {
		b.WriteString("### Go deeper\n\n")
		writeFence(b, r.HandOff)
	}
	writeStepsMarkdown(b, r.Steps, "")
	if p := r.Peer; p != nil && p.Failure == nil {
		fmt.Fprintf(b, "### The peer: %s\n\n", mdText(p.headline()))
		b.WriteString("#### Findings on the peer (run their fixes there)\n\n")
		if len(p.Findings) == 0 && p.Verdict != nil {
			fmt.Fprintf(b, "%s\n\n", mdText(capitalize(noFindingText(*p.Verdict, p.Host.Role, "the peer"))))
		}
		writeFindingsMarkdown(b, p.Findings, p.Render())
		if len(p.HandOff) > 0 {
			b.WriteString("#### Go deeper on the peer\n\n")
			writeFence(b, p.HandOff)
		}
		writeStepsMarkdown(b, p.Steps, "Peer: ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeFindingsMarkdown(b *strings.Builder, findings []Finding, render fix.Render) {
	for _, f := range findings {
		where := ""
		if w := f.Where(); w != "" {
			where = " (" + w + ")"
		}
		fmt.Fprintf(b, "#### %s `%s`%s: %s\n\n", strings.ToUpper(string(f.Severity)), f.ID, where, mdText(f.Title))
		b.WriteString("Evidence:\n\n")
		var ev []string
		for _, l := range f.Evidence {
			ev = append(ev, "["+l.Label()+"] "+l.Text)
		}
		writeFence(b, ev)
		fmt.Fprintf(b, "Why: %s\n\n", mdText(f.Why))
		if f.Fix != nil {
			fmt.Fprintf(b, "Fix: %s\n\n", mdText(f.Fix.Summary))
			if cmds := f.Fix.CommandsVia(render); len(cmds) > 0 {
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
}

func writeStepsMarkdown(b *strings.Builder, steps []StepReport, title string) {
	for _, s := range steps {
		fmt.Fprintf(b, "### %s%s\n\n%s\n\n", title, s.Name, s.Proves)
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
// kernel or a person (interface names may hold an ESC): see probes.Clean.
func Clean(s string) string { return evidence.Clean(s) }

// noFindingText says what "no finding" means under a verdict: only a
// proven clean says the flow works. A host off the flow's path has nothing
// to find, and says so instead of "none".
func noFindingText(j Judgement, r evidence.Role, where string) string {
	switch {
	case r == evidence.RoleOffPath:
		return where + " is not on the flow's path: it holds neither address and does not forward; run asym on one of the flow's ends, or on a router it crosses."
	case j.Verdict == VerdictClean:
		return "none: the flow's way through " + where + " works (proven: " + strings.Join(j.Why, "; ") + ")."
	}
	return "none: no finding on " + where + ", but that does not prove the flow works here (verdict: " + string(j.Verdict) + ")."
}

// writeVerdictText writes the verdict line, its reasons and what would
// prove it, at the top of the text report.
func writeVerdictText(b *strings.Builder, label string, j Judgement) {
	fmt.Fprintf(b, "%s: %s %s\n", label, j.Verdict.Symbol(), j.Verdict)
	for _, w := range j.Why {
		fmt.Fprintf(b, "   %s\n", Clean(w))
	}
	if len(j.Prove) > 0 {
		b.WriteString("   what would prove it:\n")
		for _, p := range j.Prove {
			fmt.Fprintf(b, "     - %s\n", Clean(p))
		}
	}
}

func writeVerdictMarkdown(b *strings.Builder, j Judgement) {
	for _, w := range j.Why {
		fmt.Fprintf(b, "  - %s\n", mdText(w))
	}
	if len(j.Prove) > 0 {
		b.WriteString("- what would prove it:\n")
		for _, p := range j.Prove {
			fmt.Fprintf(b, "  - %s\n", mdText(p))
		}
	}
}

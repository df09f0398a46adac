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

// WriteText writes the report for a person at a terminal: a summary first
// (the verdict, the most likely cause, the findings in one line each), then
// each finding in full, then the probes' detail.
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
		fmt.Fprintf(b, "peer %s\n", Clean(r.Peer.Headline()))
	}
	all := r.AllFindings()
	if len(all) > 0 && (r.Verdict.Verdict == VerdictBroken || r.Verdict.Verdict == VerdictSuspect) {
		// Its reasons are the findings: they follow, once.
		fmt.Fprintf(b, "verdict: %s %s, from the findings below\n", r.Verdict.Verdict.Symbol(), r.Verdict.Verdict)
	} else {
		writeVerdictText(b, "verdict", r.Verdict)
	}
	writeSummaryText(b, all)
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
		fmt.Fprintf(b, "\n\n######## The peer: %s\n", Clean(p.Headline()))
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
	b.WriteString("\n\n######## The probes: what each step asked the kernel here\n")
	writeStepsText(b, r.Steps)
	if p := r.Peer; p != nil && p.Failure == nil {
		b.WriteString("\n\n######## The probes on the peer\n")
		writeStepsText(b, p.Steps)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// AllFindings are the report's findings and the peer's own, ordered cause
// first (Sort).
func (r Report) AllFindings() []Finding {
	all := slices.Clone(r.Findings)
	if r.Peer != nil {
		all = append(all, r.Peer.Findings...)
	}
	Sort(all)
	return all
}

// writeSummaryText names the most likely cause and lists every finding in
// one line, the cause first.
func writeSummaryText(b *strings.Builder, all []Finding) {
	cause, ok := RootCause(all)
	if !ok {
		return
	}
	fmt.Fprintf(b, "cause: %s\n", cause.Line())
	fmt.Fprintf(b, "findings (%d, each in full below):\n", len(all))
	for _, f := range all {
		id := string(f.ID)
		if w := f.Where(); w != "" {
			id += " (" + w + ")"
		}
		fmt.Fprintf(b, "   %-8s %-28s %s\n", strings.ToUpper(string(f.Severity)), id, Clean(f.Title))
	}
}

// Headline is the peer's line in a report's header.
func (p *PeerReport) Headline() string {
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

// WriteMarkdown writes the report as incident notes: what was checked and
// what it means first, the evidence after.
func (r Report) WriteMarkdown(w io.Writer) error {
	b := &strings.Builder{}
	fmt.Fprintf(b, "## asym: `%s`\n\n", mdCode(r.Flow.Arrow()))
	fmt.Fprintf(b, "- time: %s\n", r.Time.Format(time.RFC3339))
	r.writeMarkdownSummary(b)
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	return r.WriteMarkdownEvidence(w, nil)
}

// writeMarkdownSummary writes the summary's list items: host, role,
// verdict and the most likely cause.
func (r Report) writeMarkdownSummary(b *strings.Builder) {
	fmt.Fprintf(b, "- host: %s (kernel %s), %s\n- role: %s\n", mdText(r.Host.Hostname), mdText(r.Host.Kernel), mdText(r.Host.Target), r.Host.Role.Describe())
	if !r.Host.Privileged {
		fmt.Fprintf(b, "- privileges: missing %s, some probes were unavailable\n", r.Host.Missing)
	}
	if r.Peer != nil {
		fmt.Fprintf(b, "- peer: %s\n", mdText(r.Peer.Headline()))
	}
	fmt.Fprintf(b, "- verdict: **%s**\n", r.Verdict.Verdict)
	writeVerdictMarkdown(b, r.Verdict)
	if cause, ok := RootCause(r.AllFindings()); ok {
		fmt.Fprintf(b, "- root cause: %s\n", CauseMarkdown(cause))
	}
}

// CauseMarkdown is the cause in one line of Markdown.
func CauseMarkdown(c Cause) string {
	s := "`" + string(c.Finding.ID) + "`"
	if w := c.Finding.Where(); w != "" {
		s += " (" + w + ")"
	}
	s += ": " + mdText(c.Finding.Title)
	if len(c.Explains) > 0 {
		ids := make([]string, len(c.Explains))
		for i, id := range c.Explains {
			ids[i] = "`" + string(id) + "`"
		}
		s += " — explains " + strings.Join(ids, ", ")
	}
	return s
}

// WriteMarkdownEvidence writes what the notes rest on: the findings in
// full (each fix once; shown maps the summary of a fix already written
// elsewhere in the notes to where), both ends, the hand-off commands and
// every probe's output.
func (r Report) WriteMarkdownEvidence(w io.Writer, shown map[string]string) error {
	b := &strings.Builder{}
	if shown == nil {
		shown = map[string]string{}
	}
	b.WriteString("### Findings\n\n")
	if len(r.Findings) == 0 {
		fmt.Fprintf(b, "%s\n\n", mdText(capitalize(noFindingText(r.Verdict, r.Host.Role, "this host"))))
	}
	writeFindingsMarkdown(b, r.Findings, fix.Prefixed(r.Prefix), shown)
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
		fmt.Fprintf(b, "### The peer: %s\n\n", mdText(p.Headline()))
		b.WriteString("#### Findings on the peer (run their fixes there)\n\n")
		if len(p.Findings) == 0 && p.Verdict != nil {
			fmt.Fprintf(b, "%s\n\n", mdText(capitalize(noFindingText(*p.Verdict, p.Host.Role, "the peer"))))
		}
		writeFindingsMarkdown(b, p.Findings, p.Render(), shown)
		if len(p.HandOff) > 0 {
			b.WriteString("#### Go deeper on the peer\n\n")
			writeFence(b, p.HandOff)
		}
		writeStepsMarkdown(b, p.Steps, "Peer: ")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeFindingsMarkdown writes each finding with its evidence and fix; a
// fix already written (the same summary) is named, not repeated.
func writeFindingsMarkdown(b *strings.Builder, findings []Finding, render fix.Render, shown map[string]string) {
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
		if f.Fix == nil {
			continue
		}
		if where, ok := shown[f.Fix.Summary]; ok {
			fmt.Fprintf(b, "Fix: %s, %s.\n\n", mdText(f.Fix.Summary), where)
			continue
		}
		shown[f.Fix.Summary] = "the same as the fix of `" + string(f.ID) + "` above"
		writeFixMarkdown(b, f.Fix, render)
	}
}

func writeFixMarkdown(b *strings.Builder, fx *fix.Fix, render fix.Render) {
	fmt.Fprintf(b, "Fix: %s\n\n", mdText(fx.Summary))
	if cmds := fx.CommandsVia(render); len(cmds) > 0 {
		writeFence(b, cmds)
	}
	if fx.Advice != "" {
		fmt.Fprintf(b, "%s\n\n", mdText(fx.Advice))
	}
	if fx.Caveat != "" {
		fmt.Fprintf(b, "Note: %s\n\n", mdText(fx.Caveat))
	}
	if len(fx.Prove) > 0 {
		b.WriteString("Prove it elsewhere:\n\n")
		writeFence(b, fx.Prove)
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

// WriteFence writes lines in a Markdown code block that nothing inside can
// close, for notes built elsewhere (the view's).
func WriteFence(b *strings.Builder, lines []string) { writeFence(b, lines) }

// MarkdownText escapes text from the kernel or a person for Markdown
// prose: controls made visible, no HTML.
func MarkdownText(s string) string { return mdText(s) }

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

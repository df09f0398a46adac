package ui

import (
	"fmt"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"asym/evidence"
	"asym/fix"
	"asym/playbook"
)

// View renders the whole screen. Only the root returns a tea.View; panes
// return lines.
func (m *Model) View() tea.View {
	v := tea.NewView(m.Render())
	v.AltScreen = true
	v.WindowTitle = "asym"
	return v
}

// Render is the screen as text, for View and for golden tests.
func (m *Model) Render() string {
	w, h := max(m.w, 40), max(m.h, 12)
	var lines []string
	switch {
	case m.form != nil:
		lines = m.formLines(w)
	case m.help:
		lines = append(m.headerLines(w), m.helpLines(w)...)
	default:
		lines = m.headerLines(w)
		body := h - len(lines) - 4 // two rules, the status line, the footer
		lines = append(lines, m.dim(strings.Repeat("─", w)))
		lines = append(lines, m.bodyLines(w, body)...)
		lines = append(lines, m.dim(strings.Repeat("─", w)))
		lines = append(lines, m.statusLine(w), m.footerLine(w))
	}
	for i := range lines {
		lines[i] = ansi.Truncate(lines[i], w, "…")
	}
	if len(lines) > h {
		lines = lines[:h]
	}
	return strings.Join(lines, "\n")
}

func (m *Model) dim(s string) string { return m.st.Dim.Render(s) }

func (m *Model) headerLines(w int) []string {
	c := playbook.Clean
	first := m.st.Title.Render("asym") + " " + c(m.info.Hostname) + " · " + c(m.info.Target) + " · kernel " + c(m.info.Kernel)
	if p := m.privileges(); p != "" {
		first += " · " + p
	}
	second := ""
	if m.prober != nil {
		second = m.st.Bold.Render(c(m.flow.Arrow()))
		if r := m.role(); r != "" {
			short, _, _ := strings.Cut(r, " (")
			second += " · " + short
		} else {
			second += m.dim(" · role known after the first step")
		}
	}
	lines := []string{first, second}
	if p := m.peerHeader(); p != "" {
		lines = append(lines, p)
	}
	if l := m.opt.Lab; l != nil {
		lines = append(lines, m.labLine(l))
	}
	return lines
}

// labLine shows the lab traffic: the last attempts as ✓/✗ and the totals.
func (m *Model) labLine(l *LabInfo) string {
	t := m.labT
	var marks strings.Builder
	for _, ok := range t.recent {
		if ok {
			marks.WriteString(m.st.OK.Render("✓"))
		} else {
			marks.WriteString(m.st.Bad.Render("✗"))
		}
	}
	s := m.st.Bold.Render("lab "+playbook.Clean(l.Name)) + " · traffic " + marks.String() + fmt.Sprintf(" %d worked, %d failed", t.ok, t.failed)
	if t.last != "" {
		s += m.dim(" · last: " + t.last)
	}
	if t.ok+t.failed == 0 {
		s += m.dim(" · the failing flow is tried every second")
	}
	return s
}

// bodyLines lays out the left column (steps, findings) and the detail pane.
func (m *Model) bodyLines(w, h int) []string {
	lw := clamp(w/3, 30, 34) // room for "▸ CRIT " and the longest finding id
	rw := w - lw - 3
	left := m.leftLines(lw, h)
	right := m.detailLines(rw)
	if m.scroll > max(0, len(right)-h) {
		m.scroll = max(0, len(right)-h)
	}
	right = right[min(m.scroll, len(right)):]
	out := make([]string, h)
	for i := range out {
		l, r := "", ""
		if i < len(left) {
			l = left[i]
		}
		if i < len(right) {
			r = right[i]
		}
		l = ansi.Truncate(l, lw, "…")
		out[i] = l + strings.Repeat(" ", max(0, lw-ansi.StringWidth(l))) + m.dim(" │ ") + ansi.Truncate(r, rw, "…")
	}
	return out
}

func (m *Model) paneTitle(p pane, s string) string {
	if m.focus == p {
		return m.st.Title.Render("▌" + s)
	}
	return m.st.Bold.Render(" " + s)
}

func (m *Model) leftLines(width, h int) []string {
	out := []string{m.paneTitle(paneSteps, "STEPS")}
	for i, s := range playbook.Steps {
		cursor := "  "
		if i == m.sel {
			cursor = "▸ "
		}
		name, _, _ := strings.Cut(s.Name, ":")
		out = append(out, cursor+m.stepBadge(i)+" "+name)
	}
	out = append(out, "", m.paneTitle(paneFindings, fmt.Sprintf("FINDINGS (%d)", len(m.findings))))
	if len(m.findings) == 0 {
		if m.anyRun() {
			out = append(out, m.dim("  none so far"))
		} else {
			out = append(out, m.dim("  run a step: enter"))
		}
	}
	// With a peer, findings come in groups (across both ends, here, on the
	// peer), each under a heading.
	grouped := m.hasPeer()
	heading := func(i int) bool {
		return grouped && (i == 0 || m.findings[i-1].Side != m.findings[i].Side)
	}
	groups := 0
	for i := range m.findings {
		if heading(i) {
			groups++
		}
	}
	room := h - len(out) - groups
	from := 0
	if m.fsel >= room {
		from = m.fsel - room + 1
	}
	for i := from; i < len(m.findings) && len(out) < h; i++ {
		f := m.findings[i]
		if heading(i) || (grouped && i == from) {
			w := f.Where()
			if w == "" {
				w = "here"
			}
			out = append(out, m.dim("  "+w+":"))
		}
		cursor := "  "
		if i == m.fsel && (m.focus == paneFindings || m.showFind) {
			cursor = "▸ "
		}
		out = append(out, cursor+m.sevBadge(f.Severity)+" "+string(f.ID))
	}
	return out
}

func (m *Model) anyRun() bool {
	for _, s := range m.steps {
		if s.status != stepNotRun {
			return true
		}
	}
	return false
}

// stepBadge says a step's status with a symbol and a word, never colour alone.
func (m *Model) stepBadge(i int) string {
	s := m.steps[i]
	switch s.status {
	case stepRunning:
		return m.st.Run.Render(m.spin.View() + " running ")
	case stepClean:
		if s.verdict.Verdict != playbook.VerdictClean {
			return m.st.Warn.Render("? unproven")
		}
		return m.st.OK.Render("✓ clean   ")
	case stepFinding:
		n, p := 0, 0 // this host's (and both ends'), the peer's own
		for _, f := range m.findings {
			switch {
			case f.Step != playbook.Steps[i].ID:
			case f.Side == playbook.SidePeer:
				p++
			default:
				n++
			}
		}
		if n == 0 {
			return m.st.Crit.Render(fmt.Sprintf("✗ %d peer  ", p))
		}
		return m.st.Crit.Render(fmt.Sprintf("✗ %d found ", n))
	}
	return m.dim("· not run ")
}

func (m *Model) sevBadge(s playbook.Severity) string {
	switch s {
	case playbook.Critical:
		return m.st.Crit.Render("CRIT")
	case playbook.Warning:
		return m.st.Warn.Render("WARN")
	}
	return m.st.Info.Render("INFO")
}

func (m *Model) detailLines(width int) []string {
	switch {
	case m.trace.shown && !m.showFind:
		return m.traceLines(width)
	case m.live != nil && m.live.shown && !m.showFind:
		return m.live.lines(m.st, width)
	case m.showFind && len(m.findings) > 0:
		return m.findingLines(m.findings[m.fsel], width)
	}
	return m.stepLines(m.sel, width)
}

// hang wraps a line to width with a marker in front of the first part and
// an indent in front of the others: output is wrapped, never cut, because
// people read (and copy) all of it.
func hang(st lipgloss.Style, marker, s string, width int) []string {
	parts := strings.Split(ansi.Wrap(s, max(20, width-len([]rune(marker))-2), " "), "\n")
	for i := range parts {
		if i == 0 {
			parts[i] = st.Render(marker + parts[i])
		} else {
			parts[i] = st.Render(strings.Repeat(" ", len([]rune(marker))+2) + parts[i])
		}
	}
	return parts
}

func wrap(s string, width int) []string {
	return strings.Split(ansi.Wordwrap(s, max(20, width), " "), "\n")
}

func (m *Model) stepLines(i, width int) []string {
	s, st := playbook.Steps[i], m.steps[i]
	out := []string{m.st.Title.Render(s.Name)}
	out = append(out, wrap(s.Proves, width)...)
	// The Third step confirms with live evidence: while the live view runs,
	// its packets, events and counters head the step.
	if s.ID == "third" && m.live != nil {
		out = append(out, "")
		out = append(out, m.live.lines(m.st, width)...)
	}
	if st.status == stepNotRun {
		out = append(out, "", m.dim("Not run yet. Press enter to run the next step, r to run this one."))
		out = append(out, "", m.st.Bold.Render("Probes:"))
		for _, id := range s.Probes {
			out = append(out, "  · "+string(id))
		}
		return out
	}
	colWidth := width
	if m.hasPeer() && width >= 123 {
		colWidth = (width - 3) / 2
	}
	var here []string
	for _, p := range st.probes {
		here = append(here, "")
		if p.rep == nil {
			if p.running {
				here = append(here, m.st.Run.Render(m.spin.View()+" "+string(p.id)+" running…"))
			} else {
				here = append(here, m.dim("· "+string(p.id)+" waiting"))
			}
			continue
		}
		here = append(here, m.reportLines(p.rep.Rep(), colWidth)...)
	}
	if !m.hasPeer() {
		return append(out, here...)
	}
	out = append(out, "")
	return append(out, m.bothEnds(here, m.peerStepLines(i, colWidth), width)...)
}

// reportLines renders one probe's report: title and status, the command,
// the output with the lines a finding rests on marked.
func (m *Model) reportLines(r *evidence.Report, width int) []string {
	evidence := m.evidenceTexts()
	out := []string{m.st.Bold.Render(playbook.Clean(r.Title)) + "  " + m.probeStatus(r)}
	if r.Command != "" {
		out = append(out, hang(m.st.Cmd, "$ ", playbook.Clean(r.Command), width)...)
	}
	for _, l := range r.Lines {
		l = playbook.Clean(l)
		switch {
		case matters(l, evidence):
			out = append(out, hang(m.st.Highlight, "▶ ", l, width)...)
		case strings.HasPrefix(l, "$ "):
			out = append(out, hang(m.st.Cmd, "  ", l, width)...)
		case strings.HasPrefix(l, "#"):
			out = append(out, hang(m.st.Dim, "  ", l, width)...)
		default:
			out = append(out, hang(m.st.Pane, "  ", l, width)...)
		}
	}
	return out
}

// matters tells whether an output line is part of a finding's evidence.
func matters(line string, evidence []string) bool {
	t := strings.TrimSpace(line)
	if len(t) < 12 || strings.HasPrefix(t, "$ ") {
		return false
	}
	for _, e := range evidence {
		if strings.Contains(e, t) {
			return true
		}
	}
	return false
}

func (m *Model) evidenceTexts() []string {
	var out []string
	for _, f := range m.findings {
		for _, l := range f.Evidence {
			out = append(out, playbook.Clean(l.Text))
		}
	}
	return out
}

func (m *Model) probeStatus(r *evidence.Report) string {
	switch r.Status {
	case evidence.StatusOK:
		return m.st.OK.Render("ok") + m.dim(" "+r.Elapsed.Round(10*time.Microsecond).String())
	case evidence.StatusUnavailable:
		return m.st.Warn.Render("unavailable: " + playbook.Clean(r.Reason))
	case evidence.StatusTimedOut:
		return m.st.Bad.Render("timed out: " + playbook.Clean(r.Reason))
	}
	return m.st.Bad.Render("failed: " + playbook.Clean(r.Reason))
}

func (m *Model) findingLines(f playbook.Finding, width int) []string {
	c := playbook.Clean
	where := " · " + f.Step + " step"
	if w := f.Where(); w != "" {
		where += " · " + w
	}
	out := []string{m.sevBadge(f.Severity) + " " + m.st.Bold.Render(string(f.ID)) + m.dim(where)}
	out = append(out, wrap(c(f.Title), width)...)
	render := fix.Prefixed(m.info.Prefix)
	if f.Side == playbook.SidePeer && m.peer.pa != nil {
		render = m.peer.pa.Peer.Render() // behind the --peer words: they run there
	}
	fixText := m.fixLines(f.Fix, render, width)
	if m.showFix {
		if pane := m.fixPaneLines(f, width); len(pane) > 0 {
			out = append(out, "")
			out = append(out, pane...)
		}
		out = append(out, "")
		out = append(out, fixText...)
		out = append(out, "", m.dim("esc: back to the finding"))
		return out
	}
	out = append(out, "", m.st.Title.Render("Evidence"))
	for _, l := range f.Evidence {
		out = append(out, hang(m.st.Pane, "▶ ", "["+c(l.Label())+"] "+c(l.Text), width)...)
	}
	out = append(out, "", m.st.Title.Render("Why"))
	if e, ok := playbook.Lookup(f.ID); ok {
		for _, p := range strings.Split(e.Explain, "\n\n") {
			out = append(out, wrap(strings.Join(strings.Fields(p), " "), width)...)
			out = append(out, "")
		}
	} else {
		out = append(out, wrap(c(f.Why), width)...)
	}
	out = append(out, fixText...)
	return out
}

func (m *Model) fixLines(fx *fix.Fix, render fix.Render, width int) []string {
	c := playbook.Clean
	if fx == nil {
		return []string{m.dim("No fix: this is information to act on elsewhere.")}
	}
	out := hang(m.st.Title, "Fix: ", c(fx.Summary), width)
	for i, cmd := range fx.CommandsVia(render) {
		out = append(out, m.command(c(cmd), width)...)
		if u := fx.Steps[i].Missing(); u != "" {
			out = append(out, m.st.Warn.Render("    unknown: "+c(u)))
		}
		if o := fix.Origin(fx.Steps[i]); o != "" {
			out = append(out, hang(m.st.Dim, "    ", c(o), width)...)
		}
	}
	if fx.Advice != "" {
		out = append(out, wrap(c(fx.Advice), width)...)
	}
	if fx.Caveat != "" {
		out = append(out, wrap("Note: "+c(fx.Caveat), width)...)
	}
	if len(fx.Prove) > 0 {
		out = append(out, "", m.st.Bold.Render("Prove it elsewhere:"))
		for _, p := range fx.Prove {
			out = append(out, m.command(c(p), width)...)
		}
	}
	for _, alt := range fx.Alternatives {
		out = append(out, "")
		out = append(out, hang(m.st.Bold, "Alternative: ", c(alt.Summary), width)...)
		for _, cmd := range alt.CommandsVia(render) {
			out = append(out, m.command(c(cmd), width)...)
		}
		if alt.Caveat != "" {
			out = append(out, wrap("Note: "+c(alt.Caveat), width)...)
		}
	}
	if title, lines := m.opt.Session.Persist(fx); len(lines) > 0 {
		out = append(out, "")
		out = append(out, hang(m.st.Bold, "", "To keep it across reboots ("+title+"):", width)...)
		for _, l := range lines {
			out = append(out, hang(m.st.Cmd, "  ", playbook.Clean(l), width)...)
		}
	}
	return out
}

// command renders a command a person will copy: wrapped with a trailing
// backslash, never truncated.
func (m *Model) command(cmd string, width int) []string {
	// 6 columns of indent on continuation lines and 2 for " \\".
	parts := strings.Split(ansi.Wrap(cmd, max(20, width-8), " "), "\n")
	for i := range parts {
		if i < len(parts)-1 {
			parts[i] += " \\"
		}
		indent := "  "
		if i > 0 {
			indent = "      "
		}
		parts[i] = m.st.Cmd.Render(indent + parts[i])
	}
	return parts
}

func (m *Model) statusLine(w int) string {
	if o := m.fix.outcome; o != nil && m.fix.result == "" {
		left := o.Deadline.Sub(m.opt.Now()).Round(time.Second)
		return m.st.Highlight.Render(fmt.Sprintf("Fix applied (%d changes): y keep · n revert now · reverts by itself in %s", o.Changes, left))
	}
	if m.flash != "" {
		if m.flashErr {
			return m.st.FlashErr.Render("! " + m.flash)
		}
		return m.st.Flash.Render(m.flash)
	}
	if m.anyRunning() {
		return m.st.Run.Render(m.spin.View() + " probing…")
	}
	n := 0
	for _, s := range m.steps {
		if s.status == stepClean || s.status == stepFinding {
			n++
		}
	}
	if n == len(m.steps) {
		if len(m.findings) == 0 && m.verdict.Verdict == playbook.VerdictClean {
			return m.st.OK.Render("✓ all steps run: the flow's way through this host works (proven)")
		}
		if len(m.findings) == 0 {
			return m.st.Warn.Render("? no finding, but not proven: press l and reproduce the failure")
		}
		return m.st.Crit.Render(fmt.Sprintf("✗ %d finding(s): tab to them, enter for details, f for the fix", len(m.findings)))
	}
	return m.dim(fmt.Sprintf("%d of %d steps run", n, len(m.steps)))
}

func (m *Model) footerLine(w int) string {
	var bs []string
	hint := func(keys, desc string) { bs = append(bs, m.st.Bold.Render(keys)+" "+m.dim(desc)) }
	switch m.focus {
	case paneFindings:
		hint("enter", "details")
		hint("f", "fix")
	case paneDetail:
		hint("↑↓", "scroll")
		if m.showFind {
			hint("f", "fix")
			hint("esc", "back")
		}
	default:
		hint("enter", "next step")
		hint("r", "re-run")
		hint("a", "all")
	}
	hint("tab", "pane")
	if m.opt.Session.Live() && w >= 90 {
		hint("l", "live")
	}
	hint("e", "notes")
	hint("y", "copy")
	hint("?", "help")
	hint("q", "quit")
	return strings.Join(bs, "  ")
}

func (m *Model) helpLines(w int) []string {
	rows := []struct{ keys, desc string }{
		{"enter / n", "run the next step (First, Second, Third)"},
		{"r / a", "re-run the selected step / run every step"},
		{"tab, ↑↓ j k", "move between panes; select, or scroll the detail"},
		{"enter (findings)", "show the finding: evidence, why, fix"},
		{"f", "show the fix, quoted so that pasting it is safe"},
		{"enter (fix)", "apply it after a confirmation; reverts unless kept"},
		{"y / n", "while an applied fix waits: keep it / revert it now"},
		{"l", "live view: the flow's counters and conntrack events"},
		{"t", "trace the flow's path, both ends (sends probes: asks once)"},
		{"e", "append incident notes (Markdown, UTC) to the notes file"},
		{"y", "copy the notes to the clipboard (OSC 52)"},
		{"esc / q", "back / quit (the terminal is restored)"},
	}
	out := []string{m.dim(strings.Repeat("─", w)), m.st.Title.Render("Keys")}
	for _, r := range rows {
		out = append(out, fmt.Sprintf("  %-17s %s", m.st.Bold.Render(r.keys), r.desc))
	}
	out = append(out, "")
	out = append(out, hang(m.st.Dim, "", "Notes: "+playbook.Clean(m.opt.NotesPath), w)...)
	out = append(out, hang(m.st.Dim, "", "Lines marked ▶ are a finding's evidence. asym only reads, except when you apply a fix: that reverts by itself unless you keep it.", w)...)
	out = append(out, m.dim("? or esc to close"))
	return out
}

func (m *Model) formLines(w int) []string {
	f := m.form
	out := []string{m.st.Title.Render("asym") + " " + playbook.Clean(m.info.Hostname) + " · " + playbook.Clean(m.info.Target), "",
		m.st.Bold.Render("Which flow fails?") + m.dim(" As the client sent it: protocol, source, destination."), ""}
	labels := [3]string{"protocol   ", "source     ", "destination"}
	for i, in := range f.inputs {
		marker := "  "
		if i == f.focus {
			marker = m.st.Title.Render("▸ ")
		}
		out = append(out, marker+labels[i]+" "+in.View())
	}
	out = append(out, "")
	if f.err != "" {
		out = append(out, wrap(m.st.FlashErr.Render("! "+playbook.Clean(f.err)), w)...)
	} else if _, ok := f.validate(); ok {
		out = append(out, m.st.OK.Render("✓ enter to diagnose"))
	} else {
		out = append(out, m.dim("e.g. tcp  203.0.113.10:40000  198.51.100.11:8080  (ports optional; [ipv6]:port)"))
	}
	if len(f.history) > 0 {
		out = append(out, "", m.st.Bold.Render("Earlier flows")+m.dim(" (↑/↓ to use one)"))
		for i, h := range f.history {
			if i >= 5 {
				break
			}
			mark := "  "
			if i == f.hpos {
				mark = "▸ "
			}
			out = append(out, mark+playbook.Clean(h.String()))
		}
	}
	out = append(out, "", m.dim("tab next field · enter diagnose · esc quit"))
	return out
}

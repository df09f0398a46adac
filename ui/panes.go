package ui

import (
	"fmt"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"asym/evidence"
	"asym/fix"
	"asym/playbook"
)

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
		out = append(out, cursor+m.stepBadge(i)+" "+fmt.Sprintf("%-6s", name)+" "+m.stepWhen(i))
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

// stepWhen is when a step last ran, or that the host changed since.
func (m *Model) stepWhen(i int) string {
	switch s := m.steps[i]; {
	case m.stale(i):
		return m.st.Warn.Render("stale")
	case s.status == stepNotRun && m.runAll && !s.ranAt.IsZero():
		return m.dim("queued")
	case !s.ranAt.IsZero() && s.status != stepRunning:
		return m.dim(clock(s.ranAt))
	}
	return ""
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
	case m.traceShown():
		return m.traceLines(width)
	case m.liveShown():
		return m.live.lines(m.st, width)
	case m.recordShown():
		return m.appliedFixLines(width)
	case m.showFind && len(m.findings) > 0:
		return m.findingLines(m.findings[m.fsel], width)
	}
	return m.stepLines(m.sel, width)
}

// hang wraps a line to width with a marker in front of the first part and
// an indent in front of the others: output is wrapped, never cut, because
// people read (and copy) all of it.
func hang(st lipgloss.Style, marker, s string, width int) []string {
	parts := wrapText(s, max(20, width-len([]rune(marker))-2))
	for i := range parts {
		if i == 0 {
			parts[i] = st.Render(marker + parts[i])
		} else {
			parts[i] = st.Render(strings.Repeat(" ", len([]rune(marker))+2) + parts[i])
		}
	}
	return parts
}

func wrap(s string, width int) []string { return wrapText(s, max(20, width)) }

// wrapText breaks text at spaces only, keeping the runs of spaces inside a
// line (the columns of ip's output): never at a hyphen, because text quotes
// commands and their flags. A word wider than the line is cut where it
// must be.
func wrapText(s string, width int) []string {
	var lines []string
	cur, gap := "", ""
	flush := func() {
		lines = append(lines, cur)
		cur, gap = "", ""
	}
	for len(s) > 0 {
		i := strings.IndexByte(s, ' ')
		if i == 0 {
			j := len(s) - len(strings.TrimLeft(s, " "))
			gap, s = gap+s[:j], s[j:]
			continue
		}
		if i < 0 {
			i = len(s)
		}
		word := s[:i]
		s = s[i:]
		switch {
		case cur == "" && ansi.StringWidth(gap+word) <= width:
			cur, gap = gap+word, ""
		case cur != "" && ansi.StringWidth(cur+gap+word) <= width:
			cur, gap = cur+gap+word, ""
		default:
			if cur != "" {
				flush()
			}
			for ansi.StringWidth(word) > width {
				head := ansi.Truncate(word, width, "")
				lines = append(lines, head)
				word = word[len(head):]
			}
			cur, gap = word, ""
		}
	}
	return append(lines, cur)
}

func (m *Model) stepLines(i, width int) []string {
	s, st := playbook.Steps[i], m.steps[i]
	out := []string{m.st.Title.Render(s.Name)}
	switch {
	case m.stale(i):
		out = append(out, hang(m.st.Warn, "", "ran "+clock(st.ranAt)+" UTC, before the last change to the host: stale; r runs it again, a every step", width)...)
	case !st.ranAt.IsZero() && st.status != stepRunning:
		out = append(out, m.dim("ran "+clock(st.ranAt)+" UTC · r runs it again"))
	}
	out = append(out, wrap(s.Proves, width)...)
	// The Third step confirms with live evidence: while the live view runs,
	// its packets, events and counters head the step.
	if s.ID == "third" && m.live != nil {
		out = append(out, "")
		out = append(out, m.live.lines(m.st, width)...)
	}
	if st.status == stepNotRun {
		out = append(out, "")
		out = append(out, hang(m.st.Dim, "", "Not run yet. Press enter to run the next step, r to run this one, a every step.", width)...)
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
		out = append(out, m.commandAs("$ ", playbook.Clean(r.Command), width)...)
	}
	for _, l := range r.Lines {
		l = playbook.Clean(l)
		switch {
		case matters(l, evidence):
			out = append(out, hang(m.st.Highlight, "▶ ", l, width)...)
		case strings.HasPrefix(l, "$ "):
			out = append(out, m.commandAs("  ", l, width)...)
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
		out = append(out, "", m.dim("esc: back to the finding · y: copy the commands"))
		return out
	}
	out = append(out, "", m.st.Title.Render("Evidence"))
	for _, l := range f.Evidence {
		text := "[" + c(l.Label()) + "] " + c(l.Text)
		if strings.HasPrefix(l.Text, "$ ") {
			out = append(out, m.commandAs("▶ ", text, width)...) // a command: wrapped as one
			continue
		}
		out = append(out, hang(m.st.Pane, "▶ ", text, width)...)
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
	if title, lines := m.opt.Session.Persist(fx); len(fx.Steps) > 0 && len(lines) > 0 {
		out = append(out, "")
		out = append(out, hang(m.st.Bold, "", "To keep it across reboots ("+title+"):", width)...)
		for _, l := range lines {
			out = append(out, hang(m.st.Cmd, "  ", playbook.Clean(l), width)...)
		}
	}
	return out
}

// command renders a command a person will copy: wrapped between words
// with a trailing backslash, a flag never apart from its value.
func (m *Model) command(cmd string, width int) []string {
	return m.commandAs("  ", cmd, width)
}

// commandAs renders a command after a marker ("$ "), its continuation
// lines indented under it.
func (m *Model) commandAs(marker, cmd string, width int) []string {
	parts := wrapCommand(cmd, max(20, width-len([]rune(marker))-4))
	for i := range parts {
		indent := marker
		if i > 0 {
			indent = strings.Repeat(" ", len([]rune(marker))+4)
		}
		parts[i] = m.st.Cmd.Render(indent + parts[i])
	}
	return parts
}

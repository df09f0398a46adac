package ui

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

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

// Render is the screen as text, for View and for golden tests. What must
// be read at 02:13 is never cut at 80x24: the header, the pending fix and
// the status wrap, and the body takes what is left.
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
		status := m.statusLines(w)
		body := max(3, h-len(lines)-len(status)-3) // two rules and the key bar
		lines = append(lines, m.dim(strings.Repeat("─", w)))
		b, pos := m.bodyLines(w, body)
		lines = append(lines, b...)
		lines = append(lines, m.rule(w, pos))
		lines = append(lines, status...)
		lines = append(lines, m.keyBar(w))
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

// headerLines: where and what, the lab's traffic, the pending fix and the
// root cause.
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
	lines = append(lines, m.bannerLines(w)...)
	if hl := m.headline(w); hl != "" {
		lines = append(lines, hl)
	}
	return lines
}

// headline is the most likely root cause in one line, with the key that
// shows its fix: as much of it as fits, the key always.
func (m *Model) headline(w int) string {
	cause, ok := playbook.RootCause(m.findings)
	if !ok {
		return ""
	}
	id := string(cause.Finding.ID)
	if where := cause.Finding.Where(); where != "" {
		id += " (" + where + ")"
	}
	act := "  " + m.st.Bold.Render("f") + m.dim(" fix")
	if cause.Finding.Fix == nil {
		act = "  " + m.st.Bold.Render("f") + m.dim(" advice")
	}
	explains := ""
	if n := len(cause.Explains); n > 0 {
		explains = fmt.Sprintf(" → explains %d: %s", n, joinIDs(cause.Explains))
	}
	room := w - lineWidth(act)
	for _, s := range []string{
		"▶ cause: " + id + explains + ": " + playbook.Clean(cause.Finding.Title),
		"▶ cause: " + id + explains,
		"▶ cause: " + id + fmt.Sprintf(" → explains %d", len(cause.Explains)),
	} {
		if lineWidth(s) <= room {
			return m.st.Crit.Render(s) + act
		}
	}
	return m.st.Crit.Render(ansi.Truncate("▶ cause: "+id, room, "…")) + act
}

func joinIDs(ids []playbook.FindingID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
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

// scrollPos is where the detail pane is: its first line shown, its last,
// and how many there are.
type scrollPos struct{ from, to, total int }

// bodyLines lays out the left column (steps, findings) and the detail pane;
// on a narrow terminal the detail, while read, takes the whole width.
func (m *Model) bodyLines(w, h int) ([]string, scrollPos) {
	rw := m.detailWidth(w)
	right := m.detailLines(rw)
	if m.scroll > max(0, len(right)-h) {
		m.scroll = max(0, len(right)-h)
	}
	pos := scrollPos{from: m.scroll + 1, to: min(len(right), m.scroll+h), total: len(right)}
	right = right[min(m.scroll, len(right)):]
	out := make([]string, h)
	if m.collapsed(w) {
		copy(out, right)
		for i := range out {
			out[i] = ansi.Truncate(out[i], rw, "…")
		}
		return out, pos
	}
	lw := leftWidth(w)
	left := m.leftLines(lw, h)
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
	return out, pos
}

// rule is the line under the body, with the detail's scroll position when
// it does not fit.
func (m *Model) rule(w int, p scrollPos) string {
	if p.total <= p.to-p.from+1 {
		return m.dim(strings.Repeat("─", w))
	}
	where := fmt.Sprintf(" %d–%d of %d (%d%%) ", p.from, p.to, p.total, p.to*100/p.total)
	return m.dim(strings.Repeat("─", max(0, w-lineWidth(where)-2)) + where + "──")
}

// statusLines say what is going on, wrapped: a search being typed, what the
// last key did, the probes running, or where the playbook stands.
func (m *Model) statusLines(w int) []string {
	if m.search.editing {
		return []string{m.searchLine()}
	}
	if m.flash != "" {
		if m.flashErr {
			return hang(m.st.FlashErr, "! ", m.flash, w)
		}
		return hang(m.st.Flash, "", m.flash, w)
	}
	if m.anyRunning() {
		return []string{m.st.Run.Render(m.spin.View() + " probing…")}
	}
	if !m.allRan() {
		n := 0
		for _, s := range m.steps {
			if s.status == stepClean || s.status == stepFinding {
				n++
			}
		}
		return []string{m.dim(fmt.Sprintf("%d of %d steps run", n, len(m.steps)))}
	}
	switch {
	case len(m.findings) == 0 && m.verdict.Verdict == playbook.VerdictClean:
		return hang(m.st.OK, "", "✓ all steps run: the flow's way through this host works (proven)", w)
	case len(m.findings) == 0:
		return hang(m.st.Warn, "", "? no finding, but not proven: press l and reproduce the failure", w)
	}
	return hang(m.st.Crit, "", fmt.Sprintf("✗ %d finding(s): tab to them, enter for details, f for the cause's fix", len(m.findings)), w)
}

func (m *Model) helpLines(w int) []string {
	out := []string{m.dim("── keys " + strings.Repeat("─", max(0, w-8)))}
	for _, g := range m.keys.help() {
		var ks []string
		for _, b := range g.keys {
			ks = append(ks, m.st.Bold.Render(b.Help().Key)+" "+b.Help().Desc)
		}
		row := strings.Join(ks, " · ")
		if g.note != "" {
			row += m.dim(" — " + g.note)
		}
		out = append(out, hangWords(fmt.Sprintf("%-9s ", g.what), row, w)...)
	}
	out = append(out, "")
	out = append(out, hang(m.st.Dim, "", "Notes: "+playbook.Clean(m.opt.NotesPath)+". ▶ marks a finding's evidence. asym only reads, except to apply a fix: that reverts by itself unless kept (K).", w)...)
	out = append(out, m.dim("? or esc to close"))
	return out
}

// hangWords wraps styled text between words under a label.
func hangWords(label, s string, w int) []string {
	parts := strings.Split(ansi.Wordwrap(s, max(20, w-len(label)), " "), "\n")
	for i := range parts {
		if i == 0 {
			parts[i] = label + parts[i]
		} else {
			parts[i] = strings.Repeat(" ", len(label)) + parts[i]
		}
	}
	return parts
}

func (m *Model) formLines(w int) []string {
	f := m.form
	out := []string{m.st.Title.Render("asym") + " " + playbook.Clean(m.info.Hostname) + " · " + playbook.Clean(m.info.Target)}
	if b := m.bannerLines(w); len(b) > 0 {
		out = append(out, b...)
		out = append(out, hang(m.st.Dim, "   ", "K and U work once the flow is chosen; or: "+playbook.Clean(m.fix.pending.Confirm)+" / --rollback", w)...)
	}
	out = append(out, "", m.st.Bold.Render("Which flow fails?")+m.dim(" As the client sent it: protocol, source, destination."), "")
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
		out = append(out, hang(m.st.FlashErr, "! ", playbook.Clean(f.err), w)...)
	} else if _, ok := f.validate(); ok {
		out = append(out, m.st.OK.Render("✓ enter to diagnose"))
	} else {
		out = append(out, m.dim("e.g. tcp  203.0.113.10:40000  198.51.100.11:8080  (ports optional; [ipv6]:port)"))
	}
	if len(f.history) > 0 {
		out = append(out, "", m.st.Bold.Render("Earlier flows on "+playbook.Clean(m.info.Target))+m.dim(" (↑/↓ to use one)"))
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
	leave := "esc quit"
	if f.editing {
		leave = "esc keep the current flow"
	}
	out = append(out, "", m.dim("tab next field · enter diagnose · "+leave))
	return out
}

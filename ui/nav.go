package ui

// Moving between panes and what the detail pane shows: a step, a finding,
// its fix, or the live view. esc always goes one level back.

import (
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

func (m *Model) move(d int) {
	switch m.focus {
	case paneSteps:
		m.sel = clamp(m.sel+d, 0, len(m.steps)-1)
		m.showFind, m.scroll = false, 0
	case paneFindings:
		m.fsel = clamp(m.fsel+d, 0, max(0, len(m.findings)-1))
		m.showFind, m.showFix, m.scroll = true, false, 0
	case paneDetail:
		m.scrollBy(d)
	}
}

func (m *Model) scrollBy(d int) { m.scroll = max(0, m.scroll+d) }

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

func (m *Model) nextPane() tea.Cmd {
	step := 1
	if m.lastKey == "shift+tab" {
		step = 2
	}
	m.focus = (m.focus + pane(step)) % 3
	if m.focus == paneFindings && len(m.findings) == 0 {
		m.focus = (m.focus + pane(step)) % 3
	}
	m.showFind = m.focus != paneSteps && len(m.findings) > 0 && (m.focus == paneFindings || m.showFind)
	if m.focus == paneSteps {
		m.showFix = false
	}
	m.scroll = 0
	return nil
}

// back goes one level up: out of a search, the fix, the finding, the live
// view, then from the detail or the findings to the steps.
func (m *Model) back() tea.Cmd {
	switch {
	case m.search.query != "":
		m.search = searchState{}
		return nil
	case m.showFix:
		m.showFix = false
	case m.showFind:
		m.showFind, m.focus = false, paneFindings
	case m.traceShown():
		m.trace.shown = false
	case m.liveShown():
		m.live.shown = false
	case m.focus != paneSteps:
		m.focus = paneSteps
	}
	m.scroll = 0
	return nil
}

func (m *Model) openFinding() tea.Cmd {
	m.showFind, m.showFix, m.focus, m.scroll = true, false, paneDetail, 0
	return nil
}

// openFix shows the fix of the selected finding, or of the root cause
// when no finding is selected (the headline's f).
func (m *Model) openFix() tea.Cmd {
	if len(m.findings) == 0 && (m.fix.outcome != nil || m.fix.kept != nil) {
		m.showFind, m.showFix, m.focus, m.scroll = true, true, paneDetail, 0
		return nil
	}
	if len(m.findings) == 0 {
		m.setFlash("no finding yet, so no fix: run the steps (a)", false)
		return nil
	}
	if m.focus == paneSteps || (!m.showFind && m.focus != paneFindings) {
		m.fsel = m.causeIndex()
	}
	m.showFind, m.showFix, m.focus, m.scroll = true, true, paneDetail, 0
	m.fix.openedAt, m.fix.confirming = m.opt.Now(), false
	return nil
}

// traceShown says the detail shows the trace (t), over the live view.
func (m *Model) traceShown() bool { return m.trace.shown && !m.showFind }

func (m *Model) liveShown() bool { return m.live != nil && m.live.shown && !m.showFind }

// collapsed says the left column gives its room to the detail: on a narrow
// terminal, while the detail is read.
func (m *Model) collapsed(w int) bool {
	return w < 100 && (m.focus == paneDetail || m.showFind || m.traceShown() || m.liveShown())
}

// detailWidth is the width of the detail pane at a terminal width.
func (m *Model) detailWidth(w int) int {
	if m.collapsed(w) {
		return w
	}
	return w - leftWidth(w) - 3
}

func leftWidth(w int) int { return clamp(w/3, 30, 34) } // room for "▸ CRIT " and the longest finding id

func lineWidth(s string) int { return ansi.StringWidth(s) }

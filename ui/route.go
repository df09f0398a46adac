package ui

// Keys are routed by state: what is typed into a question (the flow, a
// gateway, a search) goes to it; otherwise the state's actions decide. An
// action list never holds one key twice (a test walks every state), the
// key bar is drawn from it, and a key that is off in a state says why.

import (
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// action is what one key does in the state the view is in.
type action struct {
	b     key.Binding // from the KeyMap
	label string      // what it does here, for the key bar; "" keeps it off the bar
	rank  int         // 0 stays on the key bar whatever the width … 3 leaves it first
	do    func() tea.Cmd
}

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return m.quit()
	}
	switch {
	case m.form != nil:
		return m.formKey(k)
	case m.fix.ask != nil:
		return m.askKey(k)
	case m.search.editing:
		return m.searchKey(k)
	}
	m.flash, m.lastKey = "", k.String()
	if !m.trace.askedAt.IsZero() && !key.Matches(k, m.keys.Trace) {
		m.trace.askedAt = time.Time{} // any other key declines the trace
		if key.Matches(k, m.keys.Back) {
			return nil
		}
	}
	for _, a := range m.actions() {
		if key.Matches(k, a.b) {
			return a.do()
		}
	}
	m.refuse(k)
	return nil
}

// actions are the keys of the current state: a modal question's own, or
// the pending fix's, the pane's and the view's.
func (m *Model) actions() []action {
	switch {
	case m.help:
		return m.helpActions()
	case m.fix.confirming:
		return m.confirmActions()
	}
	as := m.pendingActions()
	as = append(as, m.paneActions()...)
	return append(as, m.viewActions()...)
}

func (m *Model) helpActions() []action {
	closeHelp := func() tea.Cmd { m.help = false; return nil }
	return []action{
		{m.keys.Help, "close", 0, closeHelp},
		{m.keys.Back, "close", 0, closeHelp},
		{m.keys.Quit, "quit", 0, m.quit},
	}
}

// confirmActions are the confirmation's: nothing else may happen while the
// person decides whether to change the host.
func (m *Model) confirmActions() []action {
	return []action{
		{m.keys.Confirm, map[bool]string{false: "apply", true: "undo"}[m.fix.confirmUndo], 0, m.confirmYes},
		{m.keys.Cancel, "cancel", 0, m.cancelApply},
	}
}

// pendingActions are K and U while a fix is applied and not decided, on
// every pane. Copy and apply are off meanwhile (refuse says so).
func (m *Model) pendingActions() []action {
	if !m.fix.busy() {
		return nil
	}
	return []action{
		{m.keys.Keep, "keep", 0, func() tea.Cmd { return m.decide(true) }},
		{m.keys.Revert, "revert", 0, func() tea.Cmd { return m.decide(false) }},
	}
}

// paneActions are the focused pane's: enter and the arrows.
func (m *Model) paneActions() []action {
	up := func() tea.Cmd { m.move(-1); return nil }
	down := func() tea.Cmd { m.move(1); return nil }
	switch {
	case m.focus == paneFindings && len(m.findings) > 0:
		return []action{
			{m.keys.Open, "details", 0, m.openFinding},
			{m.keys.Up, "", 0, up},
			{m.keys.Down, "select", 0, down},
		}
	case m.focus == paneSteps:
		return []action{
			{m.keys.Next, "next step", 0, m.runNext},
			{m.keys.Up, "", 0, up},
			{m.keys.Down, "select", 0, down},
		}
	}
	as := []action{{m.keys.Up, "", 0, up}, {m.keys.Down, "scroll", 0, down}}
	switch {
	case m.showFix && m.canApplyHere():
		as = append(as, action{m.keys.Apply, "apply", 0, m.askApply})
	case !m.showFind && !m.liveShown():
		as = append(as, action{m.keys.Next, "next step", 2, m.runNext})
	}
	if m.canUndoHere() {
		as = append(as, action{m.keys.Undo, "undo kept fix", 0, m.askUndo})
	}
	return as
}

// viewActions work on every pane. Those with nothing to act on here stay
// bound (they say why) but off the key bar.
func (m *Model) viewActions() []action {
	as := []action{
		{m.keys.Fix, m.labelIf((len(m.findings) > 0 || m.fix.outcome != nil || m.fix.kept != nil) && !m.showFix, "fix"), 1, m.openFix},
		{m.keys.All, m.allLabel(), 1, m.runAllSteps},
		{m.keys.Rerun, m.labelIf(m.prober != nil, "re-run"), 2, func() tea.Cmd { return m.runStep(m.sel) }},
		{m.keys.Tab, "pane", 1, m.nextPane},
		{m.keys.Back, m.labelIf(m.canGoBack(), "back"), 1, m.back},
		{m.keys.Live, m.labelIf(m.opt.Session.Live() && m.prober != nil, "live"), 1, m.toggleLive},
		{m.keys.Trace, m.labelIf(m.prober != nil && !m.trace.running, "trace"), 3, m.traceKey},
		{m.keys.Search, "search", 2, m.openSearch},
		{m.keys.SearchNext, m.labelIf(m.search.query != "", "match"), 1, func() tea.Cmd { return m.findNext(1) }},
		{m.keys.SearchPrev, "", 3, func() tea.Cmd { return m.findNext(-1) }},
		{m.keys.PageUp, "", 3, func() tea.Cmd { m.scrollBy(-m.detailHeight()); return nil }},
		{m.keys.PageDn, "", 3, func() tea.Cmd { m.scrollBy(m.detailHeight()); return nil }},
		{m.keys.Top, "", 3, func() tea.Cmd { m.scroll = 0; return nil }},
		{m.keys.Bottom, "", 3, func() tea.Cmd { m.scroll = 1 << 30; return nil }}, // clamped when drawn
		{m.keys.Notes, "notes", 2, m.exportNotes},
		{m.keys.EditFlow, "flow", 3, m.editFlow},
	}
	if !m.fix.busy() {
		rank := 2
		if m.showFind || m.focus == paneFindings {
			rank = 1 // the fix is what this pane is for
		}
		as = append(as, action{m.keys.Copy, m.copyLabel(), rank, m.copySelection})
	}
	return append(as, action{m.keys.Help, "help", 0, func() tea.Cmd { m.help = true; return nil }},
		action{m.keys.Quit, "quit", 0, m.quit})
}

func (m *Model) labelIf(ok bool, label string) string {
	if ok {
		return label
	}
	return ""
}

func (m *Model) canGoBack() bool {
	return m.search.query != "" || m.showFix || m.showFind || m.traceShown() || m.liveShown() || m.focus != paneSteps
}

// refuse explains a key that is off in this state, so that a tired person
// learns why nothing happened instead of guessing.
func (m *Model) refuse(k tea.KeyPressMsg) {
	switch {
	case m.fix.confirming:
		m.setFlash("answer the question first: y applies, esc cancels", true)
	case m.fix.busy() && key.Matches(k, m.keys.Copy):
		m.setFlash("copy is off while a fix waits for a decision: K keeps it, U reverts it", true)
	case m.showFix && key.Matches(k, m.keys.Apply):
		m.setFlash(m.whyNoApply(), true)
	case key.Matches(k, m.keys.Keep, m.keys.Revert):
		m.setFlash("no fix is waiting for a decision: K and U keep or revert one right after it is applied", false)
	case key.Matches(k, m.keys.Undo):
		m.setFlash("X undoes a kept fix, in the fix view that shows it (f)", false)
	}
}

// keyBar lists the state's keys for the bottom line: when it is narrow,
// the keys that matter least leave first, the last of them first.
func (m *Model) keyBar(w int) string {
	var as []action
	for _, a := range m.actions() {
		if a.label != "" {
			as = append(as, a)
		}
	}
	render := func(as []action) string {
		parts := make([]string, len(as))
		for i, a := range as {
			k := a.b.Help().Key
			switch a.label {
			case "select", "scroll":
				k = "↑↓"
			case "match":
				k = "n/N"
			}
			parts[i] = m.st.Bold.Render(k) + " " + m.dim(a.label)
		}
		return strings.Join(parts, "  ")
	}
	for rank := 3; rank > 0; rank-- {
		for i := len(as) - 1; i >= 0 && lineWidth(render(as)) > w; i-- {
			if as[i].rank == rank {
				as = append(as[:i], as[i+1:]...)
			}
		}
	}
	return render(as)
}

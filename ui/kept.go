package ui

// A kept fix can be undone later, from its journal (asym fix --undo): the
// fix view shows its undo commands and X undoes it, after a confirmation.

import (
	"context"
	"fmt"

	tea "charm.land/bubbletea/v2"

	"asym/playbook"
)

type undoneMsg struct{ err error }

// keptRead takes the journal's kept fix. One found when the view starts is
// said once: it is in place, and how to undo it.
func (m *Model) keptRead(k *playbook.KeptFix) {
	fx := &m.fix
	if k != nil && fx.kept == nil && fx.outcome == nil {
		m.note("a fix kept at %s is in place: %s", clock(k.Applied), k.Summary)
		m.setFlash("a fix asym applied and kept at "+clock(k.Applied)+" UTC is in place here: f shows it, X in the fix view undoes it ("+k.Undo+")", false)
	}
	fx.kept = k
}

// canUndoHere says X undoes the kept fix: the fix view shows it, and no
// other change is under way.
func (m *Model) canUndoHere() bool {
	return m.keptShown() && !m.fix.busy() && !m.fix.undoing && !m.fix.confirming
}

// keptShown says the fix view shows the kept fix: the journal's heads every
// fix view; the one kept from this view shows in its own finding's.
func (m *Model) keptShown() bool {
	switch {
	case !m.showFix || m.fix.kept == nil:
		return false
	case m.fix.outcome == nil:
		return true
	}
	return m.recordShown() || (m.fsel < len(m.findings) && string(m.findings[m.fsel].ID) == m.fix.finding)
}

func (m *Model) askUndo() tea.Cmd {
	fx, now := &m.fix, m.opt.Now()
	if now.Sub(fx.openedAt) < grace {
		return nil
	}
	fx.confirming, fx.confirmUndo, fx.openedAt = true, true, now
	return nil
}

// confirmYes answers the confirmation that is open: apply, or undo.
func (m *Model) confirmYes() tea.Cmd {
	if !m.fix.confirmUndo {
		return m.confirmApply()
	}
	fx := &m.fix
	if m.opt.Now().Sub(fx.openedAt) < grace {
		return nil
	}
	fx.confirming, fx.confirmUndo, fx.undoing = false, false, true
	fx.gen++
	m.setFlash("undoing the kept fix: each change only while it is as asym left it…", false)
	sess := m.opt.Session
	return func() tea.Msg { return undoneMsg{err: sess.UndoKept(context.Background())} }
}

func (m *Model) keptUndone(msg undoneMsg) tea.Cmd {
	fx := &m.fix
	fx.undoing = false
	if msg.err != nil {
		m.setFlash("not undone: "+msg.err.Error(), true)
		m.note("the kept fix was not undone: %s", msg.err)
		return m.readPending()
	}
	m.note("kept fix undone%s", m.by())
	m.setFlash("undone: what asym changed is taken back; re-running every step", false)
	fx.result, fx.decidedAt, fx.undone, fx.kept = "undone", m.opt.Now(), fx.kept, nil
	m.epoch++
	if !m.anyRun() {
		return nil
	}
	return m.rerunAll()
}

// undoPrompt is the confirmation of X.
func (m *Model) undoPrompt(width int) []string {
	out := hang(m.st.Highlight, "", fmt.Sprintf("Undo the kept fix (%d changes) in %s? y undo · esc cancel", len(m.undoCommands()), playbook.Clean(m.info.Target)), width)
	return append(out, hang(m.st.Dim, "", "asym takes back each change only while it is as asym left it, and lists what someone changed since.", width)...)
}

// keptLines is a kept fix found in the journal, in the fix view.
func (m *Model) keptLines(width int) []string {
	k := m.fix.kept
	out := hang(m.st.Bold, "", fmt.Sprintf("A fix kept at %s UTC is in place: %s", clock(k.Applied), playbook.Clean(k.Summary)), width)
	return append(out, m.undoLines(width)...)
}

// undoLines are the commands that take back the kept fix.
func (m *Model) undoLines(width int) []string {
	cmds := m.undoCommands()
	if len(cmds) == 0 {
		return nil
	}
	how := "To undo it later, by hand, the last change first:"
	if k := m.fix.kept; k != nil {
		how = "To undo it later: X here, or " + playbook.Clean(k.Undo) + " (each change only while it is as asym left it); by hand, the last change first:"
	}
	out := append([]string{""}, hang(m.st.Bold, "", how, width)...)
	for _, c := range cmds {
		out = append(out, m.command(c, width)...)
	}
	return out
}

// undoCommands are the kept fix's undo commands, from its journal.
func (m *Model) undoCommands() []string {
	var cmds []string
	switch fx := m.fix; {
	case fx.kept != nil:
		cmds = fx.kept.UndoCommands
	case fx.decided != nil && fx.result == "kept":
		cmds = fx.decided.Undo
	}
	out := make([]string, len(cmds))
	for i, c := range cmds {
		out[i] = playbook.Clean(c)
	}
	return out
}

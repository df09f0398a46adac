package ui

// Copying and exporting. y copies what the pane selects, not the screen:
// a fix's commands, a step's commands, the hand-off commands of the live
// view. OSC 52 may not reach the clipboard (an old terminal, tmux without
// set-clipboard), so what is copied is appended to the notes file too.

import (
	"fmt"
	"strings"

	tea "charm.land/bubbletea/v2"

	"asym/fix"
	"asym/playbook"
)

type notesMsg struct {
	path   string
	err    error
	copied string // what a copy appended; "" for the notes
}

// exportNotes writes the notes off the UI goroutine.
func (m *Model) exportNotes() tea.Cmd {
	// Built from the model's state, so a failed write loses nothing: the
	// next e builds them again.
	md := m.notesMarkdown()
	path := m.opt.NotesPath
	m.setFlash("writing notes to "+path+"…", false)
	return func() tea.Msg { return notesMsg{path: path, err: AppendNotes(path, md)} }
}

func (m *Model) notesWritten(msg notesMsg) {
	switch {
	case msg.err != nil && msg.copied != "":
		m.setFlash(fmt.Sprintf("copied %s with OSC 52, but not into the notes file: %v", msg.copied, msg.err), true)
	case msg.err != nil:
		m.setFlash(fmt.Sprintf("notes not written: %v — they are kept: press e to retry", msg.err), true)
	case msg.copied != "":
		m.setFlash("copied "+msg.copied+" with OSC 52 (in tmux: set -g set-clipboard on); also appended to "+msg.path, false)
	default:
		m.setFlash("notes appended to "+msg.path, false)
	}
}

// selection is what y copies here: a name for it and its lines.
func (m *Model) selection() (string, []string) {
	switch {
	case m.recordShown() || m.keptShown():
		return m.appliedSelection()
	case len(m.findings) > 0 && (m.showFind || m.focus == paneFindings):
		return m.findingSelection(m.findings[m.fsel])
	case m.liveShown():
		h := m.report().HandOff
		return fmt.Sprintf("the %d commands to go deeper", len(h)), h
	}
	var cmds []string
	for _, p := range m.steps[m.sel].probes {
		if p.rep != nil && p.rep.Rep().Command != "" {
			cmds = append(cmds, p.rep.Rep().Command)
		}
	}
	name, _, _ := strings.Cut(playbook.Steps[m.sel].Name, ":")
	return fmt.Sprintf("the %d commands of the %s step", len(cmds), name), cmds
}

// appliedSelection is the fix this view applied, or once kept, what undoes
// it.
func (m *Model) appliedSelection() (string, []string) {
	if cmds := m.undoCommands(); len(cmds) > 0 {
		return fmt.Sprintf("the %d commands that undo the kept fix", len(cmds)), cmds
	}
	fx, _ := fixOf(m.fix.outcome, m.fix.finding)
	cmds := fx.CommandsIn(m.info.Prefix)
	return fmt.Sprintf("the %d commands of the fix of %s", len(cmds), m.fix.finding), cmds
}

// findingSelection is a finding's fix, behind the --peer words for the
// peer's, or what proves it elsewhere when nothing here fixes it.
func (m *Model) findingSelection(f playbook.Finding) (string, []string) {
	render := fix.Prefixed(m.info.Prefix)
	if f.Side == playbook.SidePeer && m.peer.pa != nil {
		render = m.peer.pa.Peer.Render()
	}
	if cmds := f.Fix.CommandsVia(render); len(cmds) > 0 {
		return fmt.Sprintf("the %d commands of the fix of %s", len(cmds), f.ID), cmds
	}
	if f.Fix != nil && len(f.Fix.Prove) > 0 {
		return fmt.Sprintf("the %d commands that prove %s elsewhere", len(f.Fix.Prove), f.ID), f.Fix.Prove
	}
	return "", nil
}

func (m *Model) copyLabel() string {
	switch {
	case m.keptShown():
		return "copy undo"
	case len(m.findings) > 0 && (m.showFind || m.focus == paneFindings):
		return "copy fix"
	case m.liveShown():
		return "copy cmds"
	}
	return "copy cmds"
}

// copySelection copies the selection with OSC 52 and appends it to the
// notes file, off the UI goroutine.
func (m *Model) copySelection() tea.Cmd {
	what, lines := m.selection()
	if len(lines) == 0 {
		m.setFlash("nothing to copy here: the fix view, a step that ran and the live view have commands", false)
		return nil
	}
	for i := range lines {
		lines[i] = playbook.Clean(lines[i])
	}
	text := strings.Join(lines, "\n")
	var b strings.Builder
	fmt.Fprintf(&b, "## asym: copied at %s UTC: %s\n\n", clock(m.opt.Now()), playbook.MarkdownText(what))
	playbook.WriteFence(&b, lines)
	m.note("copied %s", what)
	m.setFlash("copied "+what+" with OSC 52 (in tmux: set -g set-clipboard on); appending it to the notes file…", false)
	path, md := m.opt.NotesPath, []byte(b.String())
	return tea.Batch(tea.SetClipboard(text), func() tea.Msg {
		return notesMsg{path: path, err: AppendNotes(path, md), copied: what}
	})
}

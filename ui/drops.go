package ui

// The live view's part of the kernel's drop witness: the flow's packets
// the kernel dropped, with its reason, read one batch at a time like the
// capture's.

import (
	"fmt"
	"io"

	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/playbook"
)

type dropsMsg struct {
	u  evidence.DropUpdate
	ok bool
}

func waitDrops(ch <-chan evidence.DropUpdate) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		return dropsMsg{u, ok}
	}
}

func (m *Model) dropsUpdate(msg dropsMsg) tea.Cmd {
	l := m.live
	if l == nil || !msg.ok {
		return nil
	}
	u := msg.u
	if u.Hook != "" {
		l.dropHook = u.Hook
	}
	l.drops = append(l.drops, u.Drops...)
	if over := len(l.drops) - liveMax; over > 0 {
		l.drops = append(l.drops[:0], l.drops[over:]...)
		l.dropLost += over
	}
	l.dropLost += u.Lost + u.Skipped
	if u.Err != nil {
		l.dropHook, l.dropErr = "", playbook.Clean(u.Err.Error())
	}
	if len(u.Drops) > 0 {
		m.reanalyze()
	}
	return waitDrops(l.dch)
}

// dropLines is the drops section of the live view.
func (l *liveState) dropLines(st Styles, width int) []string {
	switch {
	case l.dch == nil:
		return nil
	case l.dropErr != "":
		return append([]string{""}, hang(st.Dim, "", l.dropErr, width)...)
	}
	out := []string{"", st.Bold.Render(fmt.Sprintf("kernel drops of the flow (reason, where; newest last; %d not kept)", l.dropLost))}
	if len(l.drops) == 0 {
		return append(out, st.Dim.Render("none yet"))
	}
	out = append(out, st.Bad.Render(evidence.DropCounts(l.drops)))
	for _, d := range l.drops[max(0, len(l.drops)-8):] {
		out = append(out, hang(st.Bad, "✗ ", playbook.Clean(d.Text), width)...)
	}
	return out
}

func (l *liveState) dropMarkdown(w io.Writer) {
	if len(l.drops) == 0 {
		return
	}
	fmt.Fprintf(w, "Kernel drops of the flow (%s; %d not kept):\n\n```\n", l.dropHook, l.dropLost)
	for _, d := range l.drops {
		fmt.Fprintf(w, "%s\n", playbook.Clean(d.Text))
	}
	fmt.Fprintf(w, "```\n\n")
}

package ui

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"asym/playbook"
)

// event is one line of the incident's timeline: what happened, when, as
// the view saw it happen (never before it was measured).
type event struct {
	at   time.Time
	what string
}

// note records an event now. Finding ids are written in backquotes: the
// timeline is Markdown in the notes.
func (m *Model) note(format string, args ...any) {
	m.noteAt(m.opt.Now(), format, args...)
}

func (m *Model) noteAt(at time.Time, format string, args ...any) {
	m.events = append(m.events, event{at: at, what: playbook.Clean(fmt.Sprintf(format, args...))})
}

// stepNote records a step that finished, with what it found.
func (m *Model) stepNote(i int) {
	s := m.steps[i]
	name, _, _ := strings.Cut(playbook.Steps[i].Name, ":")
	var found []string
	for _, f := range m.findings {
		if f.Step == playbook.Steps[i].ID && f.Side != playbook.SidePeer {
			found = append(found, "`"+string(f.ID)+"`")
		}
	}
	switch {
	case len(found) > 0:
		m.note("%s step run: %d finding(s): %s", name, len(found), strings.Join(found, ", "))
	case s.verdict.Verdict == playbook.VerdictClean:
		m.note("%s step run: clean (proven)", name)
	default:
		m.note("%s step run: no finding, not proven", name)
	}
}

// timeline is the events in the order they happened.
func (m *Model) timeline() []event {
	out := append([]event(nil), m.events...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

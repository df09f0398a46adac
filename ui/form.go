package ui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"asym/flow"
)

// formModel asks for the flow: protocol, source, destination, validated as
// the person types, with the same sentences as the command line.
type formModel struct {
	inputs  [3]textinput.Model
	focus   int
	history []flow.Flow
	hpos    int // -1: not browsing the history
	err     string
	editing bool // changing the flow of a running view: esc goes back to it
}

func newForm(history []flow.Flow, plain bool) *formModel {
	f := &formModel{history: history, hpos: -1}
	placeholders := [3]string{"tcp", "203.0.113.10:40000", "198.51.100.11:8080"}
	for i := range f.inputs {
		in := textinput.New()
		in.Placeholder = placeholders[i]
		in.CharLimit = 64
		in.SetWidth(40)
		// A steady cursor: blinking redraws the screen twice a second,
		// which a slow SSH link pays for.
		st := in.Styles()
		if plain {
			st = textinput.Styles{}
		}
		st.Cursor.Blink = false
		in.SetStyles(st)
		f.inputs[i] = in
	}
	f.inputs[0].SetValue("tcp")
	f.inputs[0].Focus()
	return f
}

func (f *formModel) words() []string {
	var w []string
	for _, in := range f.inputs {
		w = append(w, strings.TrimSpace(in.Value()))
	}
	return w
}

// validate parses what is typed so far and keeps the error sentence; a
// field still empty is not an error yet.
func (f *formModel) validate() (flow.Flow, bool) {
	w := f.words()
	for _, s := range w {
		if s == "" {
			f.err = ""
			return flow.Flow{}, false
		}
	}
	fl, err := flow.Parse(w)
	if err != nil {
		f.err = err.Error()
		return flow.Flow{}, false
	}
	f.err = ""
	return fl, true
}

func (f *formModel) setFocus(i int) {
	f.inputs[f.focus].Blur()
	f.focus = (i + len(f.inputs)) % len(f.inputs)
	f.inputs[f.focus].Focus()
}

func (f *formModel) fill(fl flow.Flow) {
	w := strings.Fields(fl.String())
	for i := range f.inputs {
		f.inputs[i].SetValue(w[i])
		f.inputs[i].CursorEnd()
	}
}

func (f *formModel) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	f.inputs[f.focus], cmd = f.inputs[f.focus].Update(msg)
	f.validate()
	return cmd
}

func (m *Model) formKey(k tea.KeyPressMsg) tea.Cmd {
	f := m.form
	switch {
	case f.editing && k.String() == "esc":
		m.form = nil
		return nil
	case k.String() == "esc" || (k.String() == "q" && f.inputs[f.focus].Value() == "" && f.focus == 0):
		return m.quit()
	case key.Matches(k, m.keys.FormSubmit):
		if fl, ok := f.validate(); ok {
			m.submitFlow(fl)
			return nil
		}
		if f.err == "" {
			f.err = "fill in the protocol, the source and the destination"
		}
		return nil
	case key.Matches(k, m.keys.FormNext):
		if k.String() == "shift+tab" {
			f.setFocus(f.focus - 1)
		} else {
			f.setFocus(f.focus + 1)
		}
		return nil
	case key.Matches(k, m.keys.FormUp) && len(f.history) > 0:
		f.hpos = min(f.hpos+1, len(f.history)-1)
		f.fill(f.history[f.hpos])
		f.validate()
		return nil
	case key.Matches(k, m.keys.FormDn) && f.hpos > 0:
		f.hpos--
		f.fill(f.history[f.hpos])
		f.validate()
		return nil
	}
	return f.update(k)
}

// editFlow opens the form on the current flow, to change it in place: the
// target's earlier flows are offered, esc keeps the current one.
func (m *Model) editFlow() tea.Cmd {
	m.form = newForm(LoadHistory(m.opt.HistoryPath, m.info.Target), m.opt.Plain)
	m.form.editing = true
	if m.prober != nil {
		m.form.fill(m.flow)
		m.form.validate()
	}
	return nil
}

// submitFlow diagnoses the flow the form holds; the same flow again only
// closes the form (its results stay).
func (m *Model) submitFlow(fl flow.Flow) {
	if m.form.editing && m.prober != nil && fl == m.flow {
		m.form = nil
		return
	}
	if m.live != nil {
		m.live.stop()
		m.live = nil
	}
	m.focus, m.sel, m.fsel, m.scroll, m.showFind, m.showFix = paneSteps, 0, 0, 0, false, false
	m.search = searchState{}
	m.setFlow(fl)
}

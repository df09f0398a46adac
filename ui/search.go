package ui

// Searching the detail pane as less does: / opens the question, enter
// jumps to the first match below, n and N to the next and previous (they
// wrap), esc clears the search.

import (
	"fmt"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

type searchState struct {
	editing bool
	input   textinput.Model
	query   string
}

func (m *Model) openSearch() tea.Cmd {
	in := textinput.New()
	in.Prompt = "/"
	in.CharLimit = 80
	in.SetWidth(40)
	st := in.Styles()
	if m.opt.Plain {
		st = textinput.Styles{}
	}
	st.Cursor.Blink = false
	in.SetStyles(st)
	in.SetValue(m.search.query)
	in.CursorEnd()
	m.search = searchState{editing: true, input: in, query: m.search.query}
	return m.search.input.Focus()
}

// searchKey owns every key while the question is open: what is typed is
// the text to find.
func (m *Model) searchKey(k tea.KeyPressMsg) tea.Cmd {
	switch k.String() {
	case "esc":
		m.search = searchState{}
		return nil
	case "enter":
		m.search.editing = false
		m.search.query = strings.TrimSpace(m.search.input.Value())
		if m.search.query == "" {
			return nil
		}
		m.scroll-- // the first match at the top of the pane counts
		return m.findNext(1)
	}
	var cmd tea.Cmd
	m.search.input, cmd = m.search.input.Update(k)
	return cmd
}

// findNext scrolls the detail to the next match (dir 1) or the previous
// one (-1) from the line at the top of the pane, wrapping around.
func (m *Model) findNext(dir int) tea.Cmd {
	q := strings.ToLower(m.search.query)
	if q == "" {
		m.setFlash("no search yet: / searches the detail pane", false)
		return nil
	}
	var hits []int
	for i, l := range m.detailLines(m.detailWidth(max(m.w, 40))) {
		if strings.Contains(strings.ToLower(ansi.Strip(l)), q) {
			hits = append(hits, i)
		}
	}
	if len(hits) == 0 {
		m.setFlash(fmt.Sprintf("/%s: not found in this pane (esc clears the search)", m.search.query), true)
		return nil
	}
	at := pick(hits, m.scroll, dir)
	m.scroll = hits[at]
	m.setFlash(fmt.Sprintf("/%s: match %d of %d · n next · N previous · esc clears", m.search.query, at+1, len(hits)), false)
	return nil
}

// pick is the index of the first hit after from (dir 1) or before it
// (dir -1), wrapping around.
func pick(hits []int, from, dir int) int {
	if dir > 0 {
		for i, h := range hits {
			if h > from {
				return i
			}
		}
		return 0
	}
	for i := len(hits) - 1; i >= 0; i-- {
		if hits[i] < from {
			return i
		}
	}
	return len(hits) - 1
}

// searchLine is the open question, in place of the status line.
func (m *Model) searchLine() string {
	return m.search.input.View() + m.dim("  enter find · esc cancel")
}

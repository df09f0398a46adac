package ui

import "charm.land/bubbles/v2/key"

// KeyMap holds every binding, grouped by where it acts. Which of them a key
// press reaches depends on the state the view is in (route.go): in any one
// state a key does one thing, and the key bar and ? say which.
type KeyMap struct {
	// The playbook's steps.
	Next, Rerun, All, Live key.Binding
	// The flow's path hop by hop, both ends (it sends probes: asks first).
	Trace key.Binding
	// Moving: select in the left panes, scroll the detail.
	Up, Down, PageUp, PageDn, Top, Bottom key.Binding
	Tab, Back, Open, Fix                  key.Binding
	// Searching the detail, as in less: / then n and N.
	Search, SearchNext, SearchPrev key.Binding
	Notes, Copy, EditFlow          key.Binding
	// A fix: enter in the fix view asks, y or enter applies, esc or n
	// cancels; once applied, K keeps and U reverts, and nothing else does.
	Apply, Confirm, Cancel, Keep, Revert, Undo key.Binding
	Help, Quit                                 key.Binding
	FormNext, FormUp, FormDn, FormSubmit       key.Binding
}

// DefaultKeyMap is what the key bar and ? show.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return KeyMap{
		Next:       b([]string{"enter"}, "enter", "next step"),
		Rerun:      b([]string{"r"}, "r", "re-run the selected"),
		All:        b([]string{"a"}, "a", "run or re-run all"),
		Live:       b([]string{"l"}, "l", "live view"),
		Trace:      b([]string{"t"}, "t", "trace (asks first)"),
		Up:         b([]string{"k", "up"}, "↑/k", "up"),
		Down:       b([]string{"j", "down"}, "↓/j", "down"),
		PageUp:     b([]string{"pgup", "ctrl+u", "b"}, "pgup/b", "page up"),
		PageDn:     b([]string{"pgdown", "ctrl+d", "space"}, "pgdn/space", "page down"),
		Top:        b([]string{"g", "home"}, "g/home", "top"),
		Bottom:     b([]string{"G", "end"}, "G/end", "bottom"),
		Tab:        b([]string{"tab", "shift+tab"}, "tab", "next pane"),
		Back:       b([]string{"esc"}, "esc", "back, from any pane"),
		Open:       b([]string{"enter"}, "enter", "open the finding"),
		Fix:        b([]string{"f"}, "f", "its fix (the root cause's from the steps)"),
		Search:     b([]string{"/"}, "/", "search the detail"),
		SearchNext: b([]string{"n"}, "n", "next match"),
		SearchPrev: b([]string{"N"}, "N", "previous match"),
		Notes:      b([]string{"e"}, "e", "append notes to the file"),
		Copy:       b([]string{"y"}, "y", "copy the fix or commands (OSC 52)"),
		EditFlow:   b([]string{"c"}, "c", "change the flow"),
		Apply:      b([]string{"enter"}, "enter", "apply (it asks first)"),
		Confirm:    b([]string{"y", "enter"}, "y/enter", "yes, apply"),
		Cancel:     b([]string{"esc", "n"}, "esc/n", "cancel"),
		Keep:       b([]string{"K"}, "K", "keep the applied fix"),
		Revert:     b([]string{"U"}, "U", "revert it now"),
		Undo:       b([]string{"X"}, "X", "undo a kept fix, later (it asks first)"),
		Help:       b([]string{"?"}, "?", "help"),
		Quit:       b([]string{"q"}, "q", "quit"),
		FormNext:   b([]string{"tab", "shift+tab"}, "tab", "next field"),
		FormUp:     b([]string{"up"}, "↑", "older flow"),
		FormDn:     b([]string{"down"}, "↓", "newer flow"),
		FormSubmit: b([]string{"enter"}, "enter", "diagnose"),
	}
}

// helpGroup is a row of ?: what the keys are for, and the keys.
type helpGroup struct {
	what string
	keys []key.Binding
	note string
}

// help is every binding outside the form, grouped as ? shows them.
func (k KeyMap) help() []helpGroup {
	return []helpGroup{
		{"steps", []key.Binding{k.Next, k.Rerun, k.All, k.Live, k.Trace}, ""},
		{"panes", []key.Binding{k.Tab, k.Back, k.Open, k.Fix}, ""},
		{"scroll", []key.Binding{k.Up, k.Down, k.PageUp, k.PageDn, k.Top, k.Bottom}, ""},
		{"search", []key.Binding{k.Search, k.SearchNext, k.SearchPrev}, "esc clears it"},
		{"fix view", []key.Binding{k.Apply, k.Confirm, k.Cancel}, ""},
		{"applied", []key.Binding{k.Keep, k.Revert}, "nothing else keeps or reverts it"},
		{"kept", []key.Binding{k.Undo}, "in the fix view"},
		{"notes", []key.Binding{k.Notes, k.Copy}, "y appends them to the notes too"},
		{"other", []key.Binding{k.EditFlow, k.Help, k.Quit}, "a pending fix reverts by itself"},
	}
}

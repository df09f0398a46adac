package ui

import "charm.land/bubbles/v2/key"

// KeyMap holds every binding, grouped by where it acts.
type KeyMap struct {
	Next, Rerun, All, Live   key.Binding
	Trace                    key.Binding
	Up, Down, PageUp, PageDn key.Binding
	Tab, Back, Fix           key.Binding
	Notes, Copy, Help, Quit  key.Binding
	FormNext, FormUp, FormDn key.Binding
	FormSubmit               key.Binding
}

// DefaultKeyMap is what the footer and ? show.
func DefaultKeyMap() KeyMap {
	b := func(keys []string, k, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(k, desc))
	}
	return KeyMap{
		Next:       b([]string{"enter", "n"}, "enter/n", "run next step"),
		Rerun:      b([]string{"r"}, "r", "re-run step"),
		All:        b([]string{"a"}, "a", "run all"),
		Live:       b([]string{"l"}, "l", "live view"),
		Trace:      b([]string{"t"}, "t", "trace the path"),
		Up:         b([]string{"k", "up"}, "↑/k", "up"),
		Down:       b([]string{"j", "down"}, "↓/j", "down"),
		PageUp:     b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDn:     b([]string{"pgdown", "ctrl+d", "space"}, "pgdn", "page down"),
		Tab:        b([]string{"tab", "shift+tab"}, "tab", "next pane"),
		Back:       b([]string{"esc"}, "esc", "back"),
		Fix:        b([]string{"f"}, "f", "show fix"),
		Notes:      b([]string{"e"}, "e", "export notes"),
		Copy:       b([]string{"y"}, "y", "copy notes"),
		Help:       b([]string{"?"}, "?", "help"),
		Quit:       b([]string{"q", "ctrl+c"}, "q", "quit"),
		FormNext:   b([]string{"tab", "shift+tab"}, "tab", "next field"),
		FormUp:     b([]string{"up"}, "↑", "older flow"),
		FormDn:     b([]string{"down"}, "↓", "newer flow"),
		FormSubmit: b([]string{"enter"}, "enter", "diagnose"),
	}
}

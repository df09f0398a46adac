package ui

import (
	"image/color"

	"charm.land/lipgloss/v2"
)

// Styles is every style the UI uses. Colour is never the only signal:
// statuses also carry a symbol and a word, so the screen reads right with
// NO_COLOR=1 (the renderer drops colours then).
type Styles struct {
	Title, Dim, Bold, Cmd, Highlight, Crit, Warn, Info, OK, Run, Bad lipgloss.Style
	Pane, PaneFocused, Footer, Flash, FlashErr                       lipgloss.Style
}

// NewStyles builds the styles; plain gives styles without colour or
// attributes, for golden tests.
func NewStyles(plain bool) Styles {
	if plain {
		n := lipgloss.NewStyle()
		return Styles{Title: n, Dim: n, Bold: n, Cmd: n, Highlight: n, Crit: n, Warn: n, Info: n, OK: n, Run: n, Bad: n,
			Pane: n, PaneFocused: n, Footer: n, Flash: n, FlashErr: n}
	}
	c := func(s string) color.Color { return lipgloss.Color(s) }
	return Styles{
		Title:       lipgloss.NewStyle().Bold(true).Foreground(c("#7dcfff")),
		Dim:         lipgloss.NewStyle().Foreground(c("#8a8f98")),
		Bold:        lipgloss.NewStyle().Bold(true),
		Cmd:         lipgloss.NewStyle().Foreground(c("#9ece6a")),
		Highlight:   lipgloss.NewStyle().Bold(true).Foreground(c("#e0af68")),
		Crit:        lipgloss.NewStyle().Bold(true).Foreground(c("#f7768e")),
		Warn:        lipgloss.NewStyle().Bold(true).Foreground(c("#e0af68")),
		Info:        lipgloss.NewStyle().Foreground(c("#7aa2f7")),
		OK:          lipgloss.NewStyle().Foreground(c("#9ece6a")),
		Run:         lipgloss.NewStyle().Foreground(c("#7aa2f7")),
		Bad:         lipgloss.NewStyle().Foreground(c("#f7768e")),
		Pane:        lipgloss.NewStyle(),
		PaneFocused: lipgloss.NewStyle(),
		Footer:      lipgloss.NewStyle().Foreground(c("#8a8f98")),
		Flash:       lipgloss.NewStyle().Foreground(c("#9ece6a")),
		FlashErr:    lipgloss.NewStyle().Bold(true).Foreground(c("#f7768e")),
	}
}

package ui

import (
	"os"
	"path/filepath"
	"strings"

	"asym/flow"
)

const historyMax = 20

// HistoryPath is where the last flows are kept: $XDG_STATE_HOME/asym/flows,
// or ~/.local/state/asym/flows.
func HistoryPath() string {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "asym", "flows")
}

// LoadHistory returns the flows used before, newest first. Lines that no
// longer parse are skipped: the file is ours, but people edit files.
func LoadHistory(path string) []flow.Flow {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []flow.Flow
	for _, l := range strings.Split(string(b), "\n") {
		if f, err := flow.ParseString(l); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// RememberFlow puts f first in the history file, without duplicates. A
// failure to write is not worth interrupting a diagnosis for: it is ignored.
func RememberFlow(path string, f flow.Flow) {
	if path == "" {
		return
	}
	lines := []string{f.String()}
	for _, old := range LoadHistory(path) {
		if old != f && len(lines) < historyMax {
			lines = append(lines, old.String())
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o700)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600) == nil {
		os.Rename(tmp, path)
	}
}

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

// The history file holds one flow a line, after the target it was
// diagnosed on and a tab: the flows of a namespace are not offered on
// another. Lines without a target (written before) are offered nowhere.
type historyLine struct {
	target string
	flow   flow.Flow
}

func readHistory(path string) []historyLine {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []historyLine
	for _, l := range strings.Split(string(b), "\n") {
		target, fl, ok := strings.Cut(l, "\t")
		if !ok {
			continue
		}
		if f, err := flow.ParseString(fl); err == nil {
			out = append(out, historyLine{target, f})
		}
	}
	return out
}

// LoadHistory returns the flows used before on target, newest first. Lines
// that no longer parse are skipped: the file is ours, but people edit files.
func LoadHistory(path, target string) []flow.Flow {
	var out []flow.Flow
	for _, h := range readHistory(path) {
		if h.target == target {
			out = append(out, h.flow)
		}
	}
	return out
}

// RememberFlow puts f first in target's history, without duplicates; the
// other targets' flows stay. A failure to write is not worth interrupting a
// diagnosis for: it is ignored.
func RememberFlow(path, target string, f flow.Flow) {
	if path == "" || strings.ContainsAny(target, "\t\n") {
		return
	}
	lines := []string{target + "\t" + f.String()}
	kept := 1
	for _, h := range readHistory(path) {
		switch {
		case h.target != target:
			lines = append(lines, h.target+"\t"+h.flow.String())
		case h.flow != f && kept < historyMax:
			lines = append(lines, h.target+"\t"+h.flow.String())
			kept++
		}
	}
	os.MkdirAll(filepath.Dir(path), 0o700)
	tmp := path + ".tmp"
	if os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o600) == nil {
		os.Rename(tmp, path)
	}
}

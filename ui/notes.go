package ui

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultNotesPath is ./asym-<host>-<UTC time>.md, fixed when the UI starts
// so that every export of one session appends to the same file.
func DefaultNotesPath(host string, start time.Time) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, host)
	if safe == "" {
		safe = "host"
	}
	return "asym-" + safe + "-" + start.UTC().Format("20060102T150405Z") + ".md"
}

// AppendNotes adds md to the notes file at path without ever leaving a half
// written file: it writes the old content plus the new to a temporary file
// in the same directory, syncs it and renames it over the old one. An
// existing file keeps its content and permissions.
func AppendNotes(path string, md []byte) error {
	if path == "" {
		return errors.New("no notes file given")
	}
	old, err := os.ReadFile(path)
	mode := os.FileMode(0o600) // notes name hosts and addresses: private by default
	switch {
	case err == nil:
		if st, err := os.Stat(path); err == nil {
			mode = st.Mode().Perm()
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return fmt.Errorf("read the notes file %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".asym-notes-*")
	if err != nil {
		return fmt.Errorf("cannot write notes in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	content := old
	if len(content) > 0 && !strings.HasSuffix(string(content), "\n\n") {
		content = append(content, '\n')
	}
	content = append(content, md...)
	if _, err = tmp.Write(content); err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), mode)
	}
	if err != nil {
		return fmt.Errorf("write the notes to %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("put the notes in place at %s: %w", path, err)
	}
	return nil
}

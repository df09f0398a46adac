// Package apply is the one place asym changes the kernel. Every change is
// journaled with its undo before it is made, and a watchdog that does not
// belong to the person's session reverts it unless it is confirmed in time,
// even when the SSH session (and asym) dies.
package apply

import (
	"asym/fix"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// States of a journal.
const (
	StateApplying   = "applying"    // changes are being made
	StatePending    = "pending"     // applied; reverts at the deadline unless confirmed
	StateConfirmed  = "confirmed"   // kept
	StateReverted   = "reverted"    // the watchdog undid it at the deadline
	StateRolledBack = "rolled back" // undone on request, or after a failed step
)

// Step is one change with its undo and how far it got.
type Step struct {
	Do      fix.StepJSON `json:"do"`
	Undo    fix.StepJSON `json:"undo"`
	Command string       `json:"command"` // what a person would have typed
	Started bool         `json:"started"` // set before the change: the undo runs for it even if the process died mid-change
	Done    bool         `json:"done"`
}

// TargetRef lets another process find the namespace again.
type TargetRef struct {
	Kind   string `json:"kind"` // host, netns, path, pid
	Value  string `json:"value"`
	NSPath string `json:"ns_path"`
	Inode  uint64 `json:"ns_inode"` // refuses to touch a different namespace that reused the path
}

// JournalVersion is the version of the journal's format. Version 1 stored
// changes as netlink library structures; a journal of another version is
// never acted on (its undo could be misread): the asym that wrote it must
// decide it.
const JournalVersion = 2

// Journal is the record of one applied fix.
type Journal struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Target   TargetRef `json:"target"`
	Flow     string    `json:"flow"`
	Summary  string    `json:"summary"`
	Created  time.Time `json:"created"`
	Deadline time.Time `json:"deadline"`
	State    string    `json:"state"`
	Steps    []Step    `json:"steps"`
	Watchdog string    `json:"watchdog,omitempty"` // how the revert is armed
	Armed    bool      `json:"armed"`              // the watchdog said it is running
	Log      []string  `json:"log"`
	path     string
}

// Dir is where journals live: a tmpfs, so a reboot (which loses the runtime
// change too) also loses the journal. ASYM_STATE_DIR overrides it for tests.
func Dir() string {
	if d := os.Getenv("ASYM_STATE_DIR"); d != "" {
		return d
	}
	return "/run/asym"
}

// IDFor names the journal of a target: one pending fix per namespace.
func IDFor(kind, value string) string {
	if kind == "host" {
		return "host"
	}
	return kind + "-" + strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, strings.TrimPrefix(value, "/"))
}

// PathFor is the journal file of an id.
func PathFor(id string) string { return filepath.Join(Dir(), id+".json") }

func (j *Journal) logf(format string, args ...any) {
	j.Log = append(j.Log, time.Now().UTC().Format(time.RFC3339)+" "+fmt.Sprintf(format, args...))
}

// Load reads a journal.
func Load(path string) (*Journal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("the journal %s is damaged: %v", path, err)
	}
	if v.Version != JournalVersion {
		return nil, fmt.Errorf("the journal %s was written by another version of asym (journal format %d, this asym reads %d): keep or undo that fix with the asym that applied it", path, v.Version, JournalVersion)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("the journal %s is damaged: %v", path, err)
	}
	j.path = path
	return &j, nil
}

// save writes the journal atomically and durably: the watchdog must never
// read half a journal, and must find it after a crash of the writer.
func (j *Journal) save() error {
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(j.path), err)
	}
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("write the journal %s: %w", tmp, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		return fmt.Errorf("write the journal %s: %w", j.path, err)
	}
	return nil
}

// locked runs fn with an exclusive lock on the journal's lock file, so the
// person's asym and the watchdog never act on the same journal at once.
func locked(path string, fn func() error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return fn()
}

// update loads the journal under the lock, lets fn change it and saves it.
func update(path string, fn func(j *Journal) error) (*Journal, error) {
	var out *Journal
	err := locked(path, func() error {
		j, err := Load(path)
		if err != nil {
			return err
		}
		if err := fn(j); err != nil {
			return err
		}
		out = j
		return j.save()
	})
	return out, err
}

// Pending reports whether the journal still waits for a decision.
func (j *Journal) Pending() bool { return j.State == StatePending || j.State == StateApplying }

// ErrNone says there is no journal for a target.
var ErrNone = errors.New("no fix has been applied to this target")

// Package apply is the one place asym changes the kernel. Every change is
// journaled with its undo before it is made, and a watchdog that does not
// belong to the person's session reverts it unless it is confirmed in time,
// even when the SSH session (and asym) dies. The watchdog holds the
// namespace the fix changed open until the revert, and is itself watched:
// a fix whose watchdog is gone is reported until someone decides it.
package apply

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"asym/fix"
)

// States of a journal.
const (
	StateApplying     = "applying"      // changes are being made
	StatePending      = "pending"       // applied; reverts at the deadline unless confirmed
	StateConfirmed    = "confirmed"     // kept
	StateReverted     = "reverted"      // the watchdog undid it at the deadline
	StateRolledBack   = "rolled back"   // undone on request, or after a failed step
	StateRevertFailed = "revert failed" // an undo failed: asym fix --rollback tries again
	StateAbandoned    = "abandoned"     // the asym applying it stopped before its first change: nothing to undo
	StateUndone       = "undone"        // kept, then undone on request (asym fix --undo)
)

// Step is one change with its undo and how far it got.
type Step struct {
	Do      fix.StepJSON `json:"do"`
	Undo    fix.StepJSON `json:"undo"`
	Command string       `json:"command"` // what a person would have typed
	Started bool         `json:"started"` // set before the change: the undo runs for it even if the process died mid-change
	Done    bool         `json:"done"`
}

// JournalVersion is the version of the journal's format. Version 1 stored
// changes as netlink library structures, version 2 undid without checking
// that the object was still asym's; a journal of another version is never
// acted on (its undo could be misread): the asym that wrote it must
// decide it.
const JournalVersion = 3

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
	// Applier is the asym that applies the fix: while it lives, no other
	// may touch the journal's target; once it died, a journal still
	// "applying" is its leftover.
	Applier  Process `json:"applier"`
	Watchdog string  `json:"watchdog,omitempty"` // how the revert is armed
	Armed    bool    `json:"armed"`              // the watchdog said it is running
	// WatchdogProcess is the watchdog, recorded by itself when it is armed:
	// a pending fix whose watchdog is gone will not revert by itself.
	WatchdogProcess *Process `json:"watchdog_process,omitempty"`
	// WatchdogError is why the watchdog could not arm; nothing was changed.
	WatchdogError string `json:"watchdog_error,omitempty"`
	// LeftAlone lists what the last revert did not put back because
	// someone had changed it since asym did.
	LeftAlone []string `json:"left_alone,omitempty"`
	// Undone says when a kept fix was undone, and by whom.
	Undone *Decision `json:"undone,omitempty"`
	Log    []string  `json:"log"`
	path   string
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

// Pending reports whether the journal still waits for a decision: being
// applied, applied and not yet kept or undone, or an undo that failed.
func (j *Journal) Pending() bool {
	return j.State == StatePending || j.State == StateApplying || j.State == StateRevertFailed
}

// started says whether any change of the fix may have been made.
func (j *Journal) started() bool {
	for _, s := range j.Steps {
		if s.Started {
			return true
		}
	}
	return false
}

// ErrNone says there is no journal for a target.
var ErrNone = errors.New("no fix has been applied to this target")

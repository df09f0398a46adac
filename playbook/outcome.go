package playbook

import "time"

// FixOutcome is what applying a fix did: how many changes, until when the
// revert waits for a decision and what will make it, and the findings
// before and after (a fix that did not change them did not heal).
type FixOutcome struct {
	Changes  int
	Deadline time.Time
	Watchdog string // how the revert is armed, for people
	// Fixed are the findings whose fix was applied.
	Fixed  []FindingID
	Before []Finding
	// After are the findings of the check after the fix; nil until it ran
	// (the view runs it itself, with the fix already pending on screen).
	After []Finding
	// Pending is the fix as its journal records it.
	Pending *PendingFix
}

// PendingFix is a fix asym applied to a target that still waits for a
// decision, as its journal records it: the view's banner and asym check
// show it.
type PendingFix struct {
	Summary string // what the fix changes
	Flow    string
	State   string // applying, pending or revert failed
	Applied time.Time
	// Deadline is when the watchdog reverts it unless it is kept.
	Deadline time.Time
	Watchdog string // how the revert is armed
	// Problem says why the fix will not revert by itself, or why its
	// record cannot be trusted, ending with the command to run ("the revert
	// did not run: …"). It is "" while the watchdog will revert it at
	// Deadline.
	Problem string
	// Confirm and Rollback are the commands that keep and undo it now.
	Confirm, Rollback string
	// Undo are the commands that undo its changes by hand, the last change
	// first, entering the namespace: what a person types to take back the
	// fix once it is kept.
	Undo []string
	// Unknown says why asym cannot tell whether a fix is pending: its
	// journals are root's to read, and asym runs without root. Nothing is
	// known to be wrong, so it is a note, not a Problem.
	Unknown string
}

// KeptFix is the last fix asym applied to a target when it was kept: what
// it changed, and how to undo it later, as the fix view, the notes and
// asym fix --status show it.
type KeptFix struct {
	Summary string
	Flow    string
	Applied time.Time
	// Undo is the command that undoes it, checking each change first.
	Undo string
	// UndoCommands undo it by hand, newest change first, entering the
	// namespace: what Undo runs, without its checks.
	UndoCommands []string
}

// Unhealed are the findings the fix was for that the check after it still
// found: a fix that leaves them did not heal, and should be reverted rather
// than kept.
func (o *FixOutcome) Unhealed() []Finding {
	var out []Finding
	for _, f := range o.After {
		for _, id := range o.Fixed {
			if f.ID == id {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// Healed says the fix removed the findings it was for and the check after
// it finds nothing critical.
func (o *FixOutcome) Healed() bool {
	if len(o.Unhealed()) > 0 {
		return false
	}
	for _, f := range o.After {
		if f.Severity == Critical {
			return false
		}
	}
	return true
}

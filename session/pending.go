package session

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"asym/fix/apply"
)

// PendingFix is a fix asym applied to the target that still waits for a
// decision, as the view's banner and asym check show it.
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
	// Unknown says why asym cannot tell whether a fix is pending: its
	// journals are root's to read, and asym runs without root. Nothing is
	// known to be wrong, so it is a note, not a Problem.
	Unknown string
}

// PendingFix is the fix pending on the session's target, nil when none is.
func (s *Session) PendingFix() *PendingFix { return PendingFixFor(s.cfg) }

// PendingFixFor is the fix pending on the target cfg names, nil when none
// is (no journal, a decided fix, or an apply that stopped before its
// first change). A journal asym cannot read is reported as a PendingFix
// whose Problem says why: it may hide a change.
func PendingFixFor(cfg Config) *PendingFix {
	j, err := FixStatus(cfg)
	switch {
	case errors.Is(err, apply.ErrNone):
		return nil
	case errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0:
		return &PendingFix{Unknown: "whether a fix asym applied here is pending is unknown: its journal (" + apply.Dir() + ") is root's to read"}
	case err != nil:
		return &PendingFix{Problem: "the journal of the last fix cannot be read (" + err.Error() + "): a change asym made may still be there"}
	case !j.Pending() || j.Stale():
		return nil
	}
	return &PendingFix{Summary: j.Summary, Flow: j.Flow, State: j.State, Applied: j.Created, Deadline: j.Deadline, Watchdog: j.Watchdog,
		Problem: j.Problem(time.Now()), Confirm: apply.Command(j.Target, "--confirm"), Rollback: apply.Command(j.Target, "--rollback")}
}

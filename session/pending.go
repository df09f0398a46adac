package session

import (
	"errors"
	"io/fs"
	"os"
	"time"

	"asym/fix/apply"
	"asym/playbook"
)

// PendingFix is a fix asym applied to the target that still waits for a
// decision (the view shows it as well, so it is the playbook's data).
type PendingFix = playbook.PendingFix

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
	return pendingFrom(j)
}

// pendingFrom is what a journal says about its fix.
func pendingFrom(j *apply.Journal) *PendingFix {
	return &PendingFix{Summary: j.Summary, Flow: j.Flow, State: j.State, Applied: j.Created, Deadline: j.Deadline, Watchdog: j.Watchdog,
		Problem: j.Problem(time.Now()), Confirm: apply.Command(j.Target, "--confirm"), Rollback: apply.Command(j.Target, "--rollback"),
		Undo: j.UndoCommands(j.Target.Render())}
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Confirm keeps a pending fix. It refuses when asym cannot tell whether
// the change is still there: the deadline passed and the watchdog is gone
// without a record of what it did.
func Confirm(ctx context.Context, id string) (*Journal, error) {
	j, saveErr, err := decide(ctx, id, func(j *Journal) error {
		switch {
		case j.Stale():
			j.State = StateAbandoned
			j.logf("nothing to keep: the asym applying it (%s) stopped before changing anything", j.Applier)
			return errors.New("nothing was applied: the asym applying the fix stopped before its first change")
		case j.State == StateRevertFailed:
			return fmt.Errorf("the revert failed half way: finish it with %s", Command(j.Target, "--rollback"))
		case j.WatchdogProcess != nil && !j.WatchdogProcess.Alive() && time.Now().After(j.Deadline):
			return fmt.Errorf("the deadline passed and the watchdog (%s) is gone without recording what it did: asym cannot tell whether the change is still there; run %s to be sure the host is as it was, then apply again",
				j.WatchdogProcess, Command(j.Target, "--rollback"))
		}
		j.State = StateConfirmed
		j.logf("confirmed: the change stays")
		return nil
	})
	if saveErr != nil && err == nil {
		err = fmt.Errorf("the confirmation could not be recorded (%v): the watchdog still reverts the fix at %s; make %s writable and confirm again",
			saveErr, j.Deadline.UTC().Format(time.RFC3339), Dir())
	}
	return j, err
}

// Rollback undoes a pending fix now, in the namespace the fix changed
// wherever that is now (see Find), also when its journal is stuck (its
// watchdog gone, or its revert not recorded): each undo that finds its
// work done is fine.
func Rollback(ctx context.Context, id string) (*Journal, error) {
	j, saveErr, err := decide(ctx, id, func(j *Journal) error {
		if j.Stale() {
			j.State = StateAbandoned
			j.logf("cleared: the asym applying it (%s) stopped before changing anything, so there was nothing to undo", j.Applier)
			return nil
		}
		t, how, err := Find(ctx, j)
		if errors.Is(err, errNamespaceGone) {
			j.State = StateRolledBack
			j.logf("rolled back on request: %v", err)
			return nil
		}
		if err != nil {
			return err
		}
		defer t.Close()
		_, _, errs := revert(t, j)
		j.State = StateRolledBack
		if how != "" {
			how = " in the namespace the fix changed, " + how
		}
		j.logf("rolled back on request%s", how)
		if len(errs) > 0 {
			j.State = StateRevertFailed
			return fmt.Errorf("some changes could not be undone: %v", errors.Join(errs...))
		}
		return nil
	})
	if errors.As(err, new(errReverted)) {
		err = nil // what a rollback wants is done: the journal says so
	}
	if saveErr != nil {
		where := recordElsewhere(j, saveErr)
		err = errors.Join(err, fmt.Errorf("the namespace is as the revert left it (%s), but the journal could not record it (%v): the outcome is in %s; run this again once %s can be written",
			j.State, saveErr, where, Dir()))
	}
	return j, err
}

// decide runs fn on the pending journal of id under its lock and saves
// it (see withJournal). saveErr is a journal that could not be saved; err
// is fn's, or why fn did not run.
func decide(ctx context.Context, id string, fn func(j *Journal) error) (j *Journal, saveErr, err error) {
	return withJournal(ctx, id, func(j *Journal) error {
		switch {
		case j.Pending():
			return fn(j)
		case j.State == StateReverted:
			return errReverted{j.Deadline}
		}
		return fmt.Errorf("the last fix here is already %s", j.State)
	})
}

// withJournal runs fn on the journal of id under its lock and saves it. A
// journal whose outcome was recorded elsewhere (its directory could not be
// written then) is brought up to date first; one another asym is applying
// right now is left to it. saveErr is a journal that could not be saved;
// err is fn's, or why fn did not run.
func withJournal(ctx context.Context, id string, fn func(j *Journal) error) (j *Journal, saveErr, err error) {
	path := PathFor(id)
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil, ErrNone
	}
	if err := checkDir(Dir(), false); err != nil {
		return nil, nil, err
	}
	st, err := openStore(path)
	if err != nil {
		return nil, nil, err
	}
	defer st.close()
	if err := st.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer st.unlock()
	if j, err = Load(path); err != nil {
		return nil, nil, err
	}
	// A kept fix has an outcome elsewhere only from an undo that could
	// not be recorded.
	if o, where := findOutcome(j); o != nil && (j.Pending() || j.State == StateConfirmed) {
		j.logf("recorded elsewhere (%s) while the journal could not be written: %s at %s", where, o.State, o.Time.UTC().Format(time.RFC3339))
		j.Log = append(j.Log, o.Log...)
		j.LeftAlone = o.LeftAlone
		if o.State != StateRevertFailed {
			j.State = o.State
		}
	}
	if j.State == StateApplying && j.Applier.Alive() {
		return j, nil, fmt.Errorf("asym (%s) is still applying this fix: wait until it has, then decide", j.Applier)
	}
	err = fn(j)
	if saveErr = j.save(); saveErr == nil {
		clearOutcomes(j)
	}
	return j, saveErr, err
}

// errReverted: the watchdog reverted the fix at its deadline.
type errReverted struct{ deadline time.Time }

func (e errReverted) Error() string {
	return fmt.Sprintf("too late: the watchdog reverted the fix at its deadline (%s); apply it again", e.deadline.UTC().Format(time.RFC3339))
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"asym/fix"
	"asym/probes"
)

// Decision is when a fix was decided, and by whom.
type Decision struct {
	At time.Time `json:"at"`
	By string    `json:"by"`
}

// NothingToUndo says why an undo found nothing of the fix to undo: it was
// undone already, rolled back or reverted before it was kept, never made,
// or its namespace went away with its changes. What an undo wants is so:
// the caller says why, and does not fail.
type NothingToUndo struct{ Why string }

func (e *NothingToUndo) Error() string { return e.Why }

// Undo undoes the fix kept on the target of journal id, later: exactly
// what asym made, newest change first, each only while it is as asym left
// it (see revert). What someone changed since is left alone and listed in
// LeftAlone; when that is everything still there, nothing is undone and
// the fix stays kept. It works under the journal's lock and the
// namespace's (by its cookie, as Apply), in the namespace the fix changed
// wherever it is now (see Find), and is refused while a fix applied to
// that namespace under another name is pending. A pending fix is not
// undone here: --rollback is its undo.
func Undo(ctx context.Context, id string) (*Journal, error) {
	acted := false
	j, saveErr, err := withJournal(ctx, id, func(j *Journal) error {
		if j.State != StateConfirmed {
			return notKept(j)
		}
		var err error
		acted, err = undoKept(ctx, j)
		return err
	})
	if saveErr != nil && acted {
		where := recordElsewhere(j, saveErr)
		err = errors.Join(err, fmt.Errorf("the namespace is as the undo left it (%s), but the journal could not record it (%v): the outcome is in %s; run this again once %s can be written",
			j.State, saveErr, where, Dir()))
	}
	return j, err
}

// undoKept undoes the kept fix j, under the namespace's lock. acted says
// whether it got as far as deciding the fix's fate (its record must then
// be kept somewhere).
func undoKept(ctx context.Context, j *Journal) (acted bool, err error) {
	ns, err := lockNamespace(ctx, j.Target)
	if err != nil {
		return false, err
	}
	defer ns.close()
	if err := noOtherName(j.path, j.Target); err != nil {
		return false, err
	}
	by := decider()
	t, how, err := Find(ctx, j)
	if errors.Is(err, errNamespaceGone) {
		j.State, j.Undone = StateUndone, &Decision{At: time.Now().UTC(), By: by}
		j.logf("undone on request by %s: %v", by, err)
		return true, &NothingToUndo{err.Error()}
	}
	if err != nil {
		return false, err
	}
	defer t.Close()
	return true, undoIn(t, j, how, by)
}

// undoIn reverts j's changes in t and records what became of them.
func undoIn(t *probes.Target, j *Journal, how, by string) error {
	if how != "" {
		how = " in the namespace the fix changed, " + how
	}
	undone, left, errs := revert(t, j)
	switch {
	case len(errs) > 0:
		// Like a failed revert: --status and check report it, and
		// --rollback finishes it (an undo that finds its work done is fine).
		j.State = StateRevertFailed
		j.logf("the undo requested by %s failed half way%s: %v", by, how, errors.Join(errs...))
		return fmt.Errorf("some changes could not be undone (%v): the rest was; finish it with %s",
			errors.Join(errs...), Command(j.Target, "--rollback"))
	case undone == 0 && len(left) > 0:
		j.logf("undo refused (asked by %s%s): everything of the fix still there was changed since by someone else; it stays kept", by, how)
		return nil
	}
	j.State, j.Undone = StateUndone, &Decision{At: time.Now().UTC(), By: by}
	j.logf("undone on request by %s%s", by, how)
	return nil
}

// notKept says what became of a fix that is not kept, which an undo does
// not touch.
func notKept(j *Journal) error {
	applied := fmt.Sprintf("the fix applied here at %s (%s)", j.Created.UTC().Format(time.RFC3339), j.Summary)
	switch {
	case j.State == StateUndone && j.Undone != nil:
		return &NothingToUndo{fmt.Sprintf("%s was already undone at %s by %s: there is nothing more to undo", applied, j.Undone.At.Format(time.RFC3339), j.Undone.By)}
	case j.State == StateUndone:
		return &NothingToUndo{applied + " was already undone: there is nothing more to undo"}
	case j.State == StateRolledBack:
		return &NothingToUndo{applied + " was rolled back before it was kept: its changes are gone already, there is nothing to undo"}
	case j.State == StateReverted:
		return &NothingToUndo{fmt.Sprintf("%s was reverted by its watchdog at its deadline (%s) before it was kept: there is nothing to undo", applied, j.Deadline.UTC().Format(time.RFC3339))}
	case j.State == StateAbandoned:
		return &NothingToUndo{applied + " was never made: the asym applying it stopped before its first change; there is nothing to undo"}
	case j.Stale():
		j.State = StateAbandoned
		j.logf("cleared: the asym applying it (%s) stopped before changing anything, so there was nothing to undo", j.Applier)
		return &NothingToUndo{applied + " was never made: the asym applying it stopped before its first change; there is nothing to undo"}
	case j.State == StateRevertFailed:
		return fmt.Errorf("%s is not settled: its revert failed half way; finish it with %s", applied, Command(j.Target, "--rollback"))
	}
	return fmt.Errorf("%s is not kept yet (%s): --undo is for a kept fix; undo this one with %s, or let it revert at %s",
		applied, j.State, Command(j.Target, "--rollback"), j.Deadline.UTC().Format(time.RFC3339))
}

// UndoCommands renders the commands that undo the fix by hand, newest
// change first, each with render (TargetRef.Render enters the fix's
// namespace). They are what --undo does, except that --undo first checks
// that each object is still as asym left it and leaves it alone otherwise,
// which a pasted command cannot: they name asym's objects exactly (their
// protocol, metric and every selector), so at worst they fail. A step
// that changed no state (an ARP announcement) has nothing to undo.
func (j *Journal) UndoCommands(render fix.Render) []string {
	var out []string
	for i := len(j.Steps) - 1; i >= 0; i-- {
		s := j.Steps[i]
		if s.Started && s.Undo.Step != nil && !fix.Stateless(s.Undo.Step) {
			out = append(out, render(s.Undo.Step.Words()))
		}
	}
	return out
}

// Render renders a command to run in the namespace r names, quoted, with
// the words that enter it (ip netns exec NAME, nsenter -t PID -n).
func (r TargetRef) Render() fix.Render { return fix.Prefixed(probes.PrefixFor(r.Kind, r.Value)) }

// decider names who asks for a decision, for the journal's log: the user
// asym runs as, the login behind it when that is someone else (the
// kernel's audit login uid, which sudo and su keep), and the process.
func decider() string {
	uid := os.Getuid()
	who := userName(uid)
	if b, err := os.ReadFile("/proc/self/loginuid"); err == nil {
		login, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 32)
		// 4294967295 is "unset" (AUDIT_UID_UNSET): no login session, as
		// for a service.
		if err == nil && login != 4294967295 && int(login) != uid {
			who += ", logged in as " + userName(int(login))
		}
	}
	return who + ", pid " + strconv.Itoa(os.Getpid())
}

func userName(uid int) string {
	id := strconv.Itoa(uid)
	if u, err := user.LookupId(id); err == nil {
		return u.Username + " (uid " + id + ")"
	}
	return "uid " + id
}

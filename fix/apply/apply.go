package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"asym/evidence"
	"asym/fix"
	"asym/probes"
)

// Plan is what to apply, where, and for how long before it reverts.
type Plan struct {
	Target      *probes.Target
	Flow        string
	Summary     string
	Steps       fix.Steps
	RevertAfter time.Duration
	// Arm starts the watchdog for a saved journal; ArmWatchdog by default.
	Arm func(j *Journal) error
}

// Ref describes a target so another process can open it again.
func Ref(t *probes.Target) TargetRef {
	return TargetRef{Kind: t.Kind, Value: t.Value, NSPath: t.NSPath(), Inode: t.Inode()}
}

// Apply makes the plan's changes. In order: refuse if a fix is already
// pending here; work out every undo from the current state (and refuse if
// the state is not what the fix expects); save the journal; arm the
// watchdog and wait until it reports running; then change one step at a
// time, marking each step started before touching the kernel. A failing
// step rolls back everything done so far.
func Apply(ctx context.Context, p Plan) (*Journal, error) {
	if len(p.Steps) == 0 {
		return nil, errors.New("there is nothing to apply: no finding has a host-local fix")
	}
	for _, s := range p.Steps {
		if m := s.Missing(); m != "" {
			return nil, fmt.Errorf("the fix is incomplete (%s): asym will not apply a guess", m)
		}
	}
	if p.RevertAfter <= 0 {
		p.RevertAfter = 60 * time.Second
	}
	if p.Arm == nil {
		p.Arm = ArmWatchdog("")
	}
	ref := Ref(p.Target)
	id := IDFor(ref.Kind, ref.Value)
	path := PathFor(id)
	if old, err := Load(path); err == nil && old.Pending() {
		return nil, fmt.Errorf("a fix applied at %s is still pending on %s: keep it (asym fix --confirm) or undo it (asym fix --rollback) first",
			old.Created.UTC().Format(time.RFC3339), p.Target)
	}
	steps, err := plan(ctx, p.Target, p.Steps)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	j := &Journal{Version: JournalVersion, ID: id, Target: ref, Flow: p.Flow, Summary: p.Summary, Created: now, Deadline: now.Add(p.RevertAfter),
		State: StateApplying, Steps: steps, path: path}
	j.logf("planned %d changes on %s, reverting at %s unless confirmed", len(steps), p.Target, j.Deadline.UTC().Format(time.RFC3339))
	if err := locked(path, j.save); err != nil {
		return nil, err
	}
	if err := p.Arm(j); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("asym did not change anything: it could not arm the automatic revert (%v)", err)
	}
	if err := waitArmed(ctx, path, 5*time.Second); err != nil {
		os.Remove(path) // the watchdog, if it starts late, finds no journal and exits
		return nil, fmt.Errorf("asym did not change anything: %v", err)
	}
	for i := range steps {
		if _, err := update(path, func(j *Journal) error { j.Steps[i].Started = true; return nil }); err != nil {
			return failed(ctx, p.Target, path, fmt.Errorf("record step %d: %w", i+1, err))
		}
		if err := steps[i].Do.Apply(ctx, kernel{p.Target}); err != nil {
			return failed(ctx, p.Target, path, fmt.Errorf("`%s` failed: %v", steps[i].Command, err))
		}
		if _, err := update(path, func(j *Journal) error { j.Steps[i].Done = true; return nil }); err != nil {
			return failed(ctx, p.Target, path, fmt.Errorf("record step %d: %w", i+1, err))
		}
	}
	return update(path, func(j *Journal) error {
		if j.State != StateApplying {
			return fmt.Errorf("the watchdog %s the change while it was being applied (the deadline passed)", j.State)
		}
		j.State = StatePending
		j.logf("applied; waiting for confirmation until %s", j.Deadline.UTC().Format(time.RFC3339))
		return nil
	})
}

// failed rolls back after a step failed and returns the step's error.
func failed(ctx context.Context, t *probes.Target, path string, cause error) (*Journal, error) {
	j, err := update(path, func(j *Journal) error {
		if !j.Pending() {
			return nil
		}
		errs := revert(ctx, t, j)
		j.State = StateRolledBack
		j.logf("rolled back after a failure: %v", cause)
		if len(errs) > 0 {
			j.logf("rollback problems: %v", errors.Join(errs...))
		}
		return nil
	})
	if err != nil {
		return j, fmt.Errorf("%v; rolling back also failed: %v (see %s)", cause, err, path)
	}
	return j, fmt.Errorf("%v; everything asym had changed was rolled back", cause)
}

func waitArmed(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if j, err := Load(path); err == nil && j.Armed {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the revert watchdog did not report running within %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// plan prepares each step against the namespace as it is now: the step to
// make and its exact undo, refusing when the host no longer matches the
// fix that was shown.
func plan(ctx context.Context, t *probes.Target, steps fix.Steps) ([]Step, error) {
	k := kernel{t}
	var prep fix.Preparation
	var out []Step
	for _, s := range steps {
		do, undo, err := s.Prepare(ctx, k, &prep)
		if err != nil {
			return nil, err
		}
		out = append(out, Step{Do: fix.StepJSON{Step: do}, Undo: fix.StepJSON{Step: undo}, Command: evidence.Command(s.Words()...)})
	}
	return out, nil
}

// revert undoes every started step, newest first. An undo that finds its
// work already done (the rule or route is gone, or back) is not an error:
// the process may have died between a change and its journal entry.
func revert(ctx context.Context, t *probes.Target, j *Journal) []error {
	var errs []error
	for i := len(j.Steps) - 1; i >= 0; i-- {
		s := j.Steps[i]
		if !s.Started {
			continue
		}
		err := s.Undo.Apply(ctx, kernel{t})
		switch {
		case err == nil:
			j.logf("undone: %s", s.Command)
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH), errors.Is(err, unix.EEXIST):
			j.logf("already undone: %s", s.Command)
		default:
			errs = append(errs, fmt.Errorf("undo `%s`: %w", s.Command, err))
			j.logf("could not undo %s: %v", s.Command, err)
		}
	}
	return errs
}

// Open finds the journal's namespace again and checks it is the same one.
func Open(ref TargetRef) (*probes.Target, error) {
	var t *probes.Target
	var err error
	switch ref.Kind {
	case "netns", "path":
		t, err = probes.OpenTarget(ref.NSPath, 0)
	case "pid":
		pid, _ := strconv.Atoi(ref.Value)
		t, err = probes.OpenTarget("", pid)
	default:
		t, err = probes.OpenTarget("", 0)
	}
	if err != nil {
		return nil, fmt.Errorf("the namespace of the fix is gone (%v): nothing left to revert there", err)
	}
	if ref.Inode != 0 && t.Inode() != ref.Inode {
		t.Close()
		return nil, fmt.Errorf("%s is now a different namespace than the one the fix changed: asym will not touch it", ref.NSPath)
	}
	return t, nil
}

// Confirm keeps a pending fix.
func Confirm(id string) (*Journal, error) {
	return decide(id, func(j *Journal) error {
		j.State = StateConfirmed
		j.logf("confirmed: the change stays")
		return nil
	})
}

// Rollback undoes a pending fix now.
func Rollback(ctx context.Context, id string) (*Journal, error) {
	return decide(id, func(j *Journal) error {
		t, err := Open(j.Target)
		if err != nil {
			return err
		}
		defer t.Close()
		errs := revert(ctx, t, j)
		j.State = StateRolledBack
		j.logf("rolled back on request")
		if len(errs) > 0 {
			return fmt.Errorf("some changes could not be undone: %v", errors.Join(errs...))
		}
		return nil
	})
}

func decide(id string, fn func(j *Journal) error) (*Journal, error) {
	path := PathFor(id)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNone
	}
	var fnErr error
	j, err := update(path, func(j *Journal) error {
		switch j.State {
		case StatePending, StateApplying:
			fnErr = fn(j)
			return nil // save the journal even when the undo had problems
		case StateReverted:
			return fmt.Errorf("too late: the watchdog reverted the fix at its deadline (%s); apply it again", j.Deadline.UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("the last fix here is already %s", j.State)
	})
	if err != nil {
		return j, err
	}
	return j, fnErr
}

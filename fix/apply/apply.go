package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	// Arm starts the watchdog for a saved journal, handing it the target's
	// namespace, and says how it runs; ArmWatchdog by default.
	Arm func(j *Journal, t *probes.Target) (how string, err error)
}

const (
	// stepTimeout bounds one change; a change is never cancelled half
	// way, so that a signal cannot leave one running behind a rollback.
	stepTimeout = 10 * time.Second
	// revertTimeout bounds a whole revert.
	revertTimeout = 30 * time.Second
	// armTimeout bounds how long asym waits for the watchdog to say it runs.
	armTimeout = 5 * time.Second
)

// Apply makes the plan's changes. In order, under the target's journal
// lock: refuse while another fix here waits for a decision or another asym
// applies one; work out every undo from the current state (refusing when
// the state is not what the fix expects); save the journal. Then arm the
// watchdog, handing it the namespace, and wait until it reports running.
// Then, under the lock again, change one step at a time, marking each step
// started before touching the kernel. A failing step, or a signal between
// steps, rolls back everything done so far.
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
	ref, err := Ref(ctx, p.Target)
	if err != nil {
		return nil, fmt.Errorf("asym did not change anything: %w", err)
	}
	path := PathFor(IDFor(ref.Kind, ref.Value))
	if err := checkDir(filepath.Dir(path), true); err != nil {
		return nil, err
	}
	st, err := openStore(path)
	if err != nil {
		return nil, err
	}
	defer st.close()
	j, err := begin(ctx, st, p, ref)
	if err != nil {
		return nil, err
	}
	how, err := p.Arm(j, p.Target)
	if err == nil {
		err = waitArmed(ctx, path, armTimeout)
	}
	if err != nil {
		return nil, abandon(st, err)
	}
	return makeChanges(ctx, st, p.Target, how)
}

// begin decides, under the lock, that this asym may apply a fix here,
// works out every undo and saves the journal: of two asym applying to one
// target at once, the second finds the first's journal here and is refused
// before it changes anything.
func begin(ctx context.Context, st *store, p Plan, ref TargetRef) (*Journal, error) {
	if err := st.lock(ctx); err != nil {
		return nil, err
	}
	defer st.unlock()
	note, err := settlePrevious(st.path, p.Target)
	if err != nil {
		return nil, err
	}
	ns, err := lockNamespace(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer ns.release()
	if err := noOtherName(st.path, ref); err != nil {
		return nil, err
	}
	steps, err := plan(ctx, p.Target, p.Steps)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	j := &Journal{Version: JournalVersion, ID: IDFor(ref.Kind, ref.Value), Target: ref, Flow: p.Flow, Summary: p.Summary, Created: now,
		Deadline: now.Add(p.RevertAfter), State: StateApplying, Steps: steps, Applier: Self(), path: st.path}
	if note != "" {
		j.logf("%s", note)
	}
	j.logf("planned %d changes on %s by %s, reverting at %s unless confirmed", len(steps), ref, j.Applier, j.Deadline.UTC().Format(time.RFC3339))
	if err := j.save(); err != nil {
		return nil, fmt.Errorf("asym did not change anything: %w", err)
	}
	return j, nil
}

// settlePrevious refuses while the last fix here waits for a decision or
// is being applied by another asym. A journal left by an asym that
// stopped before its first change is cleared, with a note that says so.
func settlePrevious(path string, t *probes.Target) (note string, err error) {
	old, err := Load(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", nil
	case err != nil:
		return "", err
	}
	return settled(old, t.String())
}

// Settled says why a fix cannot be applied to the target of journal id
// now, nil when it can: asym fix --apply asks before it probes, so that a
// fix still in place (which heals the findings) is not mistaken for
// "nothing to fix". Apply decides again under the lock.
func Settled(id, where string) error {
	old, err := Load(PathFor(id))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	}
	_, err = settled(old, where)
	return err
}

func settled(old *Journal, where string) (note string, err error) {
	switch {
	case old.State == StateConfirmed:
		return ReplacedNote(old), nil
	case !old.Pending():
		return "", nil
	case old.Stale():
		return fmt.Sprintf("the fix applied at %s was cleared: the asym applying it (%s) stopped before changing anything, so there was nothing to undo",
			old.Created.UTC().Format(time.RFC3339), old.Applier), nil
	case old.State == StateApplying && old.Applier.Alive():
		return "", fmt.Errorf("another asym (%s) is applying a fix to %s right now: this one changed nothing; see it with %s",
			old.Applier, where, Command(old.Target, "--status"))
	}
	if p := old.Problem(time.Now()); p != "" {
		return "", fmt.Errorf("the fix applied to %s at %s is not settled: %s. This asym changed nothing", where, old.Created.UTC().Format(time.RFC3339), p)
	}
	return "", fmt.Errorf("a fix applied at %s is still pending on %s: keep it (%s) or undo it (%s) first; this asym changed nothing",
		old.Created.UTC().Format(time.RFC3339), where, Command(old.Target, "--confirm"), Command(old.Target, "--rollback"))
}

// ReplacedNote says that a new fix replaces the journal of the kept fix
// old, which stays in place: asym fix --undo will undo the new fix only,
// so the sentence carries old's undo commands.
func ReplacedNote(old *Journal) string {
	return fmt.Sprintf("the fix kept here since %s (%s) stays in place; its journal is replaced by this one, so asym fix --undo will not undo it: undo it by hand, newest first: %s",
		old.Created.UTC().Format(time.RFC3339), old.Summary, strings.Join(old.UndoCommands(old.Target.Render()), "; "))
}

// lockNamespace takes the lock of the namespace itself, by its cookie: one
// namespace may be named several ways (--netns, --pid of a process in it,
// a path), each with a journal and a lock of its own.
func lockNamespace(ctx context.Context, ref TargetRef) (*store, error) {
	ns, err := openStore(filepath.Join(Dir(), fmt.Sprintf("ns-%d", ref.Cookie)))
	if err != nil {
		return nil, err
	}
	if err := ns.lock(ctx); err != nil {
		ns.close()
		return nil, err
	}
	return ns, nil
}

// noOtherName refuses while a fix applied to the same namespace under
// another name is pending: one fix per namespace.
func noOtherName(own string, ref TargetRef) error {
	paths, _ := filepath.Glob(filepath.Join(Dir(), "*.json"))
	for _, p := range paths {
		if p == own {
			continue
		}
		j, err := Load(p)
		if err != nil || !j.Pending() || j.Stale() || j.Target.Cookie != ref.Cookie || j.Target.Inode != ref.Inode || j.Target.Dev != ref.Dev {
			continue
		}
		return fmt.Errorf("a fix applied at %s to this same namespace, as %s, is still pending: keep it (%s) or undo it (%s) first; this asym changed nothing",
			j.Created.UTC().Format(time.RFC3339), j.Target, Command(j.Target, "--confirm"), Command(j.Target, "--rollback"))
	}
	return nil
}

// abandon closes a journal whose watchdog could not be armed: nothing was
// changed. A watchdog that starts late finds it closed and leaves.
func abandon(st *store, cause error) error {
	st.update(context.Background(), func(j *Journal) error {
		if j.State == StateApplying && !j.started() {
			j.State = StateAbandoned
			j.logf("abandoned before any change: %v", cause)
		}
		return nil
	})
	return fmt.Errorf("asym did not change anything: it could not arm the automatic revert (%v)", cause)
}

func waitArmed(ctx context.Context, path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if j, err := Load(path); err == nil && j.WatchdogError != "" {
			return fmt.Errorf("the revert watchdog refused: %s", j.WatchdogError)
		} else if err == nil && j.Armed {
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

// makeChanges changes the kernel one step at a time, holding the lock
// throughout, so that no rollback or watchdog acts between a step's record
// and its change. A signal (ctx) is heeded between steps only.
func makeChanges(ctx context.Context, st *store, t *probes.Target, how string) (*Journal, error) {
	if err := st.lock(context.WithoutCancel(ctx)); err != nil {
		return nil, abandon(st, err)
	}
	defer st.unlock()
	j, err := Load(st.path)
	if err != nil {
		return nil, fmt.Errorf("asym did not change anything: %w", err)
	}
	if j.State != StateApplying || j.Applier != Self() {
		return j, fmt.Errorf("asym did not change anything: the fix became %s while its revert was being armed", j.State)
	}
	j.Watchdog = how
	j.logf("revert armed: %s", how)
	for i := range j.Steps {
		s := &j.Steps[i]
		if ctx.Err() != nil {
			return rollBack(t, j, fmt.Errorf("interrupted before `%s`", s.Command))
		}
		s.Started = true
		if err := j.save(); err != nil {
			return rollBack(t, j, fmt.Errorf("record step %d: %w", i+1, err))
		}
		sctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		err := s.Do.Apply(sctx, kernel{t})
		cancel()
		switch {
		case fix.IsGone(err):
			j.logf("already so: %s (%v)", s.Command, err)
		case err != nil:
			return rollBack(t, j, fmt.Errorf("`%s` failed: %v", s.Command, err))
		}
		s.Done = true
		if err := j.save(); err != nil {
			return rollBack(t, j, fmt.Errorf("record step %d: %w", i+1, err))
		}
	}
	j.State = StatePending
	j.logf("applied; waiting for confirmation until %s", j.Deadline.UTC().Format(time.RFC3339))
	if err := j.save(); err != nil {
		return rollBack(t, j, fmt.Errorf("record the fix as applied: %w", err))
	}
	return j, nil
}

// rollBack undoes a fix that failed half way, under the lock, and returns
// the failure's error, saying what became of the changes.
func rollBack(t *probes.Target, j *Journal, cause error) (*Journal, error) {
	_, left, errs := revert(t, j)
	j.State = StateRolledBack
	if len(errs) > 0 {
		j.State = StateRevertFailed
	}
	j.logf("rolled back after a failure: %v", cause)
	saveErr := j.save()
	var b strings.Builder
	fmt.Fprintf(&b, "%v; ", cause)
	if len(errs) > 0 {
		fmt.Fprintf(&b, "rolling back also failed: %v", errors.Join(errs...))
	} else {
		b.WriteString("everything asym had changed was rolled back")
	}
	if len(left) > 0 {
		fmt.Fprintf(&b, ", except what someone else changed meanwhile (left alone): %s", strings.Join(left, "; "))
	}
	if saveErr != nil {
		fmt.Fprintf(&b, "; the journal could not record it (%v): the outcome is in %s", saveErr, recordElsewhere(j, saveErr))
	} else if len(errs) > 0 {
		fmt.Fprintf(&b, " (see %s)", j.path)
	}
	return j, errors.New(b.String())
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

// revert undoes every started step, newest first, each only if what it
// would undo is still as asym left it. An undo that finds its work already
// done (the rule or route is gone, or back) is not an error: the process
// may have died between a change and its journal entry. One that finds
// someone else's change in its place leaves it alone, and says so.
// undone counts the changes it put back itself.
func revert(t *probes.Target, j *Journal) (undone int, leftAlone []string, errs []error) {
	ctx, cancel := context.WithTimeout(context.Background(), revertTimeout)
	defer cancel()
	for i := len(j.Steps) - 1; i >= 0; i-- {
		s := j.Steps[i]
		if !s.Started {
			continue
		}
		err := s.Undo.Apply(ctx, kernel{t})
		switch {
		case err == nil:
			if !fix.Stateless(s.Undo.Step) {
				undone++
			}
			j.logf("undone: %s", s.Command)
		case fix.IsGone(err), errors.Is(err, unix.ENOENT), errors.Is(err, unix.ESRCH), errors.Is(err, unix.EEXIST):
			j.logf("already undone: %s (%v)", s.Command, err)
		case fix.IsDrift(err):
			leftAlone = append(leftAlone, err.Error())
			j.logf("left alone: %s: %v", s.Command, err)
		default:
			errs = append(errs, fmt.Errorf("undo `%s`: %w", s.Command, err))
			j.logf("could not undo %s: %v", s.Command, err)
		}
	}
	j.LeftAlone = leftAlone
	return undone, leftAlone, errs
}

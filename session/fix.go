package session

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"asym/fix"
	"asym/fix/apply"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
)

// JournalID names the journal of this target's fix: one pending fix per
// namespace.
func (s *Session) JournalID() string { return JournalIDFor(s.cfg) }

// JournalIDFor names the journal of the fix on the target cfg names,
// without opening it: a fix must be shown and decided also when its
// namespace cannot be opened by that name any more (the process of --pid
// exited).
func JournalIDFor(cfg Config) string {
	return apply.IDFor(probes.TargetKind(cfg.Netns, cfg.Pid))
}

// CanApply says whether the view may offer to apply fixes.
func (s *Session) CanApply() bool { return true }

// Plan gathers the host-local fixes of the findings (only the one of
// finding only, when set).
func (s *Session) Plan(findings []playbook.Finding, only string) (playbook.Plan, error) {
	return playbook.PlanFixes(findings, playbook.FindingID(only))
}

// Apply applies a plan with the revert armed, then checks the flow again so
// that the outcome says whether the fix changed the findings. before are
// the findings the plan was made from.
func (s *Session) Apply(ctx context.Context, f flow.Flow, p playbook.Plan, before []playbook.Finding) (*playbook.FixOutcome, error) {
	o, err := s.applyPlan(ctx, f, p, before)
	if err != nil {
		return nil, err
	}
	o.After = s.Check(ctx, f, Options{}).Report.Findings
	return o, nil
}

// applyPlan applies a plan with the revert armed and returns as soon as the
// fix is pending: its journal says so, and so must the front end, before
// anything else runs.
func (s *Session) applyPlan(ctx context.Context, f flow.Flow, p playbook.Plan, before []playbook.Finding) (*playbook.FixOutcome, error) {
	if len(p.Steps) == 0 {
		return nil, errors.New("there is nothing asym can apply on this host for this flow")
	}
	j, err := apply.Apply(ctx, apply.Plan{Target: s.t, Flow: f.String(), Summary: p.Summary(), Steps: p.Steps, RevertAfter: s.cfg.RevertAfter})
	if err != nil {
		return nil, err
	}
	o := &playbook.FixOutcome{Changes: len(j.Steps), Deadline: j.Deadline, Watchdog: j.Watchdog, Before: before, Pending: pendingFrom(j)}
	for _, id := range p.Findings {
		o.Fixed = append(o.Fixed, playbook.FindingID(id))
	}
	return o, nil
}

// ApplyFix is the view's one-key fix: it probes the flow again, refuses
// when the fix of finding id is no longer what the person was shown (the
// host changed since), and applies it. It returns as soon as the fix is
// pending, without checking again: the view re-runs its steps itself, with
// the pending fix (and its keep and revert keys) already on screen, so no
// key pressed meanwhile is taken for something else. gateways are the ones
// the shown fix goes by: found in a live window this check does not have,
// or named by the person, they are given to it.
func (s *Session) ApplyFix(ctx context.Context, f flow.Flow, id string, shown []string, gateways map[string]netip.Addr) (*playbook.FixOutcome, error) {
	before := s.Check(ctx, f, Options{Gateways: gateways})
	var fx *fix.Fix
	for _, fd := range before.Report.Findings {
		if string(fd.ID) == id {
			fx = fd.Fix
		}
	}
	if fx == nil {
		return nil, fmt.Errorf("%s is no longer found: the host changed since it was probed; re-run the steps (a)", id)
	}
	if !slices.Equal(fx.CommandsIn(nil), shown) {
		return nil, errors.New("the fix is different now (the host changed since it was probed): re-run the steps and read it again")
	}
	p := playbook.Plan{Steps: fx.Steps, Summaries: []string{fx.Summary}, Findings: []string{id}}
	return s.applyPlan(ctx, f, p, before.Report.Findings)
}

// DecideFix keeps or reverts the fix pending on the target.
func (s *Session) DecideFix(ctx context.Context, keep bool) error {
	if keep {
		_, err := s.Confirm()
		return err
	}
	_, err := s.Rollback(ctx)
	return err
}

// Confirm keeps the pending fix.
func (s *Session) Confirm() (*apply.Journal, error) { return ConfirmFix(context.Background(), s.cfg) }

// Rollback undoes the pending fix now.
func (s *Session) Rollback(ctx context.Context) (*apply.Journal, error) {
	return RollbackFix(ctx, s.cfg)
}

// Undo undoes the fix kept on the target, later: exactly what asym made,
// each change only while it is as asym left it (see apply.Undo). An error
// that is an *apply.NothingToUndo says why there was nothing to undo.
func (s *Session) Undo(ctx context.Context) (*apply.Journal, error) { return UndoFix(ctx, s.cfg) }

// Status reads the journal of the pending (or last) fix.
func (s *Session) Status() (*apply.Journal, error) { return FixStatus(s.cfg) }

// ConfirmFix keeps the fix pending on the target cfg names.
func ConfirmFix(ctx context.Context, cfg Config) (*apply.Journal, error) {
	return apply.Confirm(ctx, JournalIDFor(cfg))
}

// RollbackFix undoes the fix pending on the target cfg names, in the
// namespace that fix changed, wherever it is now.
func RollbackFix(ctx context.Context, cfg Config) (*apply.Journal, error) {
	return apply.Rollback(ctx, JournalIDFor(cfg))
}

// UndoFix undoes the fix kept on the target cfg names, in the namespace
// that fix changed, wherever it is now.
func UndoFix(ctx context.Context, cfg Config) (*apply.Journal, error) {
	return apply.Undo(ctx, JournalIDFor(cfg))
}

// FixStatus reads the journal of the pending (or last) fix on the target
// cfg names.
func FixStatus(cfg Config) (*apply.Journal, error) {
	j, err := apply.Load(apply.PathFor(JournalIDFor(cfg)))
	if errors.Is(err, os.ErrNotExist) {
		return nil, apply.ErrNone
	}
	return j, err
}

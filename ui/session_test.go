package ui

import (
	"context"
	"net/netip"
	"time"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
	"asym/playbook"
)

// fakeSession is the view's session in tests: recorded evidence instead of
// a kernel, and each behaviour a test needs as a field it sets. A nil
// watch means no live view, a nil peer one end only, a nil apply no
// applying from the view.
type fakeSession struct {
	info      evidence.TargetInfo
	newProber func(flow.Flow) evidence.Prober
	watch     func(context.Context, flow.Flow) <-chan evidence.WatchUpdate
	capture   func(context.Context, flow.Flow) <-chan evidence.CaptureUpdate
	drops     func(context.Context, flow.Flow) <-chan evidence.DropUpdate
	peerCmd   string
	peer      func(context.Context, flow.Flow, time.Duration) evidence.PeerResult
	apply     func(context.Context, flow.Flow, string, []string) (*playbook.FixOutcome, error)
	decide    func(context.Context, bool) error
	pending   func() *playbook.PendingFix // the journal; nil: no fix pending
	kept      func() *playbook.KeptFix    // the journal's kept fix; nil: none
	undo      func(context.Context) error
	gateways  map[string]netip.Addr // what the last ApplyFix was given
	trace     func(context.Context, flow.Flow) (evidence.Trace, []playbook.Finding, error)
}

func (s *fakeSession) Info() evidence.TargetInfo                      { return s.info }
func (s *fakeSession) Prober(f flow.Flow) evidence.Prober             { return s.newProber(f) }
func (s *fakeSession) Live() bool                                     { return s.watch != nil }
func (s *fakeSession) PeerCommand() string                            { return s.peerCmd }
func (s *fakeSession) CanApply() bool                                 { return s.apply != nil }
func (s *fakeSession) Persist(*fix.Fix) (string, []string)            { return "", nil }
func (s *fakeSession) DecideFix(ctx context.Context, keep bool) error { return s.decide(ctx, keep) }

func (s *fakeSession) Watch(ctx context.Context, f flow.Flow) <-chan evidence.WatchUpdate {
	return s.watch(ctx, f)
}

func (s *fakeSession) Capture(ctx context.Context, f flow.Flow, _ []flow.Flow) <-chan evidence.CaptureUpdate {
	if s.capture == nil {
		return nil
	}
	return s.capture(ctx, f)
}

func (s *fakeSession) Drops(ctx context.Context, f flow.Flow, _ []flow.Flow) <-chan evidence.DropUpdate {
	if s.drops == nil {
		return nil
	}
	return s.drops(ctx, f)
}

func (s *fakeSession) Peer(ctx context.Context, f flow.Flow, w time.Duration) evidence.PeerResult {
	return s.peer(ctx, f, w)
}

func (s *fakeSession) ApplyFix(ctx context.Context, f flow.Flow, id string, shown []string, gateways map[string]netip.Addr) (*playbook.FixOutcome, error) {
	s.gateways = gateways
	return s.apply(ctx, f, id, shown)
}

func (s *fakeSession) PendingFix() *playbook.PendingFix {
	if s.pending == nil {
		return nil
	}
	return s.pending()
}

func (s *fakeSession) KeptFix() *playbook.KeptFix {
	if s.kept == nil {
		return nil
	}
	return s.kept()
}

func (s *fakeSession) UndoKept(ctx context.Context) error { return s.undo(ctx) }

// sess is the model's fake session, for a test to change its behaviour.
func sess(m *Model) *fakeSession { return m.opt.Session.(*fakeSession) }

func (s *fakeSession) TraceFlow(ctx context.Context, f flow.Flow) (evidence.Trace, []playbook.Finding, error) {
	return s.trace(ctx, f)
}

package session

import (
	"context"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/capture"
	"asym/probes/drops"
	"asym/probes/peer"
	"asym/probes/watch"
)

// Live says whether the flow can be watched live here (the view's live view).
func (s *Session) Live() bool { return true }

// Watch streams the flow's conntrack events and counters until ctx ends.
func (s *Session) Watch(ctx context.Context, f flow.Flow) <-chan evidence.WatchUpdate {
	return watch.Start(ctx, s.t, f, watch.Options{})
}

// Capture streams the flow's packets on every interface until ctx ends,
// those of its other forms (NAT, another source: evidence.Forms) too.
func (s *Session) Capture(ctx context.Context, f flow.Flow, forms []flow.Flow) <-chan evidence.CaptureUpdate {
	return capture.Capture(ctx, s.t, f, capture.Options{Also: forms})
}

// Drops streams the kernel's drops of the flow's packets in the target,
// each with the kernel's reason, those of its other forms too, until ctx
// ends. Its only update says so when the witness cannot run here.
func (s *Session) Drops(ctx context.Context, f flow.Flow, forms []flow.Flow) <-chan evidence.DropUpdate {
	return drops.Watch(ctx, s.t, f, drops.Options{Also: forms})
}

// PeerCommand is the --peer command, quoted for the header; "" without a peer.
func (s *Session) PeerCommand() string {
	if s.cfg.Peer == nil {
		return ""
	}
	return evidence.Command(s.cfg.Peer.Prefix...)
}

// Peer collects the far end's evidence for a flow, with a live window of
// watch when not zero. It never fails: a peer that cannot be run is a
// PeerFailure.
func (s *Session) Peer(ctx context.Context, f flow.Flow, watch time.Duration) evidence.PeerResult {
	if s.cfg.Peer == nil {
		return evidence.PeerResult{Failure: &evidence.PeerFailure{Kind: evidence.PeerFailed, Reason: "no --peer was given", ExitCode: -1}}
	}
	return peer.Collect(ctx, s.peerOptions(f, watch))
}

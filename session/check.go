package session

import (
	"context"
	"net/netip"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/peer"
)

// Options say what a check adds to the playbook's steps.
type Options struct {
	// Watch observes the flow's packets, conntrack events and counters for
	// this long after the steps (0: no live window).
	Watch time.Duration
	// Peer asks the far end as well (needs Config.Peer).
	Peer bool
	// Notify tells the person what asym waits for (the live window).
	Notify func(string)
	// Gateways are gateways the person named, per interface (asym fix
	// --gateway, the fix pane): they stand before what the probes found.
	Gateways map[string]netip.Addr
}

// Result is what a check gathered and, for Check, what it means.
type Result struct {
	Evidence evidence.Evidence
	// Ran holds the report of every probe that ran, by probe id.
	Ran map[evidence.ProbeID]evidence.Reporter
	// Peer is the far end's run, with Options.Peer.
	Peer *evidence.PeerResult
	// Report is the judged report (Check only).
	Report playbook.Report
}

// Findings are every finding of the report, both ends included.
func (r Result) Findings() []playbook.Finding {
	out := append([]playbook.Finding(nil), r.Report.Findings...)
	if r.Report.Peer != nil {
		out = append(out, r.Report.Peer.Findings...)
	}
	return out
}

// Collect runs every step's probes here and, with a live window, observes
// the flow; with the peer, the far end runs alongside. The peer starts
// first: its connection takes longest, and its watch window must fall
// inside this host's.
func (s *Session) Collect(ctx context.Context, f flow.Flow, opt Options) Result {
	withPeer := opt.Peer && s.cfg.Peer != nil
	var peerCh <-chan evidence.PeerResult
	if withPeer {
		peerCh = s.startPeer(ctx, f, opt.Watch)
	}
	c := s.collector(f)
	ran := runSteps(ctx, c)
	var res *evidence.PeerResult
	switch {
	case opt.Watch > 0:
		if opt.Notify != nil {
			opt.Notify("watching " + evidence.Clean(f.Arrow()) + " for " + opt.Watch.String() + ": reproduce the failure now")
		}
		if withPeer {
			var pr evidence.PeerResult
			ran[evidence.ProbeLive], pr = s.watchAlongside(ctx, c, opt.Watch, peerCh)
			res = &pr
		} else {
			ran[evidence.ProbeLive] = c.WatchLive(ctx, opt.Watch)
		}
		// Again after the window: the traffic resolved next hops the first
		// look found empty, and frames are matched against their MACs.
		ran[evidence.ProbeNeighbours] = c.Run(ctx, evidence.ProbeNeighbours)
	case withPeer:
		pr := <-peerCh
		res = &pr
	}
	return Result{Evidence: c.Evidence(), Ran: ran, Peer: res}
}

// Check collects and judges: every analyzer over this host's evidence, and
// with the peer the far end's findings and those across both ends.
func (s *Session) Check(ctx context.Context, f flow.Flow, opt Options) Result {
	r := s.Collect(ctx, f, opt)
	ev := r.Evidence
	ev.NameGateways(opt.Gateways)
	r.Report = playbook.NewReport(time.Now(), &ev, s.info.Prefix, r.Ran, playbook.Analyze(&ev, len(playbook.Steps)-1))
	if r.Peer != nil {
		r.Report.AddPeer(playbook.AnalyzePeer(&ev, *r.Peer))
	}
	return r
}

// runSteps runs every step's probes, in the playbook's order.
func runSteps(ctx context.Context, c *probes.Collector) map[evidence.ProbeID]evidence.Reporter {
	ran := map[evidence.ProbeID]evidence.Reporter{}
	for _, st := range playbook.Steps {
		for _, id := range st.Probes {
			ran[id] = c.Run(ctx, id)
		}
	}
	return ran
}

// watchAlongside observes the flow here for at least d and until the peer
// has answered (bounded by its own time limit): the peer's window starts
// later (its connection, its probes) and this host's must cover it for the
// two ends' packets to be compared.
func (s *Session) watchAlongside(ctx context.Context, c *probes.Collector, d time.Duration, peerCh <-chan evidence.PeerResult) (*evidence.LiveEvidence, evidence.PeerResult) {
	var res evidence.PeerResult
	got := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	go func() {
		defer close(got)
		res = <-peerCh // the peer run is bounded by its timeout and returns promptly once ctx ends
		if rest := d - time.Since(start); rest > 0 {
			select {
			case <-time.After(rest):
			case <-ctx.Done():
			}
		}
		cancel()
	}()
	live := c.WatchLive(wctx, d+s.peerOptions(flow.Flow{}, d).Timeout)
	<-got
	return live, res
}

// startPeer runs the peer in the background; the result arrives on the
// channel (buffered: nobody has to read it).
func (s *Session) startPeer(ctx context.Context, f flow.Flow, watch time.Duration) <-chan evidence.PeerResult {
	ch := make(chan evidence.PeerResult, 1)
	o := s.peerOptions(f, watch)
	go func() { ch <- peer.Collect(ctx, o) }()
	return ch
}

// peerOptions are the far end's options for a flow and a live window: the
// window is added to the time the peer may take.
func (s *Session) peerOptions(f flow.Flow, watch time.Duration) peer.Options {
	o := *s.cfg.Peer
	o.Flow, o.Watch, o.ProbeTimeout = f, watch, s.cfg.ProbeTimeout
	if o.Timeout <= 0 {
		o.Timeout = peer.DefaultTimeout
	}
	o.Timeout += watch
	return o
}

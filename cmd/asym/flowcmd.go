package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/peer"
)

// flowCommand is what check and collect share: the flow, the target, the
// live window and the far end, read from the command line and checked.
type flowCommand struct {
	tf       targetFlags
	pf       peerFlags
	watch    time.Duration
	flow     flow.Flow
	peer     peer.Options
	withPeer bool
	t        *probes.Target
}

func (fc *flowCommand) register(fs *flag.FlagSet) {
	fc.tf.register(fs)
	fc.pf.register(fs)
	fs.DurationVar(&fc.watch, "watch", 0, "after the steps, observe the flow's packets, conntrack events and counters for this long")
}

// open reads the flow's words, checks the flags and opens the target; the
// caller closes fc.t. Mistakes in what was typed are errUsage.
func (fc *flowCommand) open(words []string) error {
	f, err := flow.Parse(words)
	if err != nil {
		return errUsage{err.Error()}
	}
	fc.flow = f
	if fc.tf.timeout <= 0 {
		return errUsage{"--timeout must be positive, e.g. 3s"}
	}
	if fc.watch < 0 || fc.watch > time.Hour {
		return errUsage{"--watch takes a duration up to 1h, e.g. 10s"}
	}
	if fc.peer, fc.withPeer, err = fc.pf.options(f, fc.watch, fc.tf.timeout); err != nil {
		return err
	}
	t, err := probes.OpenTarget(fc.tf.netns, fc.tf.pid)
	if err != nil {
		return err
	}
	if fc.tf.iif != "" {
		if _, err := t.Netlink().LinkByName(fc.tf.iif); err != nil {
			t.Close()
			return fmt.Errorf("there is no interface %q in %s: `ip link` lists them", clip(fc.tf.iif), t)
		}
	}
	fc.t = t
	return nil
}

// gather runs every step's probes here and, with --watch, observes the flow;
// with --peer the far end runs alongside. The peer starts first: its
// connection takes longest, and its watch window must fall inside this
// host's.
func (fc *flowCommand) gather(ctx context.Context, stderr io.Writer) (*probes.Collector, map[evidence.ProbeID]evidence.Reporter, evidence.PeerResult) {
	var peerCh <-chan evidence.PeerResult
	if fc.withPeer {
		peerCh = startPeer(ctx, fc.peer)
	}
	c := probes.NewCollector(fc.t, fc.flow, fc.tf.iif)
	c.Timeout = fc.tf.timeout
	ran := runSteps(ctx, c)
	var res evidence.PeerResult
	switch {
	case fc.watch > 0:
		fmt.Fprintf(stderr, "asym: watching %s for %s: reproduce the failure now\n", playbook.Clean(fc.flow.Arrow()), fc.watch)
		if fc.withPeer {
			ran[evidence.ProbeLive], res = watchAlongside(ctx, c, fc.watch, fc.peer, peerCh)
		} else {
			ran[evidence.ProbeLive] = c.WatchLive(ctx, fc.watch)
		}
		// Again after the window: the traffic resolved next hops the first
		// look found empty, and frames are matched against their MACs.
		ran[evidence.ProbeNeighbours] = c.Run(ctx, evidence.ProbeNeighbours)
	case fc.withPeer:
		res = <-peerCh
	}
	return c, ran, res
}

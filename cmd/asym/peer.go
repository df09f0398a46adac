package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/peer"
)

// peerFlags are the flags that reach the other end of the flow.
type peerFlags struct {
	prefix  string
	exe     string
	timeout time.Duration
}

func (p *peerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.prefix, "peer", "", "also diagnose the other end: the `COMMAND` that runs asym there, e.g. 'ssh db1 sudo' or 'ip netns exec server'")
	fs.StringVar(&p.exe, "peer-asym", "asym", "the asym executable on the peer (a name on its PATH, or a path)")
	fs.DurationVar(&p.timeout, "peer-timeout", 30*time.Second, "time limit for the peer, on top of --watch")
}

// options checks the flags and builds the peer's options; ok is false
// without --peer.
func (p *peerFlags) options(f flow.Flow, watch, probeTimeout time.Duration) (o peer.Options, ok bool, err error) {
	if p.prefix == "" {
		return o, false, nil
	}
	words, err := peer.SplitPrefix(p.prefix)
	if err != nil {
		return o, false, errUsage{"--peer: " + err.Error()}
	}
	if p.timeout <= 0 {
		return o, false, errUsage{"--peer-timeout must be positive, e.g. 30s"}
	}
	if p.exe == "" {
		return o, false, errUsage{"--peer-asym must name the asym executable on the peer"}
	}
	return peer.Options{Prefix: words, Exe: p.exe, Flow: f, Watch: watch, ProbeTimeout: probeTimeout,
		Timeout: p.timeout + watch, LocalVersion: version}, true, nil
}

// startPeer runs the peer in the background; the result arrives on the
// channel (buffered: nobody has to read it).
func startPeer(ctx context.Context, o peer.Options) <-chan evidence.PeerResult {
	ch := make(chan evidence.PeerResult, 1)
	go func() { ch <- peer.Collect(ctx, o) }()
	return ch
}

// collectOutput is what `asym collect` prints: this host's evidence, and
// with --peer the far end's run as well.
type collectOutput struct {
	evidence.Collection
	Peer *peerRun `json:"peer,omitempty"`
}

type peerRun struct {
	Command    []string              `json:"command"`
	Collection *evidence.Collection  `json:"collection,omitempty"`
	Failure    *evidence.PeerFailure `json:"failure,omitempty"`
	Stderr     []string              `json:"stderr,omitempty"`
}

// cmdCollect prints this host's evidence for the flow as versioned JSON, for
// another asym to read (asym check --peer runs it on the far end).
func cmdCollect(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("collect")
	var fc flowCommand
	fc.register(fs)
	fs.Bool("json", true, "print JSON (the only format; accepted so that the command reads the same as check's)")
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return 2, flagError(err)
	}
	if err := fc.open(words); err != nil {
		return 2, err
	}
	defer fc.t.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, _, res := fc.gather(ctx, stderr)
	out := collectOutput{Collection: evidence.Collection{Format: evidence.CollectFormat, Version: version, Time: time.Now().UTC(), Evidence: c.Evidence()}}
	if fc.withPeer {
		out.Peer = &peerRun{Command: res.Command, Collection: res.Collection, Failure: res.Failure, Stderr: res.Stderr}
	}
	if ctx.Err() != nil {
		return 2, errors.New("interrupted before the evidence was collected")
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return 2, fmt.Errorf("write the evidence: %w", err)
	}
	return 0, nil
}

// runSteps runs every step's probes.
func runSteps(ctx context.Context, c *probes.Collector) map[evidence.ProbeID]evidence.Reporter {
	ran := map[evidence.ProbeID]evidence.Reporter{}
	for _, s := range playbook.Steps {
		for _, id := range s.Probes {
			ran[id] = c.Run(ctx, id)
		}
	}
	return ran
}

// watchAlongside observes the flow here for at least d and until the peer
// has answered (bounded by its own time limit): the peer's window starts
// later (its connection, its probes) and this host's must cover it for the
// two ends' packets to be compared.
func watchAlongside(ctx context.Context, c *probes.Collector, d time.Duration, o peer.Options, peerCh <-chan evidence.PeerResult) (*evidence.LiveEvidence, evidence.PeerResult) {
	var res evidence.PeerResult
	got := make(chan struct{})
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	go func() {
		defer close(got)
		res = <-peerCh // Collect is bounded by o.Timeout and returns promptly once ctx ends
		if rest := d - time.Since(start); rest > 0 {
			select {
			case <-time.After(rest):
			case <-ctx.Done():
			}
		}
		cancel()
	}()
	live := c.WatchLive(wctx, d+o.Timeout)
	<-got
	return live, res
}

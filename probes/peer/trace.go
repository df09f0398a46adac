package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"asym/evidence"
	"asym/probes"
)

// TraceArgs are what the peer's `asym trace` is asked beyond the flow.
type TraceArgs struct {
	MaxHops int
	Wait    time.Duration
	NoSend  bool
	// ObserveBase asks the peer to listen for the probes this host sends
	// (their IP IDs have this high byte) until Release, before it traces;
	// -1: it does not listen.
	ObserveBase int
	// DestHeld and DestHops tell the peer what this host knows as the
	// destination of its trace (trace.Request says why they matter).
	DestHeld bool
	DestHops int
}

// TraceArgv returns the full argv that StartTrace runs. As for Args, the
// words asym appends are quoted for the remote shell when ssh carries them.
func TraceArgv(o Options, a TraceArgs) []string {
	exe := o.Exe
	if exe == "" {
		exe = "asym"
	}
	pt := o.ProbeTimeout
	if pt <= 0 {
		pt = probes.DefaultTimeout
	}
	words := []string{exe, "trace", "--json", "--timeout", pt.String()}
	if a.MaxHops > 0 {
		words = append(words, "--max-hops", strconv.Itoa(a.MaxHops))
	}
	if a.Wait > 0 {
		words = append(words, "--wait", a.Wait.String())
	}
	if a.NoSend {
		words = append(words, "--no-send")
	}
	if a.ObserveBase >= 0 {
		words = append(words, "--observe-ids", strconv.Itoa(a.ObserveBase))
	}
	if a.DestHeld {
		words = append(words, "--dest-held")
	}
	if a.DestHops > 0 {
		words = append(words, "--dest-hops", strconv.Itoa(a.DestHops))
	}
	words = append(words, "--")
	words = append(words, strings.Fields(o.Flow.String())...)
	return evidence.RemoteArgv(o.Prefix, words)
}

// TraceRun is the peer's `asym trace` while it runs. With ObserveBase the
// peer first listens for this host's probes: Ready closes once it does (or
// once it has ended), and Release tells it to stop listening and trace, by
// closing its standard input (a pipe, never the person's terminal).
type TraceRun struct {
	ready   chan struct{}
	once    sync.Once
	release func()
	done    chan evidence.TracePeer
}

// StartTrace starts the peer's trace. It never fails: what goes wrong ends
// up as the result's Failure.
func StartTrace(ctx context.Context, o Options, a TraceArgs) *TraceRun {
	tr := &TraceRun{ready: make(chan struct{}), done: make(chan evidence.TracePeer, 1)}
	argv := TraceArgv(o, a)
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	var stdin *os.File
	tr.release = func() {}
	if a.ObserveBase >= 0 {
		if r, w, err := os.Pipe(); err == nil {
			stdin, tr.release = r, func() { w.Close() }
		}
	}
	onLine := func(l string) {
		if l == evidence.TraceObserving {
			tr.once.Do(func() { close(tr.ready) })
		}
	}
	go func() {
		start := time.Now()
		rctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		var r outcome
		if stdin != nil {
			r = run(rctx, argv, stdin, onLine)
			stdin.Close()
		} else {
			r = run(rctx, argv, nil, onLine)
		}
		tr.release()
		tr.once.Do(func() { close(tr.ready) })
		// asym trace exits 1 with findings and 3 when it could not send:
		// both print the trace, which is what is read here.
		if r.startErr == nil && (r.code == 1 || r.code == 3) && len(bytes.TrimSpace(r.stdout)) > 0 {
			r.code, r.waitErr = 0, nil
		}
		res := evidence.TracePeer{Command: argv, Stderr: r.stderr}
		j := judge{o: o, r: r, name: argv[0], sub: "trace"}
		if res.Failure = j.outcome(ctx, rctx, timeout); res.Failure == nil {
			res.Trace, res.Failure = j.decodeTrace()
		}
		res.Elapsed = time.Since(start)
		tr.done <- res
	}()
	return tr
}

// Ready is closed when the peer listens for this host's probes, or has
// ended.
func (tr *TraceRun) Ready() <-chan struct{} { return tr.ready }

// Release tells the peer that this host's probes are sent: it stops
// listening and traces its own direction.
func (tr *TraceRun) Release() { tr.release() }

// Wait returns the peer's result once it has ended.
func (tr *TraceRun) Wait() evidence.TracePeer {
	res := <-tr.done
	tr.done <- res
	return res
}

func (j judge) decodeTrace() (*evidence.Trace, *evidence.PeerFailure) {
	out := bytes.TrimSpace(j.r.stdout)
	if len(out) == 0 {
		return nil, j.fail(evidence.PeerFailed, "the peer command printed nothing%s: run %s by hand to see why", j.said(), j.tryCommand())
	}
	var head struct {
		Format  *int   `json:"asym_trace"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &head); err != nil || head.Format == nil {
		return nil, j.fail(evidence.PeerFailed, "the peer printed something that is not asym trace output: %q: check that nothing on the peer (a login script, a wrapper) prints to standard output", clip(string(out), 100))
	}
	if *head.Format != evidence.TraceFormat {
		return nil, j.fail(evidence.PeerIncompatible, "the peer runs asym %s, which writes trace format %d, and this is %s, which reads format %d: install the same asym release on both hosts",
			clip(head.Version, 40), *head.Format, j.local(), evidence.TraceFormat)
	}
	// The peer is untrusted: every string it sends is made harmless to
	// show before it is decoded, as for collect.
	clean, err := cleanJSON(out)
	if err != nil {
		return nil, j.fail(evidence.PeerFailed, "the peer's trace output does not decode (%v): install the same asym release on both hosts", err)
	}
	var t evidence.Trace
	if err := json.Unmarshal(clean, &t); err != nil {
		return nil, j.fail(evidence.PeerFailed, "the peer's trace output does not decode (%v): install the same asym release on both hosts", err)
	}
	if t.Flow != j.o.Flow {
		return nil, j.fail(evidence.PeerFailed, "the peer traced %s instead of %s: its asym does not read the flow as this one does; install the same asym release on both hosts", t.Flow, j.o.Flow)
	}
	return &t, nil
}

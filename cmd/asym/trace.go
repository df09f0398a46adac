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
	"asym/playbook"
	"asym/probes/trace"
	"asym/session"
)

// traceOutput is what `asym trace --json` prints: the trace, and the
// findings it proves (a peer reading it takes the trace alone).
type traceOutput struct {
	evidence.Trace
	Findings []playbook.Finding `json:"findings"`
}

// traceFlags are asym trace's own flags.
type traceFlags struct {
	maxHops int
	wait    time.Duration
	noSend  bool
	asJSON  bool
	// Set by the asym that runs this one as its peer.
	observeIDs int
	destHeld   bool
	destHops   int
}

func (t *traceFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&t.maxHops, "max-hops", trace.DefaultMaxHops, "the highest TTL `N` sent (1 to 63)")
	fs.DurationVar(&t.wait, "wait", trace.DefaultWait, "how long each TTL's probes wait for answers")
	fs.BoolVar(&t.noSend, "no-send", false, "send nothing: print what would be sent")
	fs.BoolVar(&t.asJSON, "json", false, "print the trace as JSON")
	fs.IntVar(&t.observeIDs, "observe-ids", -1, "internal: listen for the other end's probes with this IP ID base before tracing")
	fs.BoolVar(&t.destHeld, "dest-held", false, "internal: a socket at the destination holds the tuple")
	fs.IntVar(&t.destHops, "dest-hops", 0, "internal: the destination's distance in hops, when known")
}

func (t *traceFlags) check() error {
	switch {
	case t.maxHops < 1 || t.maxHops > 63:
		return errUsage{"--max-hops takes 1 to 63"}
	case t.wait <= 0 || t.wait > 10*time.Second:
		return errUsage{"--wait takes a duration up to 10s, e.g. 1s"}
	case t.observeIDs > 255:
		return errUsage{"--observe-ids takes 0 to 255"}
	}
	return nil
}

// cmdTrace traces the flow hop by hop (and with --peer from the other end
// too), and prints where the paths part and which device drops the reply.
func cmdTrace(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("trace")
	var fc flowCommand
	fc.tf.register(fs)
	fc.pf.register(fs)
	var tf traceFlags
	tf.register(fs)
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return exitError, flagError(fs, err)
	}
	if err := tf.check(); err != nil {
		return exitError, err
	}
	if err := fc.open(words); err != nil {
		return exitError, err
	}
	defer fc.sess.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o := session.TraceOptions{
		Probes:  trace.Options{MaxHops: tf.maxHops, Wait: tf.wait},
		NoSend:  tf.noSend,
		Peer:    fc.pf.prefix != "",
		Version: version,

		ObserveBase: tf.observeIDs,
		DestHeld:    tf.destHeld,
		DestHops:    tf.destHops,
	}
	if tf.observeIDs >= 0 {
		o.Observing, o.Until = observingStdin(stderr)
	}
	tr, findings, err := fc.sess.Trace(ctx, fc.flow, o)
	if err != nil {
		return exitError, err
	}
	if ctx.Err() != nil {
		return exitError, errors.New("interrupted before the trace finished")
	}
	if tf.asJSON {
		err = json.NewEncoder(stdout).Encode(traceOutput{Trace: tr, Findings: nonNil(findings)})
	} else {
		err = playbook.WriteTraceText(stdout, &tr, findings, fc.sess.Info())
	}
	if err != nil {
		return exitError, fmt.Errorf("write the trace: %w", err)
	}
	return traceStatus(tr, findings), nil
}

// traceStatus: 1 findings, 0 this end's direction was traced, 3 it was
// not (no CAP_NET_RAW, --no-send, no route): nothing was proven.
func traceStatus(tr evidence.Trace, findings []playbook.Finding) int {
	switch {
	case len(findings) > 0:
		return exitFindings
	case tr.Forward.From == playbook.SideHere && tr.Forward.Traced, tr.Reverse.From == playbook.SideHere && tr.Reverse.Traced:
		return exitClean
	}
	return exitNotProven
}

// observingStdin is the peer side of --observe-ids: it tells the other end
// on stderr that it listens, and takes the end of its standard input (a
// pipe the other end closes once its probes are sent) as the sign to stop.
func observingStdin(stderr io.Writer) (func(), <-chan struct{}) {
	until := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(until)
	}()
	return func() { fmt.Fprintln(stderr, evidence.TraceObserving) }, until
}

func nonNil(fs []playbook.Finding) []playbook.Finding {
	if fs == nil {
		return []playbook.Finding{}
	}
	return fs
}

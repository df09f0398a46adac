package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"asym/evidence"
)

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
		return 2, flagError(fs, err)
	}
	if err := fc.open(words); err != nil {
		return 2, err
	}
	defer fc.sess.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res := fc.sess.Collect(ctx, fc.flow, fc.options(stderr))
	out := collectOutput{Collection: evidence.Collection{Format: evidence.CollectFormat, Version: version, Time: time.Now().UTC(), Evidence: res.Evidence}}
	if p := res.Peer; p != nil {
		out.Peer = &peerRun{Command: p.Command, Collection: p.Collection, Failure: p.Failure, Stderr: p.Stderr}
	}
	if ctx.Err() != nil {
		return 2, errors.New("interrupted before the evidence was collected")
	}
	if err := json.NewEncoder(stdout).Encode(out); err != nil {
		return 2, fmt.Errorf("write the evidence: %w", err)
	}
	return 0, nil
}

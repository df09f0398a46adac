package peer

import (
	"context"
	"strings"
	"testing"
	"time"

	"asym/evidence"
)

// TestTraceArgv: the peer is asked for asym trace with the flow after --,
// and what this end knows as flags.
func TestTraceArgv(t *testing.T) {
	o := Options{Prefix: []string{"ssh", "db1", "sudo"}, Flow: flow4}
	got := strings.Join(TraceArgv(o, TraceArgs{MaxHops: 8, Wait: 300 * time.Millisecond, ObserveBase: 7, DestHeld: true, DestHops: 4}), " ")
	want := "ssh db1 sudo asym trace --json --timeout 3s --max-hops 8 --wait 300ms --observe-ids 7 --dest-held --dest-hops 4 -- tcp 192.0.2.10:40000 198.51.100.20:8080"
	if got != want {
		t.Errorf("argv\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(TraceArgv(Options{Flow: flow4}, TraceArgs{ObserveBase: -1, NoSend: true}), " "); got != "asym trace --json --timeout 3s --no-send -- tcp 192.0.2.10:40000 198.51.100.20:8080" {
		t.Errorf("argv %q", got)
	}
}

// TestTraceObserveHandshake: the peer says it listens (Ready), waits for
// this end to Release it (its standard input ends), and its trace is read,
// also when it exits 1 (findings).
func TestTraceObserveHandshake(t *testing.T) {
	for _, mode := range []string{"trace", "trace-findings"} {
		run := StartTrace(context.Background(), fake(t, mode), TraceArgs{ObserveBase: 3})
		select {
		case <-run.Ready():
		case <-time.After(10 * time.Second):
			t.Fatal("the peer never said it listens")
		}
		time.Sleep(300 * time.Millisecond) // this end's probes
		run.Release()
		res := run.Wait()
		if res.Failure != nil || res.Trace == nil {
			t.Fatalf("%s: failure %+v (stderr %q)", mode, res.Failure, res.Stderr)
		}
		if res.Trace.Flow != flow4 || res.Trace.Format != evidence.TraceFormat {
			t.Errorf("%s: trace %+v", mode, res.Trace)
		}
		if notes := res.Trace.Reverse.Notes; len(notes) != 1 || notes[0] == "listened 0s" {
			t.Errorf("%s: the peer must have listened until released: %q", mode, notes)
		}
	}
}

// TestTraceFailures: a peer that does not know trace, and one that
// answers something else, are failures with the kinds check uses.
func TestTraceFailures(t *testing.T) {
	for _, tc := range []struct {
		mode string
		kind evidence.PeerFailureKind
	}{{"old", evidence.PeerIncompatible}, {"garbage", evidence.PeerFailed}, {"valid", evidence.PeerFailed}} {
		res := StartTrace(context.Background(), fake(t, tc.mode), TraceArgs{ObserveBase: -1}).Wait()
		if res.Failure == nil || res.Failure.Kind != tc.kind || res.Trace != nil {
			t.Errorf("%s: %+v, want a %s failure", tc.mode, res.Failure, tc.kind)
		}
	}
}

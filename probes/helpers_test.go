package probes

// Helpers shared by this package's tests that need its own types (Target,
// flow.Flow) or the lab, which package probetest cannot import.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"asym/flow"
	"asym/lab"
	"asym/probes/probetest"
)

// openTarget opens the namespace called name as a probe target, closed
// when the test ends.
func openTarget(t testing.TB, name string) *Target {
	t.Helper()
	tg, err := OpenTarget(name, 0)
	if err != nil {
		t.Fatalf("open target %s: %v", name, err)
	}
	t.Cleanup(tg.Close)
	return tg
}

// parseFlow parses a flow as asym's command line takes it ("tcp
// 192.0.2.10:40000 192.0.2.20:8080"), failing the test if it does not parse.
func parseFlow(t testing.TB, s string) flow.Flow {
	t.Helper()
	f, err := flow.ParseString(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// hasLine says whether any of a view's lines contains part.
func hasLine(lines []string, part string) bool {
	for _, l := range lines {
		if strings.Contains(l, part) {
			return true
		}
	}
	return false
}

// labUp brings up the lab scenario called name in namespaces whose names
// start with prefix and a random part (so that parallel runs do not
// collide), and takes it down when the test ends. The context it returns
// ends after 60s or with the test.
func labUp(t *testing.T, name, prefix string) (*lab.Env, context.Context) {
	t.Helper()
	probetest.RequireRoot(t)
	sc, ok := lab.Find(name)
	if !ok {
		t.Fatalf("the lab has no %s scenario", name)
	}
	rb := make([]byte, 3)
	rand.Read(rb)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	env, err := sc.Up(ctx, prefix+hex.EncodeToString(rb)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Down(); err != nil {
			t.Errorf("take the lab down: %v", err)
		}
	})
	return env, ctx
}

// streamRec records a stream (a watch's or a capture's updates) and reads
// back what every update carries besides its payload: how much was dropped
// and an error.
type streamRec[U any] struct {
	*probetest.Recorder[U]
	meta func(U) (dropped int, err error)
}

func recordStream[U any](ch <-chan U, meta func(U) (dropped int, err error)) streamRec[U] {
	return streamRec[U]{probetest.Record(ch), meta}
}

// dropped is the updates' drop counts, summed.
func (r streamRec[U]) dropped() int {
	n := 0
	for _, u := range r.Got() {
		d, _ := r.meta(u)
		n += d
	}
	return n
}

// noErrs fails the test for every error an update carried.
func (r streamRec[U]) noErrs(t *testing.T, name string) {
	t.Helper()
	for _, u := range r.Got() {
		if _, err := r.meta(u); err != nil {
			t.Errorf("%s: unexpected error: %v", name, err)
		}
	}
}

package capture_test

// Helpers of the kernel tests, which need probes.Target (the namespace a
// capture runs in for real) and the lab: package probes' own copies are in
// its internal tests, out of reach here.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"asym/flow"
	"asym/lab"
	"asym/probes"
	"asym/probes/probetest"
)

// openTarget opens the namespace called name as a probe target, closed
// when the test ends.
func openTarget(t testing.TB, name string) *probes.Target {
	t.Helper()
	tg, err := probes.OpenTarget(name, 0)
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

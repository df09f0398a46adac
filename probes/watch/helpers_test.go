package watch_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"math"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/lab"
	"asym/probes"
	"asym/probes/probetest"

	"github.com/ti-mo/conntrack"
)

// watchRec records what a watch delivers.
type watchRec struct {
	*probetest.Recorder[evidence.WatchUpdate]
}

func watchRecord(ch <-chan evidence.WatchUpdate) *watchRec {
	return &watchRec{probetest.Record(ch)}
}

// dropped is the updates' drop counts, summed.
func (r *watchRec) dropped() int {
	n := 0
	for _, u := range r.Got() {
		n += u.Dropped
	}
	return n
}

// noErrs fails the test for every error an update carried.
func (r *watchRec) noErrs(t *testing.T, name string) {
	t.Helper()
	for _, u := range r.Got() {
		if u.Err != nil {
			t.Errorf("%s: unexpected error: %v", name, u.Err)
		}
	}
}

func (r *watchRec) events() []evidence.CtEvent {
	var out []evidence.CtEvent
	for _, u := range r.Got() {
		out = append(out, u.Events...)
	}
	return out
}

func (r *watchRec) samples() []*evidence.Sample {
	var out []*evidence.Sample
	for _, u := range r.Got() {
		if u.Sample != nil {
			out = append(out, u.Sample)
		}
	}
	return out
}

// until polls cond for up to d (probetest.Poll).
func (r *watchRec) until(d time.Duration, cond func(*watchRec) bool) bool {
	return probetest.Poll(d, func() bool { return cond(r) })
}

func watchHasSample(r *watchRec) bool { return len(r.samples()) > 0 }

// watchMaxRate is the highest per-second rate of key between consecutive samples.
func watchMaxRate(samples []*evidence.Sample, key string) float64 {
	best := math.Inf(-1)
	for i := 1; i < len(samples); i++ {
		if v, ok := evidence.Rates(samples[i-1], samples[i])[key]; ok && v > best {
			best = v
		}
	}
	return best
}

func watchLogEvents(t *testing.T, name string, evs []evidence.CtEvent) {
	t.Helper()
	for _, e := range evs {
		t.Logf("%s: %s %s (matched as %s)", name, e.Time.Format("15:04:05.000"), e.Entry.Text, e.Entry.MatchedAs)
	}
}

// Helpers shared with package probes' tests, which package probetest
// cannot hold: they need the Target, or the lab.

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

// The client and the server of ctPair.
const (
	ctClientAddr = "192.0.2.10"
	ctServerAddr = "192.0.2.20"
)

// ctPair builds two namespaces without a ruleset (so neither tracks
// connections yet): client A with ctClientAddr on a0 and server B with
// ctServerAddr on b0, joined by a veth, both quiet (probetest.Quiet).
func ctPair(t *testing.T) (a, b probetest.NS) {
	t.Helper()
	a, b = probetest.NewNS(t), probetest.NewNS(t)
	probetest.Quiet(t, a)
	probetest.Quiet(t, b)
	probetest.Veth(t, a, probetest.Link{Name: "a0", Addrs: []string{ctClientAddr + "/24"}},
		b, probetest.Link{Name: "b0", Addrs: []string{ctServerAddr + "/24"}})
	return a, b
}

// ctQuery is the flow's tuple as conntrack -D takes it: the kernel matches
// the original tuple against both directions of each entry.
func ctQuery(f flow.Flow) conntrack.Flow {
	var q conntrack.Flow
	q.TupleOrig.IP.SourceAddress = f.Src.Addr()
	q.TupleOrig.IP.DestinationAddress = f.Dst.Addr()
	q.TupleOrig.Proto.Protocol = uint8(f.Proto)
	q.TupleOrig.Proto.SourcePort = f.Src.Port()
	q.TupleOrig.Proto.DestinationPort = f.Dst.Port()
	return q
}

package main

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"asym/fix/apply"
	"asym/probes/probetest"
)

// TestKilledAnywhere: a bounded, seeded loop signals asym at random points
// of `fix --apply` (SIGKILL mostly; SIGINT and SIGTERM, which asym heeds
// between steps and answers with a rollback), then settles the fix as a
// person would, with --rollback. Every time, the namespace must end
// exactly as it was, and no fix may be left pending. ASYM_KILL_SEED
// replays a run.
func TestKilledAnywhere(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	applyArgs := append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait", "--revert-after", "60s"}, strings.Fields(c.Flow)...)
	start := time.Now()
	if code, out := asymExec(t, applyArgs...); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	whole := time.Since(start)
	if code, out := asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	seed := time.Now().UnixNano()
	if s := os.Getenv("ASYM_KILL_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("ASYM_KILL_SEED=%d; a whole apply takes %s here", seed, whole.Round(time.Millisecond))
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	signals := []syscall.Signal{syscall.SIGKILL, syscall.SIGKILL, syscall.SIGKILL, syscall.SIGINT, syscall.SIGTERM}
	budget := time.Now().Add(20 * time.Second)
	runs := map[string]int{}
	for i := 0; i < 150 && time.Now().Before(budget); i++ {
		sig := signals[rng.IntN(len(signals))]
		delay := time.Duration(rng.Int64N(int64(whole) * 11 / 10))
		p := startAsym(t, applyArgs...)
		time.Sleep(delay)
		p.cmd.Process.Signal(sig)
		code, out := p.wait()
		rcode, rout := asymExec(t, "fix", "--netns", c.Target, "--rollback")
		settled := rcode == 0 || strings.Contains(rout, apply.ErrNone.Error()) || strings.Contains(rout, "the last fix here is already")
		if !settled {
			t.Fatalf("run %d (%s after %s): the rollback failed: %d\n%s\napply said (%d):\n%s", i, sig, delay, rcode, rout, code, out)
		}
		if after := dump(t, c.Target); after != before {
			t.Fatalf("run %d (%s after %s, apply exit %d): the namespace is not as before:\nbefore:\n%s\nafter:\n%s\napply said:\n%s\nrollback said:\n%s",
				i, sig, delay, code, before, after, out, rout)
		}
		if j, err := apply.Load(apply.PathFor(apply.IDFor("netns", c.Target))); err == nil && j.Pending() {
			t.Fatalf("run %d (%s after %s): the fix is still %s after the rollback", i, sig, delay, j.State)
		}
		runs[sig.String()]++
	}
	t.Logf("runs: %v", runs)
	noWatchdogLeft(t)
}

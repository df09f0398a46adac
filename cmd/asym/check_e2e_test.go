package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/lab"
	"asym/playbook"
	"asym/probes"
	"asym/probes/probetest"
)

var record = flag.Bool("record", false, "write each check's evidence to ../../playbook/testdata for the analyzer tests")

// TestCheckLab runs `asym check --json` against every lab scenario, with the
// scenario's failing traffic tried first, and asserts exactly the findings
// each scenario expects (none on the healthy one) and the exit status. A
// scenario whose proof needs packets (mtu-blackhole) fails its traffic and
// yet expects nothing here: TestCheckWatchLab asserts its Live findings.
func TestCheckLab(t *testing.T) {
	probetest.RequireRoot(t)
	for _, sc := range lab.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			b := make([]byte, 3)
			rand.Read(b)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			env, err := sc.Up(ctx, "asym-e"+hex.EncodeToString(b)+"-")
			if err != nil {
				t.Fatalf("build %s: %v", sc.Name, err)
			}
			t.Cleanup(func() {
				if err := env.Down(); err != nil {
					t.Errorf("tear down %s: %v", sc.Name, err)
				}
			})
			// Real traffic first: counters and conntrack then hold what a
			// person at 02:13 would find after the failures.
			tryErr := env.Try(ctx, 2*time.Second)
			if fails := env.Checks[0].Fails(); fails == (tryErr == nil) {
				t.Fatalf("the flow should %s, but the attempt gave: %v", map[bool]string{true: "fail", false: "work"}[fails], tryErr)
			}
			for i, c := range env.Checks {
				var out, errb bytes.Buffer
				code := run(append([]string{"check", "--netns", c.Target, "--json"}, strings.Fields(c.Flow)...), &out, &errb)
				var rep playbook.Report
				if err := json.Unmarshal(out.Bytes(), &struct {
					Findings *[]playbook.Finding `json:"findings"`
					Flow     *flow.Flow          `json:"flow"`
					Verdict  *playbook.Judgement `json:"verdict"`
				}{&rep.Findings, &rep.Flow, &rep.Verdict}); err != nil {
					t.Fatalf("%s: the JSON report does not parse: %v\n%s", c.Target, err, out.String())
				}
				// Findings exit 1; without findings, 0 only for a verdict proven
				// clean, 3 when nothing proved the flow works.
				want := map[playbook.Verdict]int{playbook.VerdictClean: 0, playbook.VerdictNotProven: 3}[rep.Verdict.Verdict]
				if len(c.Expect) > 0 {
					want = 1
				}
				if code != want || len(c.Expect) == 0 && rep.Verdict.Verdict != playbook.VerdictClean && rep.Verdict.Verdict != playbook.VerdictNotProven {
					t.Fatalf("%s: exit status %d with verdict %q, want %d; stderr: %s", c.Target, code, rep.Verdict.Verdict, want, errb.String())
				}
				var got []string
				for _, f := range rep.Findings {
					got = append(got, string(f.ID))
				}
				sort.Strings(got)
				expect := slices.Clone(c.Expect)
				sort.Strings(expect)
				if !slices.Equal(got, expect) {
					var text bytes.Buffer
					run(append([]string{"check", "--netns", c.Target}, strings.Fields(c.Flow)...), &text, &text)
					t.Fatalf("%s: findings %v, want %v\n%s", c.Target, got, expect, text.String())
				}
				// A target's recording is its first check's: a second check of
				// it (the flow without its source port) would overwrite it.
				if *record && slices.IndexFunc(env.Checks, func(o lab.Check) bool { return o.Target == c.Target }) == i {
					recordEvidence(t, sc.Name, strings.TrimPrefix(c.Target, env.Prefix), c)
				}
			}
		})
	}
}

// recordEvidence stores the raw evidence of a check so that the analyzers
// can be tested on it without a kernel.
func recordEvidence(t *testing.T, scenario, role string, c lab.Check) {
	f, err := flow.ParseString(c.Flow)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := probes.OpenTarget(c.Target, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	col := probes.NewCollector(tg, f, "")
	for _, s := range playbook.Steps {
		for _, id := range s.Probes {
			col.Run(context.Background(), id)
		}
	}
	ev := col.Evidence()
	rec := struct {
		Scenario string            `json:"scenario"`
		Target   string            `json:"target"`
		Expect   []string          `json:"expect"`
		Evidence evidence.Evidence `json:"evidence"`
	}{scenario, role, c.Expect, ev}
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join("..", "..", "playbook", "testdata")
	os.MkdirAll(dir, 0o755)
	if err := os.WriteFile(filepath.Join(dir, scenario+"-"+rec.Target+".json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

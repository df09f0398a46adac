package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchEvents runs the existing measurement of the live watch under an
// unrelated conntrack flood rather than a copy of it:
//
//	ASYM_BENCH=1 ASYM_BENCH_SECONDS=60 go test ./probes -run '^TestWatchFloodBudget$' -v -count=1
//
// and carries its verdicts and figures into the table.
func benchEvents(ctx context.Context, cfg *config, res *results) error {
	const name = "events"
	secs := strconv.Itoa(cfg.flood)
	progress("%s: ASYM_BENCH=1 ASYM_BENCH_SECONDS=%s go test ./probes -run '^TestWatchFloodBudget$' -v -count=1 (about %d s)", name, secs, cfg.flood+30)
	cmd := exec.CommandContext(ctx, goTool(), "test", "./probes", "-run", "^TestWatchFloodBudget$", "-v", "-count=1",
		"-timeout", strconv.Itoa(cfg.flood+600)+"s")
	cmd.Dir = cfg.root
	cmd.Env = append(os.Environ(), "ASYM_BENCH=1", "ASYM_BENCH_SECONDS="+secs)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	var lines []string
	for _, l := range strings.Split(out.String(), "\n") {
		for _, p := range []string{"flood:", "watched flow:", "watch CPU:", "watch memory:", "requirement:", "harness error:", "watch error:"} {
			if strings.HasPrefix(l, p) {
				lines = append(lines, l)
			}
		}
	}
	if err != nil || len(lines) == 0 {
		tail := out.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return fmt.Errorf("the flood measurement failed (%v); its output ends with:\n%s", err, tail)
	}
	for _, l := range lines {
		res.note(name, "%s", l)
	}
	rate := firstFloat(`(?m)^flood: ([\d,]+) events/s`, out.String())
	cores := firstFloat(`(?m)^watch CPU: ([\d.]+) cores`, out.String())
	what := "asym's live watch of one flow under an unrelated conntrack event flood"
	if rate > 0 && cores > 0 {
		what = fmt.Sprintf("live watch under a flood of %s events/s for %s s: %.3f cores, %.1f µs CPU per flood event",
			comma(int64(rate)), secs, cores, cores/rate*1e6)
	}
	met := "see notes"
	if m := regexp.MustCompile(`(?m)^requirement: (.*)$`).FindStringSubmatch(out.String()); m != nil {
		met = "yes"
		if strings.Contains(m[1], "NO") || strings.Contains(m[1], "not judged") {
			met = m[1]
		}
	}
	res.add(&row{scenario: name, what: what, runs: 1,
		target: "≥ 50,000 ev/s, no flow event missed, < 0.5 core, memory flat", met: met})
	res.note(name, "the whole measurement took %s; reproduce it alone with ASYM_BENCH=1 go test ./probes -run TestWatchFloodBudget -v -count=1 -timeout 10m", took.Round(time.Second))
	return nil
}

func firstFloat(re, s string) float64 {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.ReplaceAll(m[1], ",", ""), 64)
	return f
}

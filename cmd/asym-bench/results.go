package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// row is one line of the table.
type row struct {
	scenario string
	what     string
	s        series
	runs     int // shown instead of the number of samples when set
	// vs is the row this one is compared with (asym's): the ratio printed
	// is this row's median over vs's median, i.e. how many times longer the
	// equivalent takes.
	vs     *row
	target string
	met    string // "yes", "NO: …", or "" when there is no target
}

type results struct {
	machine string
	rows    []*row
	notes   []string // "scenario: text"
}

func (r *results) add(rw *row) *row {
	r.rows = append(r.rows, rw)
	return rw
}

func (r *results) note(scenario, format string, args ...any) {
	r.notes = append(r.notes, scenario+": "+fmt.Sprintf(format, args...))
}

func (r *results) print(w io.Writer, cfg *config) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	fmt.Fprintf(bw, "\n## asym-bench results\n\n")
	fmt.Fprintf(bw, "command: sudo go run ./cmd/asym-bench %s\n", strings.Join(os.Args[1:], " "))
	fmt.Fprintf(bw, "machine: %s\n", r.machine)
	fmt.Fprintf(bw, "runs: %d per command (wall time from untraced runs, peak RSS = VmHWM at exit from separate traced runs); total %s\n\n",
		cfg.runs, time.Since(cfg.startedAt).Round(time.Second))
	fmt.Fprintln(bw, "| scenario | measured | runs | wall median | wall p10–p90 | peak RSS median (min–max) | vs asym | target | met |")
	fmt.Fprintln(bw, "|---|---|---:|---:|---:|---:|---:|---|---|")
	for _, rw := range r.rows {
		n := len(rw.s.wall)
		wall, spread := "—", "—"
		if n > 0 {
			wall = fmtDur(quantile(rw.s.wall, 0.5))
			spread = fmtDur(quantile(rw.s.wall, 0.1)) + "–" + fmtDur(quantile(rw.s.wall, 0.9))
			if n == 1 {
				spread = "(one run)"
			}
		}
		rss := "—"
		if len(rw.s.rss) > 0 {
			rss = fmt.Sprintf("%s (%s–%s)", fmtMiB(quantile(rw.s.rss, 0.5)), fmtMiB(quantile(rw.s.rss, 0)), fmtMiB(quantile(rw.s.rss, 1)))
		}
		vs := "—"
		if rw.vs != nil && len(rw.vs.s.wall) > 0 && n > 0 {
			ratio := float64(quantile(rw.s.wall, 0.5)) / float64(quantile(rw.vs.s.wall, 0.5))
			vs = fmt.Sprintf("%.1f×", ratio)
		}
		if rw.runs > 0 {
			n = rw.runs
		}
		fmt.Fprintf(bw, "| %s | %s | %d | %s | %s | %s | %s | %s | %s |\n",
			rw.scenario, strings.ReplaceAll(rw.what, "|", "\\|"), n, wall, spread, rss, vs, rw.target, rw.met)
	}
	if len(r.notes) > 0 {
		fmt.Fprintln(bw, "\nnotes:")
		for _, n := range r.notes {
			fmt.Fprintf(bw, "- %s\n", n)
		}
	}
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= 10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= 100*time.Millisecond:
		return fmt.Sprintf("%.0f ms", float64(d)/1e6)
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// comma writes n with thousands separators: 1,000,000.
func comma(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// verdict says whether a figure meets its target, and by how much it misses.
func verdictBelow(got, limit float64, unit string) string {
	if got < limit {
		return "yes"
	}
	return fmt.Sprintf("NO: %.3g %s over (%.0f%%)", got-limit, unit, 100*(got-limit)/limit)
}

// verdicts combines labelled verdicts: "yes" when all are, else the misses.
func verdicts(pairs ...string) string {
	var miss []string
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] != "yes" {
			miss = append(miss, pairs[i]+" "+pairs[i+1])
		}
	}
	if len(miss) == 0 {
		return "yes"
	}
	return strings.Join(miss, "; ")
}

// describeMachine names the CPU, the core count, the memory and the kernel.
func describeMachine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	var u unix.Utsname
	unix.Uname(&u)
	var si unix.Sysinfo_t
	unix.Sysinfo(&si)
	mem := float64(si.Totalram) * float64(si.Unit) / (1 << 30)
	ip := "iproute2 unknown"
	if out, err := exec.Command("ip", "-V").Output(); err == nil {
		ip = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d cores, %.0f GiB, Linux %s, %s, %s", cpu, runtime.NumCPU(), mem,
		unix.ByteSliceToString(u.Release[:]), runtime.Version(), ip)
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
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

// TestDropsEveryScenario: on every lab check, `asym check --watch` while
// the flow is tried carries the kernel's drops of the flow, each
// attributed to the checked namespace (the lab's namespaces share one
// kernel, and the same tuple crosses several of them), and the healthy
// checks stay without findings whatever the kernel drops of them (frames
// flooded for another MAC, TCP's bookkeeping).
func TestDropsEveryScenario(t *testing.T) {
	probetest.RequireRoot(t)
	for _, sc := range lab.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			env := upScenario(t, sc.Name)
			for i, c := range env.Checks {
				r, l, out := watchEnv(t, env, i)
				if l.DropHook == "" {
					t.Fatalf("%s: the drop witness did not run: %s\n%s", c.Target, l.DropsUnavailable, out)
				}
				inode := inodeOf(t, c.Target)
				for _, d := range l.Drops {
					t.Logf("%s: %s", c.Target, d.Text)
					if d.NetnsInode != inode {
						t.Errorf("%s: a drop of namespace %d reported for %d: %s", c.Target, d.NetnsInode, inode, d.Text)
					}
				}
				for _, f := range r.Findings {
					t.Logf("%s: %s %s: %s", c.Target, f.Severity, f.ID, f.Title)
				}
				want := c.Expect
				if c.Live != nil {
					want = c.Live
				}
				if len(want) == 0 && len(r.Findings) != 0 {
					t.Errorf("%s: a healthy flow has no findings, drops or not: %v", c.Target, r.Findings)
				}
			}
		})
	}
}

// TestDropsProveFindings: on the lab scenarios whose packets die in this
// kernel, the report names the kernel's reason for the flow's drop in the
// finding it proves.
func TestDropsProveFindings(t *testing.T) {
	probetest.RequireRoot(t)
	cases := []struct {
		scenario string
		check    int
		id       string
		severity string
		lines    []string // each in a live evidence line of the finding
	}{
		{"two-nics-strict", 0, "rp_filter_strict_drop", "critical", []string{
			"the kernel dropped the SYN on eth1: IP_RPFILTER, in ip_rcv_finish_core",
			"— because the way back to 203.0.113.10 leaves by eth0 (route.request)"}},
		{"src-valid-mark", 0, "rp_filter_strict_drop", "critical", []string{"the kernel dropped the SYN on eth1: IP_RPFILTER"}},
		{"firewall-ecmp", 0, "ct_invalid_drop", "critical", []string{"the kernel dropped the SYN-ACK on ", ": NETFILTER_DROP, in nft_do_chain", "← its counter +"}},
		{"firewall-one-way-nft", 0, "ct_invalid_drop", "critical", []string{"the kernel dropped the SYN-ACK on ", ": NETFILTER_DROP", "← its counter +"}},
		{"mtu-blackhole", 1, "mtu_blackhole", "critical", []string{": PKT_TOO_BIG, in ip_forward", "the kernel dropped an ICMP fragmentation-needed about the flow"}},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			t.Parallel()
			env := upScenario(t, c.scenario)
			r, _, out := watchEnv(t, env, c.check)
			if *record {
				recordDrops(t, env, env.Checks[c.check], c.id, c.lines)
			}
			for _, f := range r.Findings {
				if string(f.ID) != c.id {
					continue
				}
				if string(f.Severity) != c.severity {
					t.Errorf("%s is %s, want %s", f.ID, f.Severity, c.severity)
				}
				for _, want := range c.lines {
					if !evidenceHas(r, c.id, want) {
						t.Errorf("no live line of %s has %q:\n%s", c.id, want, out)
					}
				}
				return
			}
			t.Fatalf("no %s:\n%s", c.id, out)
		})
	}
}

// TestCollectDrops: `asym collect --watch` carries the kernel's drops in
// its evidence, so the peer's drops come back with --peer and prove the
// peer's findings there.
func TestCollectDrops(t *testing.T) {
	probetest.RequireRoot(t)
	env := upScenario(t, "two-nics-strict")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(500 * time.Millisecond)
		env.Try(ctx, 2*time.Second)
	}()
	var out, errb bytes.Buffer
	if code := run(append([]string{"collect", "--json", "--watch", "3s", "--netns", env.Prefix + "host"}, strings.Fields(env.Checks[0].Flow)...), &out, &errb); code != 0 {
		t.Fatalf("collect: %d %s", code, errb.String())
	}
	var c evidence.Collection
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	l := c.Evidence.Live
	if l == nil || l.DropHook == "" || len(l.Drops) == 0 {
		t.Fatalf("no drops in the collected evidence:\n%s", out.String())
	}
	for _, f := range playbook.Analyze(&c.Evidence, len(playbook.Steps)-1) {
		for _, line := range f.Evidence {
			if f.ID == playbook.RPFilterStrictDrop && line.Probe == evidence.ProbeLive && strings.Contains(line.Text, "the kernel dropped the SYN on eth1: IP_RPFILTER") {
				return
			}
		}
	}
	t.Fatalf("the collected drops do not prove rp_filter_strict_drop:\n%s", out.String())
}

func inodeOf(t *testing.T, ns string) uint64 {
	t.Helper()
	tg, err := probes.OpenTarget(ns, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	return tg.Inode()
}

// recordDrops stores the evidence of a --watch check (every probe, then
// the live window while the flow is tried) with the finding the kernel's
// drops must prove and the lines that say so, for the analyzer tests
// without a kernel (playbook/testdata/drops).
func recordDrops(t *testing.T, env *lab.Env, c lab.Check, id string, lines []string) {
	t.Helper()
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
		for _, p := range s.Probes {
			col.Run(context.Background(), p)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(500 * time.Millisecond)
		env.Try(ctx, 2*time.Second)
	}()
	col.WatchLive(context.Background(), 3*time.Second)
	ev := col.Evidence()
	var expect []string
	for _, fd := range playbook.Analyze(&ev, len(playbook.Steps)-1) {
		expect = append(expect, string(fd.ID))
	}
	sort.Strings(expect)
	rec := struct {
		Scenario string            `json:"scenario"`
		Target   string            `json:"target"`
		Expect   []string          `json:"expect"`
		Proves   string            `json:"proves"`
		Lines    []string          `json:"lines"`
		Evidence evidence.Evidence `json:"evidence"`
	}{env.Scenario.Name, strings.TrimPrefix(c.Target, env.Prefix), expect, id, lines, ev}
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join("..", "..", "playbook", "testdata", "drops", rec.Scenario+"-"+rec.Target+".json")
	if err := os.WriteFile(fn, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s: %v", fn, expect)
}

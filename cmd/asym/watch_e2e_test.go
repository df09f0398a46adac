package main

import (
	"bytes"
	"context"
	"encoding/json"
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

// watchCheck runs `asym check --watch 3s --json` on a lab check while the
// scenario's flow is tried, and returns the report.
func watchCheck(t *testing.T, scenario string, check int) (playbook.Report, evidence.LiveEvidence, string) {
	t.Helper()
	return watchEnv(t, upScenario(t, scenario), check)
}

// watchEnv is watchCheck on a scenario that is already up.
func watchEnv(t *testing.T, env *lab.Env, check int) (playbook.Report, evidence.LiveEvidence, string) {
	t.Helper()
	c := env.Checks[check]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(500 * time.Millisecond) // the watch is open by then
		env.Try(ctx, 2*time.Second)
	}()
	var out, errb bytes.Buffer
	code := run(append([]string{"check", "--netns", c.Target, "--watch", "3s", "--json"}, strings.Fields(c.Flow)...), &out, &errb)
	if code == 2 {
		t.Fatalf("check --watch: %s", errb.String())
	}
	var raw struct {
		Findings []playbook.Finding `json:"findings"`
		Steps    []struct {
			ID     string            `json:"id"`
			Probes []json.RawMessage `json:"probes"`
		} `json:"steps"`
		HandOff []string           `json:"hand_off"`
		Verdict playbook.Judgement `json:"verdict"`
	}
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("report: %v", err)
	}
	var l evidence.LiveEvidence
	for _, s := range raw.Steps {
		for _, p := range s.Probes {
			if bytes.Contains(p, []byte(`"probe": "live"`)) {
				if s.ID != "third" {
					t.Errorf("the live evidence belongs to the third step, not %s", s.ID)
				}
				json.Unmarshal(p, &l)
			}
		}
	}
	if l.Probe != "live" {
		t.Fatalf("no live evidence in the report:\n%s", out.String())
	}
	if len(raw.Findings) == 0 && (code == 0) != (raw.Verdict.Verdict == playbook.VerdictClean) {
		t.Errorf("exit status %d with verdict %q: 0 only when proven clean", code, raw.Verdict.Verdict)
	}
	return playbook.Report{Findings: raw.Findings, HandOff: raw.HandOff, Verdict: raw.Verdict}, l, out.String()
}

func packetSeen(l evidence.LiveEvidence, iface, dir string, reply bool, flags string) bool {
	for _, p := range l.Packets {
		if p.Iface == iface && string(p.Dir) == dir && p.Reply == reply && (flags == "" || p.Flags == flags) {
			return true
		}
	}
	return false
}

func evidenceHas(r playbook.Report, id, text string) bool {
	for _, f := range r.Findings {
		if string(f.ID) != id {
			continue
		}
		for _, l := range f.Evidence {
			if l.Probe == "live" && strings.Contains(l.Text, text) {
				return true
			}
		}
	}
	return false
}

func TestCheckWatchLab(t *testing.T) {
	probetest.RequireRoot(t)
	t.Run("two-nics-fabric: in on eth1, out on eth0", func(t *testing.T) {
		t.Parallel()
		r, l, out := watchCheck(t, "two-nics-fabric", 0)
		if !packetSeen(l, "eth1", "in", false, "S") || !packetSeen(l, "eth0", "out", true, "S.") {
			t.Fatalf("want the SYN in on eth1 and the SYN-ACK out on eth0:\n%s", out)
		}
		if !evidenceHas(r, "reply_wrong_egress", "eth0") {
			t.Fatalf("the packets must join reply_wrong_egress's evidence:\n%s", out)
		}
		if len(r.HandOff) == 0 || !strings.Contains(strings.Join(r.HandOff, "\n"), "tcpdump -ni eth1") {
			t.Errorf("hand-off commands: %q", r.HandOff)
		}
	})
	t.Run("firewall-ecmp fw2: SYN-ACK dropped as INVALID", func(t *testing.T) {
		t.Parallel()
		r, l, out := watchCheck(t, "firewall-ecmp", 0)
		if l.Deltas["nf_conntrack:invalid"] <= 0 || len(l.Events) != 0 || !anyReplyIn(l) {
			t.Fatalf("want the SYN-ACK in, no event, invalid rising:\n%s", out)
		}
		if !evidenceHas(r, "ct_invalid_drop", "invalid") {
			t.Fatalf("the silent-conntrack evidence must join ct_invalid_drop:\n%s", out)
		}
	})
	t.Run("mtu-blackhole server: full-sized segments sent again, unanswered", func(t *testing.T) {
		t.Parallel()
		env := upScenario(t, "mtu-blackhole")
		r, l, out := watchEnv(t, env, 0)
		c := env.Checks[0]
		// The wire first: the server sends 1500-byte segments (its link's
		// MTU) more than once, and no fragmentation-needed reaches it.
		full, frag := 0, 0
		for _, p := range l.Packets {
			if p.Reply && p.Dir == "out" && p.Len == 1500 {
				full++
			}
			if strings.Contains(p.ICMP, "frag needed") {
				frag++
			}
		}
		if full < 2 || frag != 0 || !packetSeen(l, "eth0", "out", true, "S.") {
			t.Fatalf("want the SYN-ACK and 1500-byte segments sent at least twice, no ICMP frag needed; got %d and %d:\n%s", full, frag, out)
		}
		var got []string
		for _, f := range r.Findings {
			got = append(got, string(f.ID))
		}
		sort.Strings(got)
		if !slices.Equal(got, c.Live) {
			t.Fatalf("findings with --watch %v, want %v:\n%s", got, c.Live, out)
		}
		f := r.Findings[0]
		if f.Severity != playbook.Critical || !strings.Contains(f.Title, "Proven on the wire: 1500-byte segments to 192.0.2.10") {
			t.Errorf("finding %s %q", f.Severity, f.Title)
		}
		if !evidenceHas(r, "mtu_blackhole", "no ICMP fragmentation-needed came back") || !evidenceHas(r, "mtu_blackhole", "answered") {
			t.Errorf("the evidence must show small packets answered and no ICMP back:\n%s", out)
		}
		if f.Fix == nil || len(f.Fix.Steps) != 0 || !strings.Contains(f.Fix.Advice, "mtu lock 1280") {
			t.Errorf("the fix is advice for the router, with the host-local stopgap only as text: %+v", f.Fix)
		}
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil {
			h := strings.Join(r.HandOff, "\n")
			if !strings.Contains(h, "pwru --output-tuple") || !strings.Contains(h, "retis collect") || !strings.Contains(h, "host 192.0.2.10 and host 203.0.113.10") {
				t.Errorf("with BTF the hand-off offers pwru and retis for the flow: %q", r.HandOff)
			}
		}
		if *record {
			recordWatch(t, env, c)
		}
	})
	t.Run("missing-link-route: the SYN-ACK is handed to the gateway", func(t *testing.T) {
		t.Parallel()
		r, l, out := watchCheck(t, "missing-link-route", 0)
		var synack *evidence.CapturedPacket
		for i, p := range l.Packets {
			if p.Dir == "out" && p.Flags == "S." {
				synack = &l.Packets[i]
			}
		}
		if synack == nil || synack.DstMAC == "" {
			t.Fatalf("want the SYN-ACK leaving with its frame's destination MAC:\n%s", out)
		}
		if !evidenceHas(r, "missing_link_route", "frame to "+synack.DstMAC+" (the gateway 198.51.100.1), not to 198.51.100.50") ||
			!evidenceHas(r, "missing_link_route", "lladdr "+synack.DstMAC) || !evidenceHas(r, "missing_link_route", "← the gateway's MAC") {
			t.Fatalf("the frame must join missing_link_route's evidence:\n%s", out)
		}
	})
	t.Run("healthy: a clean round trip", func(t *testing.T) {
		t.Parallel()
		r, l, out := watchCheck(t, "healthy", 0)
		if !packetSeen(l, "eth1", "in", false, "S") || !packetSeen(l, "eth1", "out", true, "S.") || packetSeen(l, "eth0", "out", true, "") {
			t.Fatalf("want the SYN and the SYN-ACK on eth1 only:\n%s", out)
		}
		if len(r.Findings) != 0 {
			t.Fatalf("a healthy flow has no findings, live or not: %v", r.Findings)
		}
		// The SYN-ACK left by eth1 while asym watched: the flow is proven to
		// work here, and only then may the report say clean.
		if r.Verdict.Verdict != playbook.VerdictClean || !r.Verdict.Answered {
			t.Fatalf("verdict %+v, want clean and answered", r.Verdict)
		}
	})
}

func anyReplyIn(l evidence.LiveEvidence) bool {
	for _, p := range l.Packets {
		if p.Reply && p.Dir == "in" && p.Flags == "S." {
			return true
		}
	}
	return false
}

// recordWatch stores the evidence of a --watch check (every probe, then the
// live window while the flow is tried) so that the analyzers can be tested
// on real packets without a kernel. It expects the check's Live findings.
func recordWatch(t *testing.T, env *lab.Env, c lab.Check) {
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
		for _, id := range s.Probes {
			col.Run(context.Background(), id)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(500 * time.Millisecond)
		env.Try(ctx, 2*time.Second)
	}()
	col.WatchLive(context.Background(), 3*time.Second)
	rec := struct {
		Scenario string            `json:"scenario"`
		Target   string            `json:"target"`
		Expect   []string          `json:"expect"`
		Evidence evidence.Evidence `json:"evidence"`
	}{env.Scenario.Name, strings.TrimPrefix(c.Target, env.Prefix) + "-watch", c.Live, col.Evidence()}
	b, err := json.MarshalIndent(rec, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	fn := filepath.Join("..", "..", "playbook", "testdata", rec.Scenario+"-"+rec.Target+".json")
	if err := os.WriteFile(fn, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("recorded %s", fn)
}

// TestCheckWatchEveryScenario: on every lab check, the packets and counters
// seen while the flow fails prove at least one of the findings the check
// expects (a line of live evidence joins it), and the healthy one stays
// silent.
func TestCheckWatchEveryScenario(t *testing.T) {
	probetest.RequireRoot(t)
	for _, sc := range lab.Scenarios() {
		t.Run(sc.Name, func(t *testing.T) {
			t.Parallel()
			env := upScenario(t, sc.Name)
			for i, c := range env.Checks {
				r, _, out := watchEnv(t, env, i)
				want := c.Expect
				if c.Live != nil {
					want = c.Live
				}
				proven := map[string]bool{}
				for _, f := range r.Findings {
					for _, l := range f.Evidence {
						if l.Probe == evidence.ProbeLive {
							proven[string(f.ID)] = true
						}
					}
				}
				t.Logf("%s: expects %v, proven live: %v", c.Target, want, proven)
				if len(want) == 0 {
					if len(r.Findings) != 0 {
						t.Errorf("%s: a healthy flow has no findings: %v", c.Target, r.Findings)
					}
					continue
				}
				proved := false
				for _, id := range want {
					proved = proved || proven[id]
				}
				if !proved {
					t.Errorf("%s: no finding of %v is proven by packets or counters:\n%s", c.Target, want, out)
				}
			}
		})
	}
}

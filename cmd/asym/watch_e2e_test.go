package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"asym/playbook"
	"asym/probes"
	"asym/probes/probetest"
)

// watchCheck runs `asym check --watch 3s --json` on a lab check while the
// scenario's flow is tried, and returns the report.
func watchCheck(t *testing.T, scenario string, check int) (playbook.Report, probes.LiveEvidence, string) {
	t.Helper()
	env := upScenario(t, scenario)
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
		HandOff []string `json:"hand_off"`
	}
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatalf("report: %v", err)
	}
	var l probes.LiveEvidence
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
	return playbook.Report{Findings: raw.Findings, HandOff: raw.HandOff}, l, out.String()
}

func packetSeen(l probes.LiveEvidence, iface, dir string, reply bool, flags string) bool {
	for _, p := range l.Packets {
		if p.Iface == iface && p.Dir == dir && p.Reply == reply && (flags == "" || p.Flags == flags) {
			return true
		}
	}
	return false
}

func evidenceHas(r playbook.Report, id, text string) bool {
	for _, f := range r.Findings {
		if f.ID != id {
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
	t.Run("healthy: a clean round trip", func(t *testing.T) {
		t.Parallel()
		r, l, out := watchCheck(t, "healthy", 0)
		if !packetSeen(l, "eth1", "in", false, "S") || !packetSeen(l, "eth1", "out", true, "S.") || packetSeen(l, "eth0", "out", true, "") {
			t.Fatalf("want the SYN and the SYN-ACK on eth1 only:\n%s", out)
		}
		if len(r.Findings) != 0 {
			t.Fatalf("a healthy flow has no findings, live or not: %v", r.Findings)
		}
	})
}

func anyReplyIn(l probes.LiveEvidence) bool {
	for _, p := range l.Packets {
		if p.Reply && p.Dir == "in" && p.Flags == "S." {
			return true
		}
	}
	return false
}

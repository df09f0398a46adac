package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/playbook"
	"asym/probes/probetest"
)

// TestPeerNATPair runs asym on the gateway that translated the flow with
// the other gateway as its peer while the flow fails: the joined report
// names which one holds the state and that the replies come back to the
// one without it, with each end's evidence.
func TestPeerNATPair(t *testing.T) {
	probetest.RequireRoot(t)
	bin := asymBinary(t)
	env := upScenario(t, "nat-gateway-pair")
	gwA, gwB := env.Prefix+"gw-a", env.Prefix+"gw-b"
	flowWords := strings.Fields(env.Checks[0].Flow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(700 * time.Millisecond) // both ends watch by then
		env.Try(ctx, 3*time.Second)
	}()
	var out, errb bytes.Buffer
	args := append([]string{"check", "--netns", gwA, "--watch", "4s", "--json", "--peer", "ip netns exec " + gwB, "--peer-asym", bin}, flowWords...)
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("exit status %d, want 1 (findings): %s\n%s", code, errb.String(), out.String())
	}
	var r peerReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	var joined *playbook.Finding
	for i, f := range r.Findings {
		if f.ID == playbook.NATStateMiss && f.Side == playbook.SideBoth {
			joined = &r.Findings[i]
		}
	}
	if joined == nil {
		t.Fatalf("no joined nat_state_miss in %v\n%s", ids(r.Findings), out.String())
	}
	if joined.Severity != playbook.Critical || !strings.Contains(joined.Title, "netns "+gwA+" (here) translated the flow and holds its state; the replies (198.18.0.10:80 → 203.0.113.10:40000) come back to netns "+gwB+" (peer), which has none") {
		t.Errorf("title %q (%s)", joined.Title, joined.Severity)
	}
	var held, none, arrived bool
	for _, l := range joined.Evidence {
		held = held || l.Side == playbook.SideHere && strings.Contains(l.Text, "[UNREPLIED]")
		none = none || l.Side == playbook.SidePeer && strings.Contains(l.Text, "no conntrack entry")
		arrived = arrived || l.Side == playbook.SidePeer && strings.Contains(l.Text, "reply packet(s) 198.18.0.10:80 → 203.0.113.10:40000 arrived on")
	}
	if !held || !none || !arrived {
		t.Errorf("evidence must show the state here, none there, and the replies arriving there: %+v", joined.Evidence)
	}
	// gw-a owns the VIP it translates away: it is in the middle of the
	// flow, and its routes are asked for the translated destination.
	out.Reset()
	args = append([]string{"collect", "--netns", gwA}, flowWords...)
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("collect: exit %d: %s", code, errb.String())
	}
	var col struct {
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(out.Bytes(), &col); err != nil {
		t.Fatal(err)
	}
	h, req := col.Evidence.Host, col.Evidence.Request
	if h == nil || h.Role != evidence.RoleMiddle || h.Translated == nil || h.Translated.Dst.String() != "198.18.0.10:80" {
		t.Fatalf("gw-a must be in the middle, translating to 198.18.0.10:80: %+v", h)
	}
	if req == nil || req.Decision.Query.Dst.String() != "198.18.0.10" || req.Egress != "eth1" {
		t.Errorf("the request's route is asked for the translated destination and leaves by eth1: %+v", req)
	}
	if *record {
		out.Reset()
		go func() {
			time.Sleep(700 * time.Millisecond)
			env.Try(ctx, 3*time.Second)
		}()
		args = append([]string{"collect", "--netns", gwA, "--watch", "4s", "--peer", "ip netns exec " + gwB, "--peer-asym", bin}, flowWords...)
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("collect --peer: exit %d: %s", code, errb.String())
		}
		if err := os.WriteFile(filepath.Join("..", "..", "playbook", "testdata", "peer", "nat-gateway-pair.json"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

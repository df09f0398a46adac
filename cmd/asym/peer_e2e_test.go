package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/playbook"
	"asym/probes/probetest"
)

// peerReport is the part of a --peer JSON report the tests read.
type peerReport struct {
	Findings []playbook.Finding `json:"findings"`
	Steps    []struct {
		ID     string            `json:"id"`
		Probes []json.RawMessage `json:"probes"`
	} `json:"steps"`
	Peer *struct {
		Command  string               `json:"command"`
		Version  string               `json:"version"`
		Host     playbook.HostSummary `json:"host"`
		Findings []playbook.Finding   `json:"findings"`
		Failure  *struct {
			Kind   string `json:"kind"`
			Reason string `json:"reason"`
		} `json:"failure"`
		Steps []struct {
			ID     string            `json:"id"`
			Probes []json.RawMessage `json:"probes"`
		} `json:"steps"`
	} `json:"peer"`
	Across []string `json:"across"`
}

func (r peerReport) finding(id string) *playbook.Finding {
	for i := range r.Findings {
		if string(r.Findings[i].ID) == id {
			return &r.Findings[i]
		}
	}
	return nil
}

func ids(fs []playbook.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.ID))
	}
	return out
}

// TestPeerLab runs one command on the client of the two-NIC scenario with
// the server as its peer (ip netns exec as the prefix, the built asym on
// the far end) while the flow is tried: the joined report must show the
// SYN-ACK leaving the server by eth0 and never reaching the client.
func TestPeerLab(t *testing.T) {
	probetest.RequireRoot(t)
	bin := asymBinary(t)
	env := upScenario(t, "two-nics-fabric")
	client, server := env.Prefix+"client", env.Prefix+"host"
	flowWords := strings.Fields(env.Checks[0].Flow)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(700 * time.Millisecond) // both ends watch by then
		env.Try(ctx, 3*time.Second)
	}()
	var out, errb bytes.Buffer
	args := append([]string{"check", "--netns", client, "--watch", "4s", "--json", "--peer", "ip netns exec " + server, "--peer-asym", bin}, flowWords...)
	code := run(args, &out, &errb)
	if code != 1 {
		t.Fatalf("exit status %d, want 1 (findings): %s\n%s", code, errb.String(), out.String())
	}
	var r peerReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	if r.Peer == nil || r.Peer.Failure != nil {
		t.Fatalf("the peer must have answered: %+v\n%s", r.Peer, errb.String())
	}
	if r.Peer.Host.Role != evidence.RoleServer || !strings.Contains(r.Peer.Command, "ip netns exec "+server) {
		t.Errorf("peer: role %q, command %q", r.Peer.Host.Role, r.Peer.Command)
	}
	peerIDs := ids(r.Peer.Findings)
	for _, want := range []string{"reply_wrong_egress", "missing_source_rule"} {
		if !slices.Contains(peerIDs, want) {
			t.Errorf("the server's own findings %v lack %s", peerIDs, want)
		}
	}
	for _, f := range r.Peer.Findings {
		if f.Side != playbook.SidePeer {
			t.Errorf("peer finding %s has side %q", f.ID, f.Side)
		}
	}
	lost := r.finding("reply_lost_in_path")
	if lost == nil {
		t.Fatalf("no reply_lost_in_path in %v\nacross: %q\n%s", ids(r.Findings), r.Across, out.String())
	}
	if lost.Side != playbook.SideBoth || !strings.Contains(lost.Title, "SYN-ACK left the server (peer) by eth0, not by eth1 where the request arrived, and never reached the client (here)") {
		t.Errorf("title %q (side %q)", lost.Title, lost.Side)
	}
	var peerOut, hereNone bool
	for _, l := range lost.Evidence {
		if l.Side == playbook.SidePeer && strings.Contains(l.Text, "eth0 Out") && strings.Contains(l.Text, "[S.]") {
			peerOut = true
		}
		if l.Side == playbook.SideHere && strings.Contains(l.Text, "no packet from 198.51.100.11:8080 arrived") {
			hereNone = true
		}
	}
	if !peerOut || !hereNone {
		t.Errorf("evidence must show the SYN-ACK leaving the peer by eth0 and nothing arriving here: %+v", lost.Evidence)
	}
	if len(r.Across) < 3 || !strings.Contains(r.Across[1], "request arrives on eth1; reply leaves by eth0") {
		t.Errorf("across: %q", r.Across)
	}
	if len(r.Peer.Steps) != len(playbook.Steps) || len(r.Peer.Steps[0].Probes) == 0 {
		t.Errorf("the peer's probes must be in the report per step: %d steps", len(r.Peer.Steps))
	}
	// collect --peer gives both ends' raw evidence in one document: the
	// join tests of package playbook replay it (-record writes it).
	go func() {
		time.Sleep(700 * time.Millisecond)
		env.Try(ctx, 3*time.Second)
	}()
	out.Reset()
	errb.Reset()
	args = append([]string{"collect", "--netns", client, "--watch", "4s", "--peer", "ip netns exec " + server, "--peer-asym", bin}, flowWords...)
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("collect --peer: exit %d: %s", code, errb.String())
	}
	var both struct {
		Evidence evidence.Evidence `json:"evidence"`
		Peer     struct {
			Collection *struct {
				Evidence evidence.Evidence `json:"evidence"`
			} `json:"collection"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(out.Bytes(), &both); err != nil || both.Peer.Collection == nil {
		t.Fatalf("collect --peer output: %v\n%s", err, out.String())
	}
	if j := playbook.Join(&both.Evidence, &both.Peer.Collection.Evidence); len(j) == 0 || j[0].ID != "reply_lost_in_path" {
		t.Errorf("joining collect --peer's two ends gives %v", ids(j))
	}
	if *record {
		if err := os.WriteFile(filepath.Join("..", "..", "playbook", "testdata", "peer", "two-nics-fabric.json"), out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The same through the Markdown notes: both ends, and which end each
	// evidence line comes from.
	out.Reset()
	errb.Reset()
	args = append([]string{"check", "--netns", client, "--markdown", "--peer", "ip netns exec " + server, "--peer-asym", bin}, flowWords...)
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("markdown: exit %d: %s", code, errb.String())
	}
	md := out.String()
	for _, want := range []string{"- peer: ", "### The peer: ", "`reply_wrong_egress` (on the peer)", "[peer route.reply]", "### Peer: First: prove it is path-related"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
}

// TestPeerBroken: a peer that cannot be run is a finding about the peer,
// with a sentence; this host's diagnosis is complete regardless.
func TestPeerBroken(t *testing.T) {
	probetest.RequireRoot(t)
	bin := asymBinary(t)
	env := upScenario(t, "two-nics-fabric")
	client, server := env.Prefix+"client", env.Prefix+"host"
	flowWords := strings.Fields(env.Checks[0].Flow)
	cases := []struct {
		name, prefix, exe, timeout string
		id, says                   string
	}{
		{"no such namespace", "ip netns exec asym-no-such-peer", bin, "20s", "peer_unreachable", "asym-no-such-peer"},
		{"no asym there", "ip netns exec " + server, "/nonexistent/asym", "20s", "peer_no_asym", `cannot run "/nonexistent/asym"`},
		{"never answers", "sh -c 'sleep 30' peer-sleeps", bin, "1s", "peer_timeout", "did not answer within 1s"},
		{"not asym output", "sh -c 'echo hello' peer-talks", bin, "20s", "peer_failed", "hello"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var out, errb bytes.Buffer
			start := time.Now()
			args := append([]string{"check", "--netns", client, "--json", "--peer", c.prefix, "--peer-asym", c.exe, "--peer-timeout", c.timeout}, flowWords...)
			code := run(args, &out, &errb)
			if code != 1 {
				t.Fatalf("exit %d, want 1: %s", code, errb.String())
			}
			if c.id == "peer_timeout" && time.Since(start) > 10*time.Second {
				t.Errorf("the timeout took %s", time.Since(start))
			}
			var r peerReport
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				t.Fatalf("report: %v", err)
			}
			f := r.finding(c.id)
			if f == nil || f.Side != playbook.SidePeer {
				t.Fatalf("want %s about the peer, got %v", c.id, ids(r.Findings))
			}
			if !strings.Contains(f.Title, c.says) || f.Fix == nil || f.Fix.Advice == "" {
				t.Errorf("finding %q must say %q and what to do: %+v", f.Title, c.says, f.Fix)
			}
			if r.Peer == nil || r.Peer.Failure == nil {
				t.Errorf("the report's peer part must carry the failure: %+v", r.Peer)
			}
			// This host's diagnosis is complete: every step's probes ran.
			for _, s := range r.Steps {
				if len(s.Probes) == 0 {
					t.Errorf("step %s has no probes: the local diagnosis must complete", s.ID)
				}
			}
		})
	}
}

// TestCollect: collect prints versioned evidence another asym reads.
func TestCollect(t *testing.T) {
	probetest.RequireRoot(t)
	env := upScenario(t, "two-nics-fabric")
	var out, errb bytes.Buffer
	if code := run(append([]string{"collect", "--json", "--netns", env.Prefix + "host"}, strings.Fields(env.Checks[0].Flow)...), &out, &errb); code != 0 {
		t.Fatalf("collect: %d %s", code, errb.String())
	}
	var c struct {
		Format   int               `json:"asym_collect"`
		Version  string            `json:"version"`
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Format != 1 || c.Version != version || c.Evidence.Host == nil || c.Evidence.Host.Role != evidence.RoleServer || c.Evidence.Reply == nil || c.Evidence.Reply.Egress != "eth0" {
		t.Fatalf("collect output: format %d version %q evidence %+v", c.Format, c.Version, c.Evidence.Host)
	}
	got := ids(playbook.Analyze(&c.Evidence, len(playbook.Steps)-1))
	slices.Sort(got)
	want := env.Checks[0].Expect
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("the evidence read back gives %v, the check expects %v", got, want)
	}
	if bytes.ContainsRune(out.Bytes(), 0x1b) {
		t.Error("collect output must carry no colour or control sequences")
	}
}

// TestPeerMTU: on the MTU black hole, both ends watched together show the
// full-sized segments leaving the server and never reaching the client while
// smaller packets do.
func TestPeerMTU(t *testing.T) {
	probetest.RequireRoot(t)
	bin := asymBinary(t)
	env := upScenario(t, "mtu-blackhole")
	client, server := env.Ends()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		time.Sleep(700 * time.Millisecond)
		env.Try(ctx, 3*time.Second)
	}()
	var out, errb bytes.Buffer
	args := append([]string{"check", "--netns", client, "--watch", "4s", "--json", "--peer", "ip netns exec " + server, "--peer-asym", bin}, strings.Fields(env.Checks[0].Flow)...)
	if code := run(args, &out, &errb); code != 1 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var r peerReport
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	var f *playbook.Finding
	for i := range r.Findings {
		if r.Findings[i].ID == "mtu_blackhole" && r.Findings[i].Side == playbook.SideBoth {
			f = &r.Findings[i]
		}
	}
	if f == nil || !strings.Contains(f.Title, "left the server (peer) and never reached the client (here)") {
		t.Fatalf("want mtu_blackhole across both ends, got %v\n%q", ids(r.Findings), r.Across)
	}
	if !slices.Contains(ids(r.Peer.Findings), "mtu_blackhole") {
		t.Errorf("the server's own packets prove it too: %v", ids(r.Peer.Findings))
	}
}

package ui

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
)

// newPeerModel opens the view on the client of the two-NIC scenario with
// the server as its peer, both from the recording of a real run; res
// decides what the peer gives.
func newPeerModel(t *testing.T, w, h int, res func(there evidence.Evidence) evidence.PeerResult) (*Model, *atomic.Int32, *atomic.Int32) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "playbook", "testdata", "peer", "two-nics-fabric.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Evidence evidence.Evidence `json:"evidence"`
		Peer     struct {
			Collection evidence.Collection `json:"collection"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	rp := &replay{all: doc.Evidence, seen: evidence.Evidence{Flow: doc.Evidence.Flow}}
	var peerRuns, applied atomic.Int32
	f := rp.all.Flow
	m := New(Options{Session: &fakeSession{
		newProber: func(flow.Flow) evidence.Prober { return rp },
		info:      evidence.TargetInfo{Target: "netns asym-lab-client", Prefix: []string{"ip", "netns", "exec", "asym-lab-client"}, Hostname: "vm", Kernel: "6.18.44"},
		peerCmd:   "ip netns exec asym-lab-host",
		peer: func(_ context.Context, got flow.Flow, _ time.Duration) evidence.PeerResult {
			peerRuns.Add(1)
			if got != f {
				t.Errorf("the peer was asked about %v, not %v", got, f)
			}
			return res(doc.Peer.Collection.Evidence)
		},
		apply: func(context.Context, flow.Flow, string, []string) (*playbook.FixOutcome, error) {
			applied.Add(1)
			return nil, nil
		}},
		Flow: &f, Plain: true, Now: fixedNow,
		NotesPath: filepath.Join(t.TempDir(), "notes.md"), HistoryPath: filepath.Join(t.TempDir(), "flows"),
	})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	return m, &peerRuns, &applied
}

func answered(there evidence.Evidence) evidence.PeerResult {
	return evidence.PeerResult{Prefix: []string{"ip", "netns", "exec", "asym-lab-host"},
		Command:    []string{"ip", "netns", "exec", "asym-lab-host", "asym", "collect", "--json", "--", "tcp", "203.0.113.10:40000", "198.51.100.11:8080"},
		Collection: &evidence.Collection{Format: evidence.CollectFormat, Version: "test", Evidence: there}}
}

func TestPeerBothEnds(t *testing.T) {
	m, runs, applied := newPeerModel(t, 80, 24, answered)
	if !strings.Contains(m.Render(), "peer collected when the First step runs") {
		t.Errorf("before any step the header says when the peer runs:\n%s", m.Render())
	}
	press(t, m, "a")
	if runs.Load() != 1 {
		t.Fatalf("the peer ran %d times for one run of all steps", runs.Load())
	}
	var peerIDs []string
	for _, f := range m.findings {
		if f.Side == playbook.SidePeer {
			peerIDs = append(peerIDs, string(f.ID))
		}
	}
	if !slices.Contains(peerIDs, "reply_wrong_egress") || !slices.Contains(peerIDs, "missing_source_rule") {
		t.Fatalf("the server's findings must be listed, marked as the peer's: %v", peerIDs)
	}
	m.sel, m.showFind = 0, false
	screen := m.Render()
	for _, want := range []string{"peer ✓ vm", "── here: vm · netns asym-lab-client", "on the peer:", "CRIT reply_wrong_egress"} {
		if !strings.Contains(screen, want) {
			t.Errorf("80 columns: screen lacks %q:\n%s", want, screen)
		}
	}
	// Stacked at 80 columns: the peer's heading comes after this host's
	// probes, on a line of its own.
	lines := m.stepLines(0, 60)
	hereAt, peerAt := -1, -1
	for i, l := range lines {
		if strings.HasPrefix(l, "── here") {
			hereAt = i
		}
		if strings.HasPrefix(l, "── peer") {
			peerAt = i
		}
	}
	if hereAt < 0 || peerAt <= hereAt+3 {
		t.Errorf("stacked: here at %d, peer at %d", hereAt, peerAt)
	}
	joined := strings.Join(lines, "\n")
	if !strings.Contains(joined, "via 198.51.100.1 dev eth0") || !strings.Contains(joined, "── peer: vm") {
		t.Errorf("the peer's reply route must be shown in the First step:\n%s", joined)
	}
	// Side by side at 160 columns: both headings on one line.
	m.Update(tea.WindowSizeMsg{Width: 180, Height: 50})
	wide := m.stepLines(0, 180-37)
	side := false
	for _, l := range wide {
		if strings.Contains(l, "── here") && strings.Contains(l, "── peer") {
			side = true
		}
	}
	if !side {
		t.Errorf("wide: the two ends must be side by side:\n%s", strings.Join(wide, "\n"))
	}

	// A peer finding's fix is never applied from here.
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	for i, f := range m.findings {
		if f.Side == playbook.SidePeer && f.ID == "reply_wrong_egress" {
			m.fsel = i
		}
	}
	m.showFind, m.focus = true, paneDetail
	press(t, m, "f")
	m.fix.openedAt = fixedNow().Add(-grace * 2)
	press(t, m, "enter")
	if applied.Load() != 0 || m.fix.confirming || !strings.Contains(m.flash, "is on the peer") {
		t.Fatalf("enter on the peer's finding: applied %d, confirming %v, flash %q", applied.Load(), m.fix.confirming, m.flash)
	}
	if !strings.Contains(m.Render(), "ip netns exec asym-lab-host ip route") || strings.Contains(m.Render(), "asym-lab-client ip route") {
		t.Errorf("the peer's fix is shown behind the --peer words, never this host's prefix:\n%s", m.Render())
	}

	// Notes carry both ends.
	md := string(m.notesMarkdown())
	for _, want := range []string{"- peer: vm", "### The peer: ", "`reply_wrong_egress` (on the peer)", "[peer route.reply]", "### Peer: First: prove it is path-related"} {
		if !strings.Contains(md, want) {
			t.Errorf("notes lack %q", want)
		}
	}

	// Re-running the First step collects the peer again.
	m.sel, m.focus, m.showFind, m.showFix = 0, paneSteps, false, false
	press(t, m, "r")
	if runs.Load() != 2 {
		t.Errorf("r on the First step: the peer ran %d times in all, want 2", runs.Load())
	}
}

func TestPeerFailureInView(t *testing.T) {
	m, _, _ := newPeerModel(t, 80, 24, func(evidence.Evidence) evidence.PeerResult {
		return evidence.PeerResult{Command: []string{"ssh", "db1", "sudo", "asym", "collect"},
			Failure: &evidence.PeerFailure{Kind: evidence.PeerUnreachable, Reason: "ssh could not reach the peer: connect to host db1 port 22: Connection refused", ExitCode: 255}}
	})
	press(t, m, "a")
	for i, s := range m.steps {
		if s.status != stepClean && s.status != stepFinding {
			t.Fatalf("step %d did not complete: the local diagnosis must not depend on the peer", i)
		}
	}
	if !slices.Contains(findingIDs(m), "peer_unreachable") {
		t.Fatalf("findings %v lack peer_unreachable", findingIDs(m))
	}
	if s := m.Render(); !strings.Contains(s, "peer ✗ not diagnosed: ssh could not reach the peer") {
		t.Errorf("header:\n%s", s)
	}
}

func TestPeerGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 40}} {
		w, h := size[0], size[1]
		m, _, _ := newPeerModel(t, w, h, answered)
		press(t, m, "a")
		m.sel, m.showFind, m.focus, m.scroll = 0, false, paneSteps, 0
		t.Run("peer-first-"+itoa(w)+"x"+itoa(h), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
	}
}

// TestPeerLiveBothEnds: opening the live view also watches the flow on the
// peer; when it answers, packets seen on one end and not the other become
// a finding across both ends.
func TestPeerLiveBothEnds(t *testing.T) {
	var watched time.Duration
	m, runs, _ := newPeerModel(t, 120, 40, answered)
	inner := sess(m).peer
	sess(m).peer = func(ctx context.Context, f flow.Flow, w time.Duration) evidence.PeerResult {
		watched = w
		return inner(ctx, f, w)
	}
	press(t, m, "a")
	if slices.Contains(findingIDs(m), "reply_lost_in_path") {
		t.Fatal("without this host's packets nothing is lost yet")
	}
	b, _ := os.ReadFile(filepath.Join("..", "playbook", "testdata", "peer", "two-nics-fabric.json"))
	var doc struct {
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Evidence.Live == nil {
		t.Fatalf("recording: %v", err)
	}
	here := doc.Evidence.Live
	calls := 0
	m.opt.Now = func() time.Time { // the live view opens at the recording's start; analysis runs at its end
		calls++
		if calls == 1 {
			return here.Start
		}
		return here.End
	}
	watch := make(chan evidence.WatchUpdate)
	capture := make(chan evidence.CaptureUpdate, 1)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return watch }
	sess(m).capture = func(context.Context, flow.Flow) <-chan evidence.CaptureUpdate { return capture }
	capture <- evidence.CaptureUpdate{Packets: here.Packets}
	close(capture)
	close(watch)
	press(t, m, "l")
	if runs.Load() != 2 || watched != peerWatch {
		t.Fatalf("the live view must watch on the peer too: %d runs, last window %s", runs.Load(), watched)
	}
	if !slices.Contains(findingIDs(m), "reply_lost_in_path") {
		t.Fatalf("findings %v lack reply_lost_in_path", findingIDs(m))
	}
}

// TestPeerRunsAreStopped: a run superseded by another, or still going when
// the person quits, is cancelled (its process group is killed by Collect).
func TestPeerRunsAreStopped(t *testing.T) {
	m, _, _ := newPeerModel(t, 80, 24, answered)
	var ctxs []context.Context
	sess(m).peer = func(ctx context.Context, _ flow.Flow, _ time.Duration) evidence.PeerResult {
		ctxs = append(ctxs, ctx)
		return evidence.PeerResult{}
	}
	first, second := m.runPeer(0), m.runPeer(0)
	first()
	if ctxs[0].Err() == nil {
		t.Error("a superseded run must be cancelled")
	}
	second()
	if ctxs[1].Err() != nil {
		t.Error("the current run must not be cancelled")
	}
	third := m.runPeer(0)
	m.quit()
	third()
	if ctxs[2].Err() == nil {
		t.Error("quitting must cancel the run in progress")
	}
}

package ui

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
	"asym/playbook"
)

// replay is a Prober that hands out evidence recorded from a lab scenario
// on a real kernel, one probe at a time, as the collector would.
type replay struct {
	mu   sync.Mutex
	all  evidence.Evidence
	seen evidence.Evidence
	runs []evidence.ProbeID
}

func loadReplay(t *testing.T, name string) (*replay, []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "playbook", "testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Expect   []string          `json:"expect"`
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return &replay{all: rec.Evidence, seen: evidence.Evidence{Flow: rec.Evidence.Flow}}, rec.Expect
}

func (r *replay) Run(_ context.Context, id evidence.ProbeID) evidence.Reporter {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs = append(r.runs, id)
	a, s := &r.all, &r.seen
	switch id {
	case evidence.ProbeHost:
		s.Host = a.Host
		return a.Host
	case evidence.ProbeRequest:
		s.Host, s.Request = a.Host, a.Request
		return a.Request
	case evidence.ProbeReply:
		s.Reply = a.Reply
		return a.Reply
	case evidence.ProbeCounters:
		s.Counters = a.Counters
		return a.Counters
	case evidence.ProbeFirewall:
		s.Firewall = a.Firewall
		return a.Firewall
	case evidence.ProbeConntrack:
		s.Conntrack = a.Conntrack
		return a.Conntrack
	case evidence.ProbeRules:
		s.Rules = a.Rules
		return a.Rules
	case evidence.ProbeTables:
		s.Tables = a.Tables
		return a.Tables
	case evidence.ProbeSysctls:
		s.Sysctls = a.Sysctls
		return a.Sysctls
	case evidence.ProbeNeighbours:
		s.Neighbours = a.Neighbours
		return a.Neighbours
	}
	return &evidence.Report{Probe: id, Status: evidence.StatusFailed, Reason: "unknown"}
}

func (r *replay) Evidence() evidence.Evidence {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen
}

var fixedNow = func() time.Time { return time.Date(2026, 11, 24, 2, 13, 0, 0, time.UTC) }

func newTestModel(t *testing.T, scenario string, w, h int) (*Model, *replay, []string) {
	t.Helper()
	rp, expect := loadReplay(t, scenario)
	f := rp.all.Flow
	m := New(Options{
		Session: &fakeSession{newProber: func(flow.Flow) evidence.Prober { return rp },
			info: evidence.TargetInfo{Target: "netns asym-lab-host", Prefix: []string{"ip", "netns", "exec", "asym-lab-host"}, Hostname: "vm", Kernel: "6.18.44"}},
		Flow: &f, Plain: true, Now: fixedNow,
		NotesPath: filepath.Join(t.TempDir(), "notes.md"), HistoryPath: filepath.Join(t.TempDir(), "flows"),
	})
	m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	m.tick = func(_ time.Duration, fn func(time.Time) tea.Msg) tea.Cmd {
		return func() tea.Msg { return fn(time.Time{}) }
	}
	return m, rp, expect
}

// drain executes a command and everything it leads to, feeding messages
// back into the model like the runtime does (spinner ticks are dropped:
// they only animate).
func drain(t *testing.T, m *Model, cmd tea.Cmd) []tea.Msg {
	t.Helper()
	var out []tea.Msg
	queue := []tea.Cmd{cmd}
	for n := 0; len(queue) > 0; n++ {
		if n > 1000 {
			t.Fatal("commands do not settle")
		}
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := c()
		switch msg := msg.(type) {
		case tea.BatchMsg:
			queue = append(queue, msg...)
			continue
		case spinner.TickMsg, countdownMsg:
			continue // animation and the one-second countdown: tests drive them
		}
		out = append(out, msg)
		_, next := m.Update(msg)
		queue = append(queue, next)
	}
	return out
}

func press(t *testing.T, m *Model, keys ...string) []tea.Msg {
	t.Helper()
	var out []tea.Msg
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "tab":
			msg = tea.KeyPressMsg{Code: tea.KeyTab}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "up":
			msg = tea.KeyPressMsg{Code: tea.KeyUp}
		case "down":
			msg = tea.KeyPressMsg{Code: tea.KeyDown}
		case "ctrl+c":
			msg = tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
		default:
			msg = tea.KeyPressMsg{Code: rune(k[0]), Text: k}
		}
		_, cmd := m.Update(msg)
		out = append(out, drain(t, m, cmd)...)
	}
	return out
}

func findingIDs(m *Model) []string {
	var ids []string
	for _, f := range m.findings {
		ids = append(ids, string(f.ID))
	}
	slices.Sort(ids)
	return ids
}

func TestStepThrough(t *testing.T) {
	m, rp, expect := newTestModel(t, "two-nics-strict-host", 120, 40)
	if m.anyRun() || len(rp.runs) != 0 {
		t.Fatal("nothing may run before the person asks")
	}
	press(t, m, "enter")
	if m.steps[0].status != stepFinding || m.steps[1].status != stepNotRun {
		t.Fatalf("after enter: step statuses %v %v", m.steps[0].status, m.steps[1].status)
	}
	if got := findingIDs(m); !slices.Equal(got, []string{"reply_wrong_egress", "rp_filter_strict_drop"}) {
		t.Fatalf("first step findings %v", got)
	}
	if want := playbook.Steps[0].Probes; !slices.Equal(rp.runs, want) {
		t.Fatalf("ran %v, want %v", rp.runs, want)
	}
	press(t, m, "enter")
	if m.steps[1].status != stepClean || m.sel != 1 {
		t.Fatalf("second step: %v, selected %d", m.steps[1].status, m.sel)
	}
	press(t, m, "a")
	for i, s := range m.steps {
		if s.status != stepClean && s.status != stepFinding {
			t.Fatalf("step %d not done after a: %v", i, s.status)
		}
	}
	if got := findingIDs(m); !slices.Equal(got, expect) {
		t.Fatalf("findings %v, want %v", got, expect)
	}
	screen := m.Render()
	for _, want := range []string{"rp_filter_strict_drop", "▶ RTNETLINK answers: Invalid argument", "4 finding(s): tab to them"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
}

func TestFindingAndFix(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	press(t, m, "a", "tab")
	if m.focus != paneFindings {
		t.Fatalf("tab must focus the findings, focus %d", m.focus)
	}
	press(t, m, "enter")
	if !m.showFind || m.findings[m.fsel].ID != "missing_source_rule" {
		t.Fatalf("enter on the findings shows the first one, the root cause: %v %d", m.showFind, m.fsel)
	}
	press(t, m, "esc", "down", "enter")
	if !m.showFind || m.findings[m.fsel].ID != "rp_filter_strict_drop" {
		t.Fatalf("↓ enter shows the second one, the drop it explains: %v %d", m.showFind, m.fsel)
	}
	screen := m.Render()
	for _, want := range []string{"Evidence", "IPReversePathFilter", "Why", "strict"} {
		if !strings.Contains(screen, want) {
			t.Errorf("finding view lacks %q", want)
		}
	}
	press(t, m, "f")
	screen = m.Render()
	if !strings.Contains(screen, "ip netns exec asym-lab-host ip rule add from 198.51.100.11 lookup 100") {
		t.Errorf("the fix must be shown with the namespace prefix:\n%s", screen)
	}
	press(t, m, "esc", "esc")
	if m.showFix || m.showFind {
		t.Fatal("esc goes back")
	}
}

func TestStaleResultsAreDropped(t *testing.T) {
	m, _, _ := newTestModel(t, "healthy-host", 80, 24)
	first := m.runStep(0)
	_ = first
	old := m.steps[0].runID
	m.runStep(0) // r again before the first run answered
	m.Update(probeDoneMsg{step: 0, idx: 0, runID: old, rep: &evidence.Report{Probe: "host", Status: evidence.StatusOK}})
	if m.steps[0].probes[0].rep != nil {
		t.Fatal("a result of a superseded run must be dropped")
	}
}

func TestNotesAndClipboard(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	press(t, m, "a", "e")
	b, err := os.ReadFile(m.opt.NotesPath)
	if err != nil {
		t.Fatalf("notes: %v (flash %q)", err, m.flash)
	}
	notes := string(b)
	for _, want := range []string{"## asym: `tcp 203.0.113.10:40000 → 198.51.100.11:8080`", "2026-11-24T02:13:00Z", "rp_filter_strict_drop", "ip netns exec asym-lab-host ip rule add"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes lack %q", want)
		}
	}
	press(t, m, "e")
	b, _ = os.ReadFile(m.opt.NotesPath)
	if strings.Count(string(b), "## asym:") != 2 || !strings.HasPrefix(string(b), notes) {
		t.Fatal("a second export appends and keeps what was there")
	}
	// A failed write keeps the notes and says so.
	m.opt.NotesPath = filepath.Join(t.TempDir(), "no", "such", "dir", "n.md")
	press(t, m, "e")
	if !m.flashErr || !strings.Contains(m.flash, "kept") {
		t.Fatalf("failed write: flash %q", m.flash)
	}
	_, cmd := m.Update(tea.KeyPressMsg{Code: 'y', Text: "y"})
	if cmd == nil || !strings.Contains(m.flash, "OSC 52") {
		t.Fatal("y copies with OSC 52")
	}
}

func TestHelpAndQuit(t *testing.T) {
	m, _, _ := newTestModel(t, "healthy-host", 80, 24)
	press(t, m, "?")
	if !m.help || !strings.Contains(m.Render(), "OSC 52") {
		t.Fatal("? shows the help")
	}
	press(t, m, "esc")
	if m.help {
		t.Fatal("esc closes the help")
	}
	for _, k := range []string{"q", "ctrl+c"} {
		msgs := press(t, m, k)
		if len(msgs) == 0 {
			t.Fatalf("%s must quit", k)
		}
		if _, ok := msgs[len(msgs)-1].(tea.QuitMsg); !ok {
			t.Fatalf("%s: got %T", k, msgs[len(msgs)-1])
		}
	}
}

func TestForm(t *testing.T) {
	hist := filepath.Join(t.TempDir(), "flows")
	old, _ := flow.ParseString("udp 192.0.2.1:5353 192.0.2.53:53")
	RememberFlow(hist, "host namespace", old)
	other, _ := flow.ParseString("tcp 192.0.2.7:1 192.0.2.8:2")
	RememberFlow(hist, "netns other", other) // another target's flows are not offered here
	var made []flow.Flow
	rp, _ := loadReplay(t, "healthy-host")
	m := New(Options{Session: &fakeSession{newProber: func(f flow.Flow) evidence.Prober { made = append(made, f); return rp }, info: evidence.TargetInfo{Hostname: "vm", Target: "host namespace"}},
		HistoryPath: hist, Plain: true, Now: fixedNow})
	if m.form == nil {
		t.Fatal("without a flow the form asks for one")
	}
	press(t, m, "tab")
	for _, r := range "192.0.2.1:99999" {
		press(t, m, string(r))
	}
	press(t, m, "tab")
	for _, r := range "192.0.2.9:80" {
		press(t, m, string(r))
	}
	if !strings.Contains(m.form.err, "1 to 65535") {
		t.Fatalf("validation as you type, same sentence as the CLI: %q", m.form.err)
	}
	press(t, m, "enter")
	if m.form == nil || len(made) != 0 {
		t.Fatal("an invalid flow is not accepted")
	}
	press(t, m, "up")
	if got := strings.Join(m.form.words(), " "); got != "udp 192.0.2.1:5353 192.0.2.53:53" {
		t.Fatalf("↑ offers the last flow: %q", got)
	}
	press(t, m, "enter")
	if m.form != nil || len(made) != 1 || made[0] != old {
		t.Fatalf("enter diagnoses the flow: %v", made)
	}
}

func TestScreenIsSanitized(t *testing.T) {
	rp, _ := loadReplay(t, "two-nics-strict-host")
	rp.all.Host.Ifaces[1].Name = "eth\x1b[2J0"
	rp.all.Reply.Lines = append(rp.all.Reply.Lines, "evil \x1b]52;c;AAAA\x07 line")
	f := rp.all.Flow
	m := New(Options{Session: &fakeSession{newProber: func(flow.Flow) evidence.Prober { return rp }, info: evidence.TargetInfo{Hostname: "h\x1b[31mx"}}, Flow: &f, Plain: true, Now: fixedNow})
	press(t, m, "a")
	for _, screen := range []string{m.Render(), string(m.notesMarkdown())} {
		if strings.ContainsAny(screen, "\x1b\x07") {
			t.Fatalf("control characters reach the screen or notes: %q", screen)
		}
	}
}

func TestLiveView(t *testing.T) {
	m, _, _ := newTestModel(t, "firewall-ecmp-fw2", 120, 40)
	ch := make(chan evidence.WatchUpdate, 4)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return ch }
	t0 := fixedNow()
	ch <- evidence.WatchUpdate{Sample: &evidence.Sample{Time: t0, Counters: map[string]uint64{"nf_conntrack:invalid": 2, "rule:inet filter forward #2": 2}}}
	ch <- evidence.WatchUpdate{Sample: &evidence.Sample{Time: t0.Add(time.Second), Counters: map[string]uint64{"nf_conntrack:invalid": 5, "rule:inet filter forward #2": 5}}, Dropped: 3}
	close(ch)
	press(t, m, "l")
	screen := m.Render()
	for _, want := range []string{"Live:", "conntrack invalid", "+3.0", "3 dropped", "inet filter forward #2 (rule counter)", "the live stream has ended"} {
		if !strings.Contains(screen, want) {
			t.Errorf("live view lacks %q:\n%s", want, screen)
		}
	}
	if !strings.Contains(string(m.notesMarkdown()), "### Live view") {
		t.Error("the notes include the live view")
	}
	// The Third step shows the live evidence too.
	press(t, m, "l") // back to the step view
	m.sel = 2
	if screen := m.Render(); !strings.Contains(screen, "Third: confirm") || !strings.Contains(screen, "conntrack invalid") {
		t.Errorf("the Third step shows the live counters:\n%s", screen)
	}
}

func TestGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		w, h := size[0], size[1]
		name := func(s string) string { return s + "-" + itoa(w) + "x" + itoa(h) }
		m, _, _ := newTestModel(t, "two-nics-strict-host", w, h)
		m.opt.NotesPath = "asym-vm-20261124T021300Z.md" // shown in the help; never written here
		t.Run(name("start"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
		press(t, m, "a")
		t.Run(name("all-steps"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
		press(t, m, "tab", "enter")
		t.Run(name("finding"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
		press(t, m, "f")
		t.Run(name("fix"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
		press(t, m, "?")
		t.Run(name("help"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })
		mf := New(Options{Session: &fakeSession{newProber: func(flow.Flow) evidence.Prober { return nil }, info: evidence.TargetInfo{Hostname: "vm", Target: "host namespace"}},
			Plain: true, Now: fixedNow, HistoryPath: filepath.Join(t.TempDir(), "x")})
		mf.Update(tea.WindowSizeMsg{Width: w, Height: h})
		t.Run(name("form"), func(t *testing.T) { golden.RequireEqual(t, []byte(mf.Render())) })
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestFixPaneApply(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	now := fixedNow()
	m.opt.Now = func() time.Time { return now }
	var applied []string
	var decided []bool
	sess(m).apply = func(_ context.Context, f flow.Flow, id string, shown []string) (*playbook.FixOutcome, error) {
		applied = append(applied, id)
		if len(shown) != 3 || !strings.HasPrefix(shown[2], "ip rule add from 198.51.100.11") {
			t.Errorf("the commands on screen are handed over for the drift check: %q", shown)
		}
		return &playbook.FixOutcome{Changes: 3, Deadline: now.Add(60 * time.Second), Watchdog: "process 1 in its own session",
			Before: m.findings, Fixed: []playbook.FindingID{playbook.FindingID(id)},
			Pending: &playbook.PendingFix{Summary: "Source-based routing for 198.51.100.11", Applied: now, Deadline: now.Add(60 * time.Second),
				Undo: []string{"ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100 priority 1000"}}}, nil
	}
	sess(m).decide = func(_ context.Context, keep bool) error { decided = append(decided, keep); return nil }
	press(t, m, "a", "f")
	if !m.showFix || m.findings[m.fsel].ID != "missing_source_rule" {
		t.Fatalf("f from the steps shows the root cause's fix: %v %s", m.showFix, m.findings[m.fsel].ID)
	}
	// enter typed right after the pane opened: nothing happens.
	press(t, m, "enter", "y")
	if m.fix.confirming || len(applied) != 0 {
		t.Fatal("keys typed within the grace period must not confirm or apply")
	}
	now = now.Add(time.Second)
	press(t, m, "enter")
	if !m.fix.confirming || !strings.Contains(m.Render(), "Apply these 3 changes to netns asym-lab-host?") {
		t.Fatalf("enter asks for confirmation:\n%s", m.Render())
	}
	press(t, m, "y")
	if !m.fix.confirming || len(applied) != 0 {
		t.Fatal("y typed right after the confirmation opened must not apply")
	}
	now = now.Add(time.Second)
	press(t, m, "y")
	if len(applied) != 1 || applied[0] != "missing_source_rule" || m.fix.outcome == nil || m.fix.pending == nil {
		t.Fatalf("y applies once: %v", applied)
	}
	if screen := m.Render(); !strings.Contains(screen, "!! FIX PENDING: reverts in 1m0s unless kept · K keep · U revert now") {
		t.Fatalf("the banner asks to keep:\n%s", screen)
	}
	// The re-check ran (drained) and its findings are the outcome's after.
	if m.fix.rechecking || m.fix.outcome.After == nil || !m.allRan() {
		t.Fatalf("the steps ran again after the fix: rechecking %v, after %v", m.fix.rechecking, m.fix.outcome.After)
	}
	now = now.Add(20 * time.Second)
	m.Update(countdownMsg{})
	if !strings.Contains(m.Render(), "reverts in 40s unless kept") {
		t.Fatalf("the countdown counts down:\n%s", m.Render())
	}
	press(t, m, "y")
	if !strings.Contains(m.flash, "copy is off while a fix waits") {
		t.Errorf("y says why it does not copy: %q", m.flash)
	}
	press(t, m, "n", "enter")
	if len(decided) != 0 || m.fix.pending == nil || m.fix.confirming {
		t.Fatalf("y, n and enter neither keep, revert nor apply again: %v", decided)
	}
	press(t, m, "K")
	if len(decided) != 1 || !decided[0] || m.fix.result != "kept" || m.fix.pending != nil {
		t.Fatalf("K keeps: %v %q", decided, m.fix.result)
	}
	screen := m.Render()
	if strings.Contains(screen, "FIX PENDING") || !strings.Contains(screen, "The fix was kept at 02:13:22.") ||
		!strings.Contains(screen, "ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100") {
		t.Fatalf("a kept fix: no banner, its undo commands in the fix view:\n%s", screen)
	}
	notes := string(m.notesMarkdown())
	for _, want := range []string{"- done: the fix of `missing_source_rule` applied", "kept at 02:13:22 UTC",
		"### The fix", "ip netns exec asym-lab-host ip rule add from 198.51.100.11", "Undo (the last change first):"} {
		if !strings.Contains(notes, want) {
			t.Errorf("the notes record what was applied (%q):\n%s", want, notes)
		}
	}
	// The fix is still found (this fake heals nothing): its commands are
	// written once, where it was applied, and the findings name it.
	if n := strings.Count(notes, "ip rule add from 198.51.100.11 lookup 100"); n != 1 || !strings.Contains(notes, "applied from the view (see The fix above)") {
		t.Errorf("the fix is written %d times, want once:\n%s", n, notes)
	}
	wellFormed(t, parseMarkdown(t, []byte(notes)))
}

func TestFixPaneRevertsAndRefuses(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	now := fixedNow()
	m.opt.Now = func() time.Time { return now }
	sess(m).apply = func(context.Context, flow.Flow, string, []string) (*playbook.FixOutcome, error) {
		return &playbook.FixOutcome{Changes: 3, Deadline: now.Add(10 * time.Second)}, nil
	}
	sess(m).decide = func(context.Context, bool) error { return nil }
	press(t, m, "a", "tab", "enter", "f")
	now = now.Add(time.Second)
	press(t, m, "enter")
	now = now.Add(time.Second)
	press(t, m, "y")
	now = now.Add(11 * time.Second)
	_, cmd := m.Update(countdownMsg{})
	drain(t, m, cmd) // the journal (the fake's: nothing pending) is read at the deadline
	if m.fix.result != "no longer pending" || m.fix.pending != nil {
		t.Fatalf("past the deadline, with the journal saying nothing is pending, the fix has ended: %q", m.fix.result)
	}
	if !strings.Contains(m.flash, "the watchdog reverted it at its deadline, or someone decided it") || !m.allRan() || m.stale(0) {
		t.Fatalf("it says so and runs the steps again: %q", m.flash)
	}
	// A finding whose fix is advice has no apply.
	m2, _, _ := newTestModel(t, "firewall-ecmp-fw2", 120, 40)
	sess(m2).apply = sess(m).apply
	m2.opt.Now = func() time.Time { return now }
	press(t, m2, "a", "tab", "enter", "f")
	now = now.Add(time.Second)
	press(t, m2, "enter")
	if m2.fix.confirming || !strings.Contains(m2.flash, "no host-local fix") {
		t.Fatalf("advice cannot be applied: %q", m2.flash)
	}
}

// TestLiveViewJoinsFindings: packets the live view sees become evidence of
// the findings at once, as with check --watch.
func TestLiveViewJoinsFindings(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-fabric-host", 120, 40)
	press(t, m, "a")
	b, err := os.ReadFile(filepath.Join("..", "playbook", "testdata", "peer", "two-nics-fabric.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Peer struct {
			Collection struct {
				Evidence evidence.Evidence `json:"evidence"`
			} `json:"collection"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.Peer.Collection.Evidence.Live == nil {
		t.Fatalf("recording: %v", err)
	}
	watch := make(chan evidence.WatchUpdate)
	capture := make(chan evidence.CaptureUpdate, 1)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return watch }
	sess(m).capture = func(context.Context, flow.Flow) <-chan evidence.CaptureUpdate { return capture }
	capture <- evidence.CaptureUpdate{Packets: doc.Peer.Collection.Evidence.Live.Packets}
	close(capture)
	close(watch)
	press(t, m, "l")
	var live []string
	for _, f := range m.findings {
		for _, l := range f.Evidence {
			if l.Probe == evidence.ProbeLive {
				live = append(live, string(f.ID)+": "+l.Text)
			}
		}
	}
	joined := strings.Join(live, "\n")
	if !strings.Contains(joined, "reply_wrong_egress: ") || !strings.Contains(joined, "eth0 Out") {
		t.Fatalf("the live packets must join reply_wrong_egress's evidence, got:\n%s", joined)
	}
}

// TestFixConfirmFollowsTheFinding: findings are re-analyzed while the
// confirmation is open (live packets, the peer); y applies the finding the
// confirmation was opened for, looked up by id, and refuses when its fix
// changed meanwhile.
func TestFixConfirmFollowsTheFinding(t *testing.T) {
	for _, changed := range []bool{false, true} {
		m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
		now := fixedNow()
		m.opt.Now = func() time.Time { return now }
		var applied []string
		sess(m).apply = func(_ context.Context, _ flow.Flow, id string, _ []string) (*playbook.FixOutcome, error) {
			applied = append(applied, id)
			return &playbook.FixOutcome{Changes: 1, Deadline: now.Add(time.Minute)}, nil
		}
		sess(m).decide = func(context.Context, bool) error { return nil }
		press(t, m, "a", "tab")
		for i, f := range m.findings {
			if f.ID == "arp_flux" {
				m.fsel = i
			}
		}
		press(t, m, "enter", "f")
		now = now.Add(time.Second)
		press(t, m, "enter")
		if !m.fix.confirming || m.fix.confirmID != "arp_flux" {
			t.Fatalf("confirming %v for %q", m.fix.confirming, m.fix.confirmID)
		}
		// New evidence: a finding sorts in front, the cursor now points
		// at another one.
		m.findings = append([]playbook.Finding{{ID: "mtu_blackhole", Severity: playbook.Critical, Step: "third", Fix: &fix.Fix{Summary: "x"}}}, m.findings...)
		if changed {
			for i := range m.findings {
				if m.findings[i].ID == "arp_flux" {
					fx := *m.findings[i].Fix
					fx.Steps = fx.Steps[:1]
					m.findings[i].Fix = &fx
				}
			}
		}
		now = now.Add(time.Second)
		press(t, m, "y")
		switch {
		case changed && (len(applied) != 0 || !strings.Contains(m.flash, "arp_flux changed while you read it")):
			t.Errorf("a fix that changed under the confirmation: applied %v, flash %q", applied, m.flash)
		case !changed && (len(applied) != 1 || applied[0] != "arp_flux"):
			t.Errorf("y must apply the confirmed finding arp_flux, applied %v", applied)
		}
	}
}

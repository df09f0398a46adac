package ui

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/exp/golden"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
)

// send delivers one key and returns its command without running it, so a
// test can act while the command is in flight (an apply, a re-check).
func send(m *Model, k string) tea.Cmd {
	var msg tea.KeyPressMsg
	switch k {
	case "enter":
		msg = tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		msg = tea.KeyPressMsg{Code: tea.KeyEscape}
	default:
		msg = tea.KeyPressMsg{Code: rune(k[0]), Text: k}
	}
	_, cmd := m.Update(msg)
	return cmd
}

// fixModel is the two-NIC host with every step run and fixes that apply:
// clock moves the time, applied and decided record the calls.
type fixModel struct {
	*Model
	now     time.Time
	applied []string
	decided []bool
	undone  int
}

func newFixModel(t *testing.T, w, h int) *fixModel {
	t.Helper()
	m, rp, _ := newTestModel(t, "two-nics-strict-host", w, h)
	healthy, _ := loadReplay(t, "healthy-host")
	broken := rp.all
	// The host heals when the fix is applied, and breaks again when it is
	// reverted: the healthy scenario's evidence stands for the fixed host.
	swap := func(ev evidence.Evidence) {
		rp.mu.Lock()
		defer rp.mu.Unlock()
		ev.Flow = broken.Flow
		rp.all = ev
	}
	fm := &fixModel{Model: m, now: fixedNow()}
	m.opt.Now = func() time.Time { return fm.now }
	m.opt.Operator = "alice"
	sess(m).apply = func(_ context.Context, _ flow.Flow, id string, shown []string) (*playbook.FixOutcome, error) {
		fm.applied = append(fm.applied, id)
		swap(healthy.all)
		return &playbook.FixOutcome{Changes: len(shown), Deadline: fm.now.Add(time.Minute), Watchdog: "process 4242 in its own session",
			Before: m.findings, Fixed: []playbook.FindingID{playbook.FindingID(id)},
			Pending: &playbook.PendingFix{Summary: "Source-based routing for 198.51.100.11: table 100 sends its traffic by eth1", Applied: fm.now,
				Deadline: fm.now.Add(time.Minute), Watchdog: "process 4242 in its own session",
				Undo: []string{
					"ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100 priority 1000 proto 245",
					"ip netns exec asym-lab-host ip route del default via 198.51.100.1 dev eth1 table 100 proto 245",
				}}}, nil
	}
	var kept *playbook.KeptFix // what the journal says once the fix is kept
	sess(m).decide = func(_ context.Context, keep bool) error {
		fm.decided = append(fm.decided, keep)
		if !keep {
			swap(broken)
			return nil
		}
		kept = &playbook.KeptFix{Summary: "Source-based routing for 198.51.100.11: table 100 sends its traffic by eth1", Flow: broken.Flow.String(),
			Applied: fm.now, Undo: "asym fix --netns asym-lab-host --undo", UndoCommands: []string{
				"ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100 priority 1000 proto 245",
				"ip netns exec asym-lab-host ip route del default via 198.51.100.1 dev eth1 table 100 proto 245",
			}}
		return nil
	}
	sess(m).kept = func() *playbook.KeptFix { return kept }
	sess(m).undo = func(context.Context) error {
		fm.undone++
		swap(broken)
		kept = nil
		return nil
	}
	return fm
}

func (fm *fixModel) clock(d time.Duration) { fm.now = fm.now.Add(d) }

// toConfirmation runs every step and opens the root cause's fix and its
// confirmation, past each grace period.
func (fm *fixModel) toConfirmation(t *testing.T) {
	t.Helper()
	press(t, fm.Model, "a")
	fm.clock(time.Second)
	press(t, fm.Model, "f")
	fm.clock(time.Second)
	press(t, fm.Model, "enter")
	fm.clock(time.Second)
	if !fm.fix.confirming {
		t.Fatalf("the confirmation did not open:\n%s", fm.Render())
	}
}

// TestApplyRaceKeysDuringRecheck (issue #19): the fix is pending in the
// model, with its banner, before the steps run again; a key pressed while
// they run (as soon as the traffic heals) is never read as another one.
func TestApplyRaceKeysDuringRecheck(t *testing.T) {
	fm := newFixModel(t, 120, 40)
	rp := fm.prober.(*replay)
	fm.toConfirmation(t)
	applyCmd := send(fm.Model, "y")
	if len(fm.applied) != 0 || !fm.fix.applying {
		t.Fatal("y starts applying, off the UI goroutine")
	}
	for _, k := range []string{"K", "U", "y", "n", "enter"} {
		send(fm.Model, k) // while applying: nothing may happen
	}
	if len(fm.decided) != 0 || !strings.Contains(fm.Render(), "!! APPLYING the fix of missing_source_rule") {
		t.Fatalf("keys while applying decide nothing, and the banner says it applies:\n%s", fm.Render())
	}
	msg := applyCmd()
	probesBefore := len(rp.runs)
	_, recheck := fm.Update(msg)
	if fm.fix.pending == nil || !fm.fix.rechecking || len(rp.runs) != probesBefore {
		t.Fatalf("the fix must be pending before any probe of the re-check runs: pending %v, probes %d→%d", fm.fix.pending, probesBefore, len(rp.runs))
	}
	screen := fm.Render()
	if !strings.Contains(screen, "!! FIX PENDING: reverts in 1m0s unless kept · re-checking… · U revert now") || !strings.Contains(screen, "stale") {
		t.Fatalf("the banner shows at once, and the results from before the fix are stale:\n%s", screen)
	}
	// The traffic heals now; the person presses keys while the steps run.
	for _, k := range []string{"n", "y", "enter", "K"} {
		send(fm.Model, k)
	}
	if len(fm.decided) != 0 || fm.fix.pending == nil || len(fm.applied) != 1 {
		t.Fatalf("n, y, enter and K during the re-check keep, revert or apply nothing: decided %v, applied %v", fm.decided, fm.applied)
	}
	if !strings.Contains(fm.flash, "K keeps it once they have") {
		t.Errorf("K says why it waits: %q", fm.flash)
	}
	drain(t, fm.Model, recheck)
	if fm.fix.rechecking || fm.fix.outcome.After == nil || fm.stale(0) {
		t.Fatal("the re-check ends and its findings are the outcome's after")
	}
	press(t, fm.Model, "K")
	if len(fm.decided) != 1 || !fm.decided[0] || fm.fix.result != "kept" {
		t.Fatalf("K keeps once the re-check ran: %v %q", fm.decided, fm.fix.result)
	}
}

// TestRevertDuringRecheck: U is safe at any time once the fix is pending:
// it reverts, and the steps run again.
func TestRevertDuringRecheck(t *testing.T) {
	fm := newFixModel(t, 120, 40)
	fm.toConfirmation(t)
	fm.Update(send(fm.Model, "y")())
	press(t, fm.Model, "U")
	if len(fm.decided) != 1 || fm.decided[0] || fm.fix.result != "reverted" || fm.fix.pending != nil || !fm.allRan() {
		t.Fatalf("U reverts: %v %q", fm.decided, fm.fix.result)
	}
}

// stateModels builds the view in each state a person meets.
func stateModels(t *testing.T) map[string]*Model {
	t.Helper()
	out := map[string]*Model{}
	m, _, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	out["start"] = m
	at := func(name string, keys ...string) *Model {
		fm := newFixModel(t, 80, 24)
		for _, k := range keys {
			fm.clock(time.Second)
			press(t, fm.Model, k)
		}
		out[name] = fm.Model
		return fm.Model
	}
	at("all run", "a")
	at("findings pane", "a", "tab")
	at("step detail", "a", "tab", "tab")
	at("finding", "a", "tab", "enter")
	at("fix view", "a", "f")
	at("confirmation", "a", "f", "enter")
	at("help", "a", "?")
	at("search", "a", "/", "r", "u", "l", "e", "enter")
	at("kept", "a", "f", "enter", "y", "K")
	at("reverted", "a", "f", "enter", "y", "U")
	at("undo confirmation", "a", "f", "enter", "y", "K", "X")
	fm := newFixModel(t, 80, 24)
	fm.toConfirmation(t)
	out["applying"] = fm.Model
	send(fm.Model, "y")
	fm = newFixModel(t, 80, 24)
	fm.toConfirmation(t)
	fm.Update(send(fm.Model, "y")())
	out["pending, re-checking"] = fm.Model
	pending := at("pending", "a", "f", "enter", "y")
	if pending.fix.pending == nil || pending.fix.rechecking {
		t.Fatal("the pending state was not reached")
	}
	fm = newFixModel(t, 80, 24)
	press(t, fm.Model, "a", "f")
	fm.clock(time.Second)
	press(t, fm.Model, "enter")
	fm.clock(time.Second)
	press(t, fm.Model, "y")
	send(fm.Model, "K")
	out["deciding"] = fm.Model
	return out
}

// TestNoKeyDoesTwoThings: in every state each key has one meaning, K and U
// only keep and revert, and copy is off while a fix waits.
func TestNoKeyDoesTwoThings(t *testing.T) {
	for name, m := range stateModels(t) {
		seen := map[string]string{}
		var keys []string
		for _, a := range m.actions() {
			for _, k := range a.b.Keys() {
				if prev, dup := seen[k]; dup {
					t.Errorf("%s: %q both %s and %s", name, k, prev, a.b.Help().Desc)
				}
				seen[k] = a.b.Help().Desc
				keys = append(keys, k)
			}
		}
		busy := m.fix.busy()
		if _, ok := seen["K"]; ok != busy {
			t.Errorf("%s: K bound %v, a fix waiting %v", name, ok, busy)
		}
		if seen["K"] != "" && (seen["K"] != m.keys.Keep.Help().Desc || seen["U"] != m.keys.Revert.Help().Desc) {
			t.Errorf("%s: K and U must keep and revert, nothing else: %q %q", name, seen["K"], seen["U"])
		}
		if _, ok := seen["y"]; busy && ok {
			t.Errorf("%s: y must do nothing while a fix waits", name)
		}
		if _, ok := seen["X"]; ok != m.canUndoHere() {
			t.Errorf("%s: X bound %v, a kept fix shown %v", name, ok, m.canUndoHere())
		}
		if m.fix.confirming && len(keys) != 4 {
			t.Errorf("%s: the confirmation takes y, enter, esc and n only: %v", name, keys)
		}
		// Everything on the key bar is a key of this state.
		for _, part := range strings.Split(m.keyBar(200), "  ") {
			k, _, _ := strings.Cut(part, " ")
			parts := strings.Split(k, "/")
			if k == "/" {
				parts = []string{k}
			}
			for _, one := range parts {
				if _, ok := seen[one]; !ok && k != "↑↓" && k != "n/N" {
					t.Errorf("%s: the key bar shows %q, which does nothing here", name, k)
				}
			}
		}
	}
}

// TestKeyBarKeepsThePanesKeys: at 80 columns the current pane's keys and
// the pending fix's stay on the bar; what matters least goes first.
func TestKeyBarKeepsThePanesKeys(t *testing.T) {
	states := stateModels(t)
	for name, want := range map[string][]string{
		"start":         {"enter next step", "↑↓ select", "a all", "? help", "q quit"},
		"findings pane": {"enter details", "↑↓ select", "f fix", "esc back"},
		"fix view":      {"enter apply", "↑↓ scroll", "esc back", "y copy fix"},
		"confirmation":  {"y/enter apply", "esc/n cancel"},
		"pending":       {"K keep", "U revert", "↑↓ scroll", "esc back"},
	} {
		bar := states[name].keyBar(80)
		if lineWidth(bar) > 80 {
			t.Errorf("%s: the key bar is wider than 80: %q", name, bar)
		}
		for _, w := range want {
			if !strings.Contains(bar, w) {
				t.Errorf("%s: the key bar lacks %q: %q", name, w, bar)
			}
		}
	}
	if bar := states["pending"].keyBar(80); strings.Contains(bar, "y copy") {
		t.Errorf("no copy while a fix waits: %q", bar)
	}
}

// TestOnCallGolden: the screens of the moments that matter, at 80x24 and
// 120x40: the root cause on the first screen after the steps, the
// confirmation, the pending banner, a kept fix with its undo commands, and
// a view that finds a fix pending (or stuck) when it starts.
func TestOnCallGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		w, h := size[0], size[1]
		name := func(s string) string { return s + "-" + itoa(w) + "x" + itoa(h) }
		m, _, _ := newTestModel(t, "rule-typo-host", w, h)
		press(t, m, "a")
		t.Run(name("headline"), func(t *testing.T) { golden.RequireEqual(t, []byte(m.Render())) })

		fm := newFixModel(t, w, h)
		fm.toConfirmation(t)
		t.Run(name("confirmation"), func(t *testing.T) { golden.RequireEqual(t, []byte(fm.Render())) })
		press(t, fm.Model, "y")
		fm.clock(15 * time.Second)
		fm.Update(countdownMsg{})
		t.Run(name("pending"), func(t *testing.T) { golden.RequireEqual(t, []byte(fm.Render())) })
		press(t, fm.Model, "K")
		t.Run(name("kept"), func(t *testing.T) { golden.RequireEqual(t, []byte(fm.Render())) })

		for _, c := range []struct{ name, problem string }{
			{"reattached", ""},
			{"reattached-stuck", "its watchdog (process 4242, started 02:12:00) is gone and recorded no revert: the revert did not run and will not; run asym fix --netns asym-lab-host --rollback now (or asym fix --netns asym-lab-host --confirm to keep the change)"},
		} {
			r, _, _ := newTestModel(t, "two-nics-strict-host", w, h)
			sess(r).pending = func() *playbook.PendingFix { return journalFix(c.problem) }
			drain(t, r, r.Init())
			t.Run(name(c.name), func(t *testing.T) { golden.RequireEqual(t, []byte(r.Render())) })
		}
	}
}

// journalFix is a fix an earlier asym left pending, as the journal says.
func journalFix(problem string) *playbook.PendingFix {
	now := fixedNow()
	return &playbook.PendingFix{Summary: "Source-based routing for 198.51.100.11: table 100 sends its traffic by eth1", Flow: "tcp 203.0.113.10:40000 198.51.100.11:8080",
		State: "pending", Applied: now.Add(-40 * time.Second), Deadline: now.Add(20 * time.Second), Watchdog: "process 4242 in its own session",
		Problem: problem, Confirm: "asym fix --netns asym-lab-host --confirm", Rollback: "asym fix --netns asym-lab-host --rollback",
		Undo: []string{"ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100 priority 1000 proto 245"}}
}

// TestReattachPendingFix: a fix left pending by a session that dropped
// shows on the first screen, before any step runs, and K and U decide it;
// once the journal no longer holds it, the view says so.
func TestReattachPendingFix(t *testing.T) {
	m, rp, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	var decided []bool
	journal := journalFix("")
	sess(m).pending = func() *playbook.PendingFix { return journal }
	sess(m).decide = func(_ context.Context, keep bool) error { decided = append(decided, keep); return nil }
	drain(t, m, m.Init())
	screen := m.Render()
	for _, want := range []string{"!! PENDING FIX FOUND: reverts in 20s unless kept", "K keep · U revert now", "applied 02:12:20 UTC by an earlier asym"} {
		if !strings.Contains(screen, want) {
			t.Errorf("the first screen lacks %q:\n%s", want, screen)
		}
	}
	if len(rp.runs) != 0 {
		t.Fatal("reading the journal runs no probe")
	}
	if !strings.Contains(m.keyBar(80), "K keep") {
		t.Errorf("the key bar shows K: %q", m.keyBar(80))
	}
	press(t, m, "U")
	if len(decided) != 1 || decided[0] || m.fix.result != "reverted" || strings.Contains(m.Render(), "PENDING") {
		t.Fatalf("U reverts the reattached fix: %v %q", decided, m.fix.result)
	}

	// A stuck fix (its watchdog is gone) says so in full, at 80 columns.
	m, _, _ = newTestModel(t, "two-nics-strict-host", 80, 24)
	stuck := journalFix("its watchdog (process 4242) is gone and recorded no revert: the revert did not run and will not; run asym fix --netns asym-lab-host --rollback now")
	sess(m).pending = func() *playbook.PendingFix { return stuck }
	drain(t, m, m.Init())
	flat := strings.Join(strings.Fields(m.Render()), " ")
	if !strings.Contains(flat, "A FIX ASYM APPLIED WILL NOT REVERT BY ITSELF · K keep · U revert now") || !strings.Contains(flat, "run asym fix --netns asym-lab-host --rollback now") {
		t.Fatalf("the stuck fix's sentence is on the first screen, whole:\n%s", m.Render())
	}

	// The journal no longer holds it (the watchdog reverted it at the
	// deadline): the view says so, and what ran before is stale.
	m, _, _ = newTestModel(t, "two-nics-strict-host", 120, 40)
	sess(m).pending = func() *playbook.PendingFix { return journal }
	drain(t, m, m.Init())
	sess(m).pending = func() *playbook.PendingFix { return nil }
	now := fixedNow().Add(21 * time.Second)
	m.opt.Now = func() time.Time { return now }
	_, cmd := m.Update(countdownMsg{})
	drain(t, m, cmd)
	if m.fix.pending != nil || !strings.Contains(m.flash, "no longer pending") || strings.Contains(m.Render(), "PENDING") {
		t.Fatalf("a fix gone from the journal is no longer shown pending: %q", m.flash)
	}
}

// TestReattachInTheForm: without a flow the form asks for one; the pending
// fix is on that screen too, with the commands that decide it.
func TestReattachInTheForm(t *testing.T) {
	rp, _ := loadReplay(t, "healthy-host")
	m := New(Options{Session: &fakeSession{newProber: func(flow.Flow) evidence.Prober { return rp }, info: evidence.TargetInfo{Hostname: "vm", Target: "netns asym-lab-host"},
		pending: func() *playbook.PendingFix { return journalFix("") }}, Plain: true, Now: fixedNow, HistoryPath: t.TempDir() + "/flows"})
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	drain(t, m, m.Init())
	flat := strings.Join(strings.Fields(m.Render()), " ")
	if !strings.Contains(flat, "PENDING FIX FOUND") || !strings.Contains(flat, "asym fix --netns asym-lab-host --confirm") {
		t.Fatalf("the form shows the pending fix:\n%s", m.Render())
	}
}

// TestCommandsWrapCopySafe: a wrapped command is the same command to a
// shell: broken only between words, each line but the last ending in " \",
// and no flag or keyword apart from its value.
func TestCommandsWrapCopySafe(t *testing.T) {
	cmds := []string{
		"ip netns exec asym-lab-host ip rule add from 198.51.100.11 lookup 100 priority 1000",
		"ip netns exec asym-lab-host ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
		"nsenter --net=/run/netns/asym-lab-host conntrack -E -p tcp --sport 40000 --dport 80 --orig-src 203.0.113.10",
		"ip netns exec 'a b' tcpdump -ni eth0 'tcp and host 203.0.113.10 and port 40000'",
	}
	for _, c := range cmds {
		for width := 20; width <= 100; width++ {
			lines := wrapCommand(c, width)
			var words []string
			for i, l := range lines {
				if i < len(lines)-1 {
					if !strings.HasSuffix(l, " \\") {
						t.Fatalf("width %d: %q does not end in \" \\\"", width, l)
					}
					l = strings.TrimSuffix(l, " \\")
					last, next := shellWords(l)[len(shellWords(l))-1], shellWords(lines[i+1])[0]
					flag := strings.HasPrefix(last, "-") && !strings.Contains(last, "=") || contains(valueKeywords, last)
					if flag && !strings.HasPrefix(next, "-") {
						t.Errorf("width %d: %q ends with %q, apart from its value %q", width, l, last, next)
					}
				}
				if n := lineWidth(l); n > width && len(shellWords(l)) > 2 {
					t.Errorf("width %d: %q is %d wide", width, l, n)
				}
				words = append(words, shellWords(l)...)
			}
			if strings.Join(words, " ") != strings.Join(shellWords(c), " ") {
				t.Fatalf("width %d: the words changed: %q", width, lines)
			}
		}
	}
	// On screen, at 80x24: the fix of the root cause.
	fm := newFixModel(t, 80, 24)
	press(t, fm.Model, "a", "f")
	if !strings.Contains(fm.Render(), "lookup 100 \\\n      priority 1000") {
		t.Errorf("the rule's priority stays with its value:\n%s", fm.Render())
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestCopySelection: y copies what the pane shows that can be run, not the
// whole notes, with OSC 52, and appends it to the notes file.
func TestCopySelection(t *testing.T) {
	fm := newFixModel(t, 80, 24)
	press(t, fm.Model, "a", "f")
	msgs := press(t, fm.Model, "y")
	var copied string
	for _, msg := range msgs {
		if v := reflect.ValueOf(msg); v.Kind() == reflect.String {
			copied = v.String()
		}
	}
	want := strings.Join(fm.findings[fm.fsel].Fix.CommandsIn(fm.info.Prefix), "\n")
	if copied != want {
		t.Fatalf("y copies the fix's commands:\n%q\nwant\n%q", copied, want)
	}
	b, err := os.ReadFile(fm.opt.NotesPath)
	if err != nil || !strings.Contains(string(b), "copied at 02:13:00 UTC: the 3 commands of the fix of missing_source_rule") || !strings.Contains(string(b), want) {
		t.Fatalf("the copy is in the notes file too: %v\n%s", err, b)
	}
	// In a step, y copies its probes' commands.
	press(t, fm.Model, "esc", "esc", "esc")
	msgs = press(t, fm.Model, "y")
	copied = ""
	for _, msg := range msgs {
		if v := reflect.ValueOf(msg); v.Kind() == reflect.String {
			copied = v.String()
		}
	}
	if !strings.HasPrefix(copied, "ip -n asym-e8039a7-host -br addr show\n") {
		t.Errorf("y in a step copies its commands: %q", copied)
	}
}

// TestHonestReruns: a runs every step again once all ran, each step says
// when it ran, and what a change made stale says so.
func TestHonestReruns(t *testing.T) {
	fm := newFixModel(t, 120, 40)
	press(t, fm.Model, "a")
	first := fm.steps[0].ranAt
	fm.clock(time.Minute)
	press(t, fm.Model, "a")
	if !fm.steps[0].ranAt.After(first) || !fm.allRan() {
		t.Fatalf("a re-runs every step once all ran: %v → %v", first, fm.steps[0].ranAt)
	}
	if !strings.Contains(fm.Render(), "ran 02:14:00 UTC") {
		t.Errorf("the step says when it ran:\n%s", fm.Render())
	}
	fm.epoch++ // the host changed (a fix, a revert)
	if !fm.stale(0) || !strings.Contains(fm.Render(), "before the last change to the host: stale") {
		t.Errorf("a step from before the change is stale:\n%s", fm.Render())
	}
	press(t, fm.Model, "r")
	if fm.stale(0) || !fm.stale(1) {
		t.Error("r refreshes the selected step; the others stay stale")
	}
}

// TestSearch: / finds in the detail, n and N move between matches, esc
// clears the search.
func TestSearch(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	press(t, m, "a", "/")
	typeText(t, m, "table main")
	press(t, m, "enter")
	lines := m.detailLines(m.detailWidth(120))
	first := m.scroll
	if !strings.Contains(lines[first], "table main") || !strings.Contains(m.flash, "match 1 of") {
		t.Fatalf("enter jumps to the first match: line %d %q, flash %q", first, lines[first], m.flash)
	}
	press(t, m, "n")
	if m.scroll <= first || !strings.Contains(lines[m.scroll], "table main") {
		t.Fatalf("n goes to the next match: %d", m.scroll)
	}
	press(t, m, "N")
	if m.scroll != first {
		t.Fatalf("N goes back: %d, want %d", m.scroll, first)
	}
	press(t, m, "esc")
	if m.search.query != "" {
		t.Fatal("esc clears the search")
	}
	press(t, m, "n")
	if m.steps[0].status == stepRunning || !strings.Contains(m.flash, "no search") {
		t.Fatalf("n without a search runs nothing: %q", m.flash)
	}
}

// TestEscLeavesEveryPane: esc goes one level back from the fix, the
// finding, the live view and the detail, down to the steps.
func TestEscLeavesEveryPane(t *testing.T) {
	m, _, _ := newTestModel(t, "firewall-ecmp-fw2", 120, 40)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate {
		ch := make(chan evidence.WatchUpdate)
		close(ch)
		return ch
	}
	press(t, m, "a", "l")
	if !m.liveShown() {
		t.Fatal("l opens the live view")
	}
	press(t, m, "esc")
	if m.liveShown() {
		t.Fatal("esc leaves the live view")
	}
	press(t, m, "tab", "enter", "f")
	for _, want := range []func() bool{
		func() bool { return !m.showFix && m.showFind },
		func() bool { return !m.showFind && m.focus == paneFindings },
		func() bool { return m.focus == paneSteps },
	} {
		press(t, m, "esc")
		if !want() {
			t.Fatalf("esc did not go one level back: fix %v finding %v focus %d", m.showFix, m.showFind, m.focus)
		}
	}
}

// TestEditFlowInPlace: c changes the flow without leaving the view; esc
// keeps the current one; the target's earlier flows are offered.
func TestEditFlowInPlace(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	press(t, m, "a", "c")
	if m.form == nil || !m.form.editing || strings.Join(m.form.words(), " ") != m.flow.String() {
		t.Fatalf("c opens the form on the current flow")
	}
	press(t, m, "esc")
	if m.form != nil || !m.allRan() {
		t.Fatal("esc goes back to the flow and its results")
	}
	press(t, m, "c", "tab", "tab")
	clearInput(t, m)
	typeText(t, m, "198.51.100.10:8080")
	press(t, m, "enter")
	if m.form != nil || m.flow.Dst.String() != "198.51.100.10:8080" || m.anyRun() {
		t.Fatalf("enter diagnoses the new flow from the start: %v", m.flow)
	}
	if h := LoadHistory(m.opt.HistoryPath, "netns asym-lab-host"); len(h) != 2 || h[0] != m.flow {
		t.Errorf("the target's history has both flows, newest first: %v", h)
	}
	if h := LoadHistory(m.opt.HistoryPath, "host namespace"); len(h) != 0 {
		t.Errorf("another target has none of them: %v", h)
	}
}

// TestUndoKeptFix: a fix kept from the view shows its undo commands from
// the journal, and X undoes it after a confirmation; a kept fix found in
// the journal when the view starts is said, and undone the same way.
func TestUndoKeptFix(t *testing.T) {
	fm := newFixModel(t, 120, 40)
	fm.toConfirmation(t)
	press(t, fm.Model, "y", "K")
	if fm.fix.kept == nil || !strings.Contains(fm.Render(), "To undo it later: X here, or asym fix --netns asym-lab-host --undo") {
		t.Fatalf("the kept fix's undo, from the journal:\n%s", fm.Render())
	}
	fm.clock(time.Second)
	press(t, fm.Model, "X")
	if !fm.fix.confirming || !strings.Contains(fm.Render(), "Undo the kept fix (2 changes) in netns asym-lab-host? y undo · esc cancel") {
		t.Fatalf("X asks first:\n%s", fm.Render())
	}
	press(t, fm.Model, "y")
	if fm.undone != 0 {
		t.Fatal("y right after the question opened undoes nothing")
	}
	fm.clock(time.Second)
	press(t, fm.Model, "y")
	if fm.undone != 1 || fm.fix.result != "undone" || fm.fix.kept != nil || !fm.allRan() {
		t.Fatalf("y undoes it and the steps run again: %d %q", fm.undone, fm.fix.result)
	}
	notes := string(fm.notesMarkdown())
	if !strings.Contains(notes, "kept fix undone by alice") || !strings.Contains(notes, "; undone at 02:13:05 UTC") {
		t.Errorf("the notes record the undo:\n%s", notes)
	}

	// Found in the journal on start.
	m, _, _ := newTestModel(t, "healthy-host", 80, 24)
	found := &playbook.KeptFix{Summary: "Source-based routing for 198.51.100.11", Applied: fixedNow().Add(-time.Hour),
		Undo: "asym fix --netns asym-lab-host --undo", UndoCommands: []string{"ip netns exec asym-lab-host ip rule del from 198.51.100.11 lookup 100 priority 1000 proto 245"}}
	var undone int
	sess(m).kept = func() *playbook.KeptFix { return found }
	sess(m).undo = func(context.Context) error { undone++; return nil }
	drain(t, m, m.Init())
	if !strings.Contains(m.flash, "a fix asym applied and kept at 01:13:00 UTC is in place here") {
		t.Fatalf("the first screen says a kept fix is in place: %q", m.flash)
	}
	press(t, m, "f")
	flat := strings.Join(strings.Fields(m.Render()), " ")
	if !strings.Contains(flat, "A fix kept at 01:13:00 UTC is in place") || !strings.Contains(flat, "ip rule del from 198.51.100.11 lookup 100") {
		t.Fatalf("f shows the kept fix with its undo commands:\n%s", m.Render())
	}
	m.fix.openedAt = fixedNow().Add(-time.Second)
	press(t, m, "X")
	m.fix.openedAt = fixedNow().Add(-time.Second)
	press(t, m, "y")
	if undone != 1 || m.fix.result != "undone" {
		t.Fatalf("X then y undo the kept fix found in the journal: %d %q", undone, m.fix.result)
	}
}

// TestPendingUnknownWithoutRoot: without root the journal cannot be read;
// the view says so once and shows no pending fix (no banner, no K or U).
func TestPendingUnknownWithoutRoot(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	sess(m).pending = func() *playbook.PendingFix {
		return &playbook.PendingFix{Unknown: "whether a fix asym applied here is pending is unknown: its journal (/run/asym) is root's to read"}
	}
	drain(t, m, m.Init())
	screen := strings.Join(strings.Fields(m.Render()), " ")
	if m.fix.pending != nil || strings.Contains(screen, "PENDING") || strings.Contains(m.keyBar(80), "K keep") {
		t.Fatalf("an unreadable journal is not a pending fix:\n%s", m.Render())
	}
	if !strings.Contains(screen, "is pending is unknown") {
		t.Fatalf("the view says the journal cannot be read:\n%s", m.Render())
	}
}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asym/fix/apply"
	"asym/lab"
	"asym/probes/probetest"
)

// TestTUIInTmux runs the built binary in a real terminal (tmux, on a socket
// of its own) against a lab scenario, walks the playbook with the keys on
// screen, and checks the finding is shown and that e wrote notes with it.
func TestTUIInTmux(t *testing.T) {
	probetest.RequireRoot(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "asym")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	sc, _ := lab.Find("two-nics-strict")
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	env, err := sc.Up(ctx, "asym-u"+hex.EncodeToString(b)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Down() })
	env.Try(ctx, 1500*time.Millisecond) // fail once, for the counters

	notes := filepath.Join(dir, "notes.md")
	c := env.Checks[0]
	cmdline := strings.Join([]string{bin, "--netns", c.Target, "--notes", notes, c.Flow}, " ") + "; echo asym-exited-$?; sleep 60"
	tt := newTmux(t, 100, 30, cmdline)
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		return tt.waitFor(what, 15*time.Second, cond)
	}
	waitFor("the first screen", func(s string) bool { return strings.Contains(s, "enter next step") })
	tt.keys("a")
	s := waitFor("the findings", func(s string) bool { return strings.Contains(s, "4 finding(s)") })
	for _, want := range []string{"CRIT rp_filter_strict_drop", "CRIT reply_wrong_egress", "CRIT missing_source_rule", "WARN arp_flux", "▶ RTNETLINK answers: Invalid argument", "server side"} {
		if !strings.Contains(s, want) {
			t.Errorf("the screen lacks %q:\n%s", want, s)
		}
	}
	tt.keys("Tab", "Down", "Enter") // the second finding: the drop the cause (first) explains
	waitFor("the finding's evidence", func(s string) bool {
		return strings.Contains(s, "IPReversePathFilter") && strings.Contains(s, "Evidence")
	})
	tt.keys("e")
	waitFor("the notes", func(s string) bool { return strings.Contains(s, "notes appended to") })
	b2, err := os.ReadFile(notes)
	if err != nil || !strings.Contains(string(b2), "rp_filter_strict_drop") || !strings.Contains(string(b2), "ip rule add from 198.51.100.11") {
		t.Fatalf("notes: %v\n%s", err, b2)
	}
	tt.keys("q")
	s = waitFor("asym to exit", func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	if strings.Contains(s, "STEPS") {
		t.Errorf("the terminal was not restored after q:\n%s", s)
	}
}

// TestTUIFixInTmux applies a fix with the fix pane's keys in a real
// terminal: the flow heals, y keeps it, and the journal says confirmed.
func TestTUIFixInTmux(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	cmd := fmt.Sprintf("ASYM_STATE_DIR=%s ASYM_EXE=%s ASYM_WATCHDOG=detached %s --netns %s --notes %s %s; echo asym-exited-$?; sleep 60",
		os.Getenv("ASYM_STATE_DIR"), asymBinary(t), asymBinary(t), c.Target, filepath.Join(t.TempDir(), "n.md"), c.Flow)
	tt := newTmux(t, 120, 40, cmd)
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		return tt.waitFor(what, 20*time.Second, cond)
	}
	keys := tt.keys
	waitFor("the first screen", func(s string) bool { return strings.Contains(s, "enter next step") })
	keys("a")
	waitFor("the findings", func(s string) bool { return strings.Contains(s, "4 finding(s)") })
	keys("Tab", "Enter", "f")
	s := waitFor("the fix pane", func(s string) bool { return strings.Contains(s, "enter: apply") })
	t.Logf("fix pane:\n%s", s)
	time.Sleep(700 * time.Millisecond) // the grace period
	keys("Enter")
	waitFor("the confirmation", func(s string) bool { return strings.Contains(s, "Apply these 3 changes") })
	time.Sleep(700 * time.Millisecond)
	keys("y")
	s = waitFor("the keep prompt", func(s string) bool {
		return strings.Contains(s, "FIX PENDING: reverts in") && strings.Contains(s, "K keep · U revert now")
	})
	if err := env.Try(context.Background(), 2*time.Second); err != nil {
		t.Fatalf("the fix applied from the TUI did not heal the flow: %v\n%s", err, s)
	}
	keys("y", "n") // copy and next match: neither keeps nor reverts a fix
	time.Sleep(300 * time.Millisecond)
	if j, err := apply.Load(apply.PathFor(apply.IDFor("netns", c.Target))); err != nil || j.State != apply.StatePending {
		t.Fatalf("y and n must leave the fix pending: %+v %v", j, err)
	}
	keys("K")
	waitFor("kept", func(s string) bool { return strings.Contains(s, "kept: it stays until it is undone") })
	j, err := apply.Load(apply.PathFor(apply.IDFor("netns", c.Target)))
	if err != nil || j.State != apply.StateConfirmed {
		t.Fatalf("journal: %+v %v", j, err)
	}
	// Later, the kept fix is undone from its journal: X, then y.
	waitFor("the undo commands", func(s string) bool { return strings.Contains(s, "To undo it later: X here") })
	keys("X")
	waitFor("the undo question", func(s string) bool { return strings.Contains(s, "Undo the kept fix") })
	time.Sleep(700 * time.Millisecond)
	keys("y")
	waitFor("undone", func(s string) bool { return strings.Contains(s, "undone: what asym changed is taken back") })
	if j, err := apply.Load(apply.PathFor(apply.IDFor("netns", c.Target))); err != nil || j.State != apply.StateUndone {
		t.Fatalf("journal after X: %+v %v", j, err)
	}
	if env.Try(context.Background(), 2*time.Second) == nil {
		t.Error("the flow works again after the kept fix was undone: it was not undone")
	}
	keys("q")
	waitFor("asym to exit", func(s string) bool { return strings.Contains(s, "asym-exited-0") })
}

// TestTUIPeerInTmux opens the view on the client of the two-NIC scenario
// with the server as the peer, in a real terminal: the peer runs without a
// terminal of its own, its findings show, the live view watches both ends
// while the flow fails, and the terminal is restored on q.
func TestTUIPeerInTmux(t *testing.T) {
	probetest.RequireRoot(t)
	bin := asymBinary(t)
	env := upScenario(t, "two-nics-fabric")
	client, server := env.Ends()
	notes := filepath.Join(t.TempDir(), "n.md")
	cmd := fmt.Sprintf("%s --netns %s --peer 'ip netns exec %s' --peer-asym %s --notes %s %s; echo asym-exited-$?; sleep 60",
		bin, client, server, bin, notes, env.Checks[0].Flow)
	tt := newTmux(t, 160, 45, cmd)
	waitFor, keys := tt.waitFor, tt.keys
	waitFor("the first screen", 15*time.Second, func(s string) bool { return strings.Contains(s, "enter next step") })
	keys("a")
	s := waitFor("the peer's findings", 20*time.Second, func(s string) bool {
		return strings.Contains(s, "peer ✓") && strings.Contains(s, "on the peer:")
	})
	for _, want := range []string{"CRIT reply_wrong_egress", "── here:", "── peer:"} {
		if !strings.Contains(s, want) {
			t.Errorf("the screen lacks %q:\n%s", want, s)
		}
	}
	// The live view: both ends watch while the flow is tried.
	keys("l")
	waitFor("the peer watching", 10*time.Second, func(s string) bool { return strings.Contains(s, "watching the flow there") })
	go func() {
		time.Sleep(time.Second)
		env.Try(context.Background(), 4*time.Second)
	}()
	s = waitFor("the reply lost between the ends", 30*time.Second, func(s string) bool { return strings.Contains(s, "reply_lost_in_path") })
	keys("e")
	waitFor("the notes", 10*time.Second, func(s string) bool { return strings.Contains(s, "notes appended to") })
	md, err := os.ReadFile(notes)
	if err != nil || !strings.Contains(string(md), "### The peer: ") || !strings.Contains(string(md), "reply_lost_in_path") {
		t.Fatalf("notes: %v\n%s", err, md)
	}
	keys("q")
	s = waitFor("asym to exit", 10*time.Second, func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	if strings.Contains(s, "STEPS") {
		t.Errorf("the terminal was not restored after q:\n%s", s)
	}
}

// TestTUIPendingFixOutlivesTheSession: a fix applied from the view whose
// terminal dies (the SSH session dropped) is found by the next view on the
// same target, on its first screen, with K and U to decide it.
func TestTUIPendingFixOutlivesTheSession(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	state := os.Getenv("ASYM_STATE_DIR")
	view := func(flow string) string {
		return fmt.Sprintf("ASYM_STATE_DIR=%s ASYM_EXE=%s ASYM_WATCHDOG=detached %s --netns %s --revert-after 5m --notes %s %s; echo asym-exited-$?; sleep 60",
			state, asymBinary(t), asymBinary(t), c.Target, filepath.Join(t.TempDir(), "n.md"), flow)
	}
	first := newTmux(t, 80, 24, view(c.Flow))
	waitFor := func(tt *tmuxTerm, what string, cond func(string) bool) string {
		t.Helper()
		return tt.waitFor(what, 20*time.Second, cond)
	}
	waitFor(first, "the first screen", func(s string) bool { return strings.Contains(s, "enter next step") })
	first.keys("a")
	waitFor(first, "the cause", func(s string) bool { return strings.Contains(s, "▶ cause: missing_source_rule") })
	first.keys("f")
	waitFor(first, "the fix", func(s string) bool { return strings.Contains(s, "enter: apply") })
	time.Sleep(700 * time.Millisecond)
	first.keys("Enter")
	waitFor(first, "the confirmation", func(s string) bool { return strings.Contains(s, "Apply these 3 changes") })
	time.Sleep(700 * time.Millisecond)
	first.keys("y")
	waitFor(first, "the pending banner", func(s string) bool { return strings.Contains(s, "FIX PENDING: reverts in") })
	first.run("kill-server") // the terminal dies with the view in it, as when SSH drops

	journal := apply.PathFor(apply.IDFor("netns", c.Target))
	if j, err := apply.Load(journal); err != nil || j.State != apply.StatePending {
		t.Fatalf("the fix must still be pending, its watchdog armed: %+v %v", j, err)
	}
	second := newTmux(t, 80, 24, view(c.Flow))
	s := waitFor(second, "the pending fix on the first screen", func(s string) bool {
		return strings.Contains(s, "PENDING FIX FOUND: reverts in") && strings.Contains(s, "K keep · U revert now")
	})
	if !strings.Contains(s, "by an earlier asym") || !strings.Contains(s, "K keep  U revert") {
		t.Errorf("the banner says where the fix comes from, the key bar shows K and U:\n%s", s)
	}
	second.keys("U")
	waitFor(second, "the revert", func(s string) bool { return strings.Contains(s, "reverted: the host is as it was") })
	if j, err := apply.Load(journal); err != nil || j.State != apply.StateRolledBack {
		t.Fatalf("U reverts the fix an earlier view applied: %+v %v", j, err)
	}
	second.keys("q")
	waitFor(second, "asym to exit", func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	deadline := time.Now().Add(10 * time.Second)
	for watchdogsOf(state) != "" && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if w := watchdogsOf(state); w != "" {
		t.Errorf("the watchdog outlived its decided fix: %s", w)
	}
}

// watchdogsOf lists the revert watchdogs of journals in the state
// directory dir (read from /proc: a fresh machine may have no pgrep).
func watchdogsOf(dir string) string {
	var out []string
	for _, p := range ourProcesses() {
		if strings.Contains(p, "fix --watchdog") && strings.Contains(p, dir) {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

// tmuxTerm is a real terminal for a test: tmux on a socket of its own,
// one session running cmd (a shell line), killed when the test ends.
type tmuxTerm struct {
	t          *testing.T
	tmux, sock string
}

func newTmux(t *testing.T, width, height int, cmd string) *tmuxTerm {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is needed for the real-terminal tests (a fresh machine has it): ", err)
	}
	b := make([]byte, 4)
	rand.Read(b)
	tt := &tmuxTerm{t: t, tmux: tmux, sock: "asym-test-" + hex.EncodeToString(b)}
	t.Cleanup(func() { tt.run("kill-server") })
	if out := tt.run("new-session", "-d", "-s", "t", "-x", fmt.Sprint(width), "-y", fmt.Sprint(height), "-e", "TERM=xterm-256color", cmd); out != "" {
		t.Fatalf("tmux new-session: %s", out)
	}
	return tt
}

func (tt *tmuxTerm) run(args ...string) string {
	out, _ := exec.Command(tt.tmux, append([]string{"-L", tt.sock}, args...)...).CombinedOutput()
	return string(out)
}

func (tt *tmuxTerm) screen() string { return tt.run("capture-pane", "-t", "t", "-p") }

func (tt *tmuxTerm) keys(k ...string) { tt.run(append([]string{"send-keys", "-t", "t"}, k...)...) }

// waitFor polls the screen until cond holds, or fails the test after d
// with what the screen shows.
func (tt *tmuxTerm) waitFor(what string, d time.Duration, cond func(string) bool) string {
	tt.t.Helper()
	deadline := time.Now().Add(d)
	for {
		s := tt.screen()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			tt.t.Fatalf("waiting for %s; the screen shows:\n%s", what, s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

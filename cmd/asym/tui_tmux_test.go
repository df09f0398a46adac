package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asym/playbook/lab"
	"asym/probes/probetest"
)

// TestTUIInTmux runs the built binary in a real terminal (tmux, on a socket
// of its own) against a lab scenario, walks the playbook with the keys on
// screen, and checks the finding is shown and that e wrote notes with it.
func TestTUIInTmux(t *testing.T) {
	probetest.RequireRoot(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is needed for the real-terminal test (a fresh machine has it): ", err)
	}
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

	sock := "asym-test-" + hex.EncodeToString(b)
	run := func(args ...string) string {
		out, err := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
		if err != nil && args[0] != "kill-server" {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	t.Cleanup(func() { run("kill-server") })
	notes := filepath.Join(dir, "notes.md")
	c := env.Checks[0]
	cmdline := strings.Join([]string{bin, "--netns", c.Target, "--notes", notes, c.Flow}, " ") + "; echo asym-exited-$?; sleep 60"
	run("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "-e", "TERM=xterm-256color", cmdline)
	screen := func() string { return run("capture-pane", "-t", "t", "-p") }
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			s := screen()
			if cond(s) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; the screen shows:\n%s", what, s)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the first screen", func(s string) bool { return strings.Contains(s, "enter next step") })
	run("send-keys", "-t", "t", "a")
	s := waitFor("the findings", func(s string) bool { return strings.Contains(s, "4 finding(s)") })
	for _, want := range []string{"CRIT rp_filter_strict_drop", "CRIT reply_wrong_egress", "CRIT missing_source_rule", "WARN arp_flux", "▶ RTNETLINK answers: Invalid argument", "server side"} {
		if !strings.Contains(s, want) {
			t.Errorf("the screen lacks %q:\n%s", want, s)
		}
	}
	run("send-keys", "-t", "t", "Tab", "Enter")
	waitFor("the finding's evidence", func(s string) bool {
		return strings.Contains(s, "IPReversePathFilter") && strings.Contains(s, "Evidence")
	})
	run("send-keys", "-t", "t", "e")
	waitFor("the notes", func(s string) bool { return strings.Contains(s, "notes appended to") })
	b2, err := os.ReadFile(notes)
	if err != nil || !strings.Contains(string(b2), "rp_filter_strict_drop") || !strings.Contains(string(b2), "ip rule add from 198.51.100.11") {
		t.Fatalf("notes: %v\n%s", err, b2)
	}
	run("send-keys", "-t", "t", "q")
	s = waitFor("asym to exit", func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	if strings.Contains(s, "STEPS") {
		t.Errorf("the terminal was not restored after q:\n%s", s)
	}
}

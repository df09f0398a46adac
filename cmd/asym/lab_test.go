package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"asym/lab"
	"asym/probes/probetest"
)

// These tests build their labs under a prefix of their own
// (ASYM_LAB_PREFIX), so that a lab someone has up on the same machine, or
// another test run's, never meets theirs; they check that nothing of it is
// left.

// useLab gives the test a lab prefix of its own, waits until that lab is
// free and, when the test ends, removes what is left of it, unless a live
// process owns or holds it.
func useLab(t *testing.T) {
	t.Helper()
	b := make([]byte, 3)
	rand.Read(b)
	t.Setenv("ASYM_LAB_PREFIX", "asym-l"+hex.EncodeToString(b)+"-")
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(time.Second) {
		err := refuseIfUp()
		if err != nil && !strings.Contains(err.Error(), ", owned by ") {
			_, err = removeLeftovers() // no live owner: a crash's leftovers, unless a process holds them
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the machine's lab is not free after 2 minutes (another asym lab, or another test run?): %v", err)
		}
	}
	t.Cleanup(func() {
		st, err := readLabState()
		for end := time.Now().Add(15 * time.Second); err == nil && st.process().Alive() && time.Now().Before(end); {
			time.Sleep(200 * time.Millisecond) // a view this test closed is still tearing its lab down
		}
		if err == nil && st.process().Alive() {
			t.Logf("left the lab alone: it is owned by %s", st.ownedBy())
			return
		}
		if _, err := removeLeftovers(); err != nil {
			t.Logf("left alone: %v", err)
		}
	})
}

func noLabLeft(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		left, _ := lab.Leftovers(labPrefix())
		// Only the lab's own processes and this test's watchdogs: other
		// tests of the package run the same binary at the same time
		// (TestKilledAnywhere leaves watchdogs that wait for their
		// deadline in its own state directory).
		var procs []string
		for _, p := range ourProcesses() {
			if strings.Contains(p, " lab ") || strings.Contains(p, "fix --watchdog "+os.Getenv("ASYM_STATE_DIR")+"/") {
				procs = append(procs, p)
			}
		}
		if len(left) == 0 && len(procs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left behind: namespaces %v, processes %v", left, procs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestLabUpDown(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	useLab(t)
	bin := asymBinary(t)
	out, err := exec.Command(bin, "lab", "up", "two-isps").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "lab two-isps is up") {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	var st labState
	b, err := os.ReadFile(labStatePath())
	if err != nil || json.Unmarshal(b, &st) != nil || !st.process().Alive() {
		t.Fatalf("lab state: %v %s", err, b)
	}
	// The detached lab answers: asym check sees the failure after traffic.
	time.Sleep(2500 * time.Millisecond)
	var buf bytes.Buffer
	c := st.Checks[0]
	if code := run(append([]string{"check", "--netns", c.Target}, strings.Fields(c.Flow)...), &buf, &buf); code != 1 || !strings.Contains(buf.String(), "reply_wrong_egress") {
		t.Fatalf("check on the lab: %d\n%s", code, buf.String())
	}
	if out, err := exec.Command(bin, "lab", "up", "healthy").CombinedOutput(); err == nil || !strings.Contains(string(out), "already up") {
		t.Fatalf("a second lab must be refused: %v %s", err, out)
	}
	out, err = exec.Command(bin, "lab", "down").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed") {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	noLabLeft(t)
	if out, _ := exec.Command(bin, "lab", "down").CombinedOutput(); !strings.Contains(string(out), "no lab was up") {
		t.Fatalf("down twice: %s", out)
	}
}

// TestLabRunInTmux: lab run opens the view on the scenario with its
// traffic, the fix applied from the view heals it visibly, and quitting
// removes everything.
func TestLabRunInTmux(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	useLab(t)
	cmd := "cd " + t.TempDir() + " && ASYM_LAB_PREFIX=" + labPrefix() + " ASYM_STATE_DIR=" + os.Getenv("ASYM_STATE_DIR") + " ASYM_EXE=" + asymBinary(t) +
		" ASYM_WATCHDOG=detached " + asymBinary(t) + " lab run missing-link-route; echo asym-exited-$?; sleep 60"
	tt := newTmux(t, 120, 40, cmd)
	waitFor := func(what string, cond func(string) bool) string {
		t.Helper()
		return tt.waitFor(what, 25*time.Second, cond)
	}
	keys := tt.keys
	waitFor("failing lab traffic", func(s string) bool {
		return strings.Contains(s, "lab missing-link-route") && strings.Contains(s, "0 worked, 2 failed")
	})
	keys("a")
	waitFor("the finding", func(s string) bool { return strings.Contains(s, "CRIT missing_link_route") })
	keys("Tab", "Enter", "f")
	waitFor("the fix pane", func(s string) bool { return strings.Contains(s, "enter: apply") })
	time.Sleep(700 * time.Millisecond)
	keys("Enter")
	waitFor("the confirmation", func(s string) bool { return strings.Contains(s, "Apply these") && strings.Contains(s, "y apply") })
	time.Sleep(700 * time.Millisecond)
	keys("y")
	// The prompt it answers: the banner once the steps ran again after
	// the fix (K and U, nothing else, decide it).
	waitFor("the keep prompt", func(s string) bool {
		return strings.Contains(s, "FIX PENDING: reverts in") && strings.Contains(s, "K keep · U revert now")
	})
	waitFor("the traffic to recover", func(s string) bool { return strings.Contains(s, "✓✓") })
	keys("U") // revert: the view must say so, and the lab goes on
	waitFor("the revert", func(s string) bool { return strings.Contains(s, "reverted: the host is as it was") })
	keys("q")
	waitFor("asym to exit", func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	noLabLeft(t)
}

// ourProcesses lists lab servers and revert watchdogs still running (read
// from /proc: a fresh machine may have no pgrep).
func ourProcesses() []string {
	var out []string
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		b, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "lab serve") || strings.Contains(cmd, "fix --watchdog") {
			out = append(out, d.Name()+": "+cmd)
		}
	}
	return out
}

// TestLabPrefixChecked: ASYM_LAB_PREFIX is refused when another lab's
// prefix would name its namespaces too (lab down removes all it names).
func TestLabPrefixChecked(t *testing.T) {
	for _, c := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"asym-lab-", true}, {"asym-mine-", true}, {"asym-l0a1b2c-", true},
		{"asym-", false}, {"asym-lab-x-", false}, {"asym-a-b-", false}, {"lab-", false}, {"asym-Mine-", false}, {"asym-mine", false},
	} {
		t.Setenv("ASYM_LAB_PREFIX", c.prefix)
		var out bytes.Buffer
		code := run([]string{"lab", "list"}, &out, &out) // list: it touches nothing
		refused := code == 2 && strings.Contains(out.String(), "ASYM_LAB_PREFIX=")
		if refused == c.ok {
			t.Errorf("ASYM_LAB_PREFIX=%q: exit %d, %s", c.prefix, code, out.String())
		}
	}
}

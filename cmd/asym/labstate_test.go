package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"asym/lab"
	"asym/probes/probetest"
)

// TestLabInUseStays: a lab that asym lab run shows belongs to its view.
// asym lab down, a second lab and the tests' own cleanup refuse to touch
// it and name the process; a fix applied to it meanwhile leaves no
// journal, lock file or watchdog once the view has closed.
func TestLabInUseStays(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	useLab(t)
	bin := asymBinary(t)
	state := os.Getenv("ASYM_STATE_DIR")
	tt := newTmux(t, 120, 40, "cd "+t.TempDir()+" && ASYM_LAB_PREFIX="+labPrefix()+" ASYM_STATE_DIR="+state+" ASYM_EXE="+bin+" ASYM_WATCHDOG=detached "+bin+" lab run two-isps; echo asym-exited-$?; sleep 60")
	tt.waitFor("the lab's view", 30*time.Second, func(s string) bool { return strings.Contains(s, "lab two-isps") })
	st, err := readLabState()
	if err != nil || st.Owner != ownerRun || !st.process().Alive() || len(st.Namespaces) == 0 {
		t.Fatalf("the lab's record: %+v %v", st, err)
	}
	owner := "asym lab run (pid " + strconv.Itoa(st.PID)

	out, err := exec.Command(bin, "lab", "down").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use, owned by "+owner) || !strings.Contains(string(out), "quit its view (q)") {
		t.Errorf("lab down on a lab in use: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "lab", "up", "healthy").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "owned by "+owner) {
		t.Errorf("a second lab while one is in use: %v\n%s", err, out)
	}
	// The tests' cleanup (and lab down) on namespaces without a live
	// record: a process that holds them keeps them.
	if _, err := removeLeftovers(); err == nil || !strings.Contains(err.Error(), "is in use by pid "+strconv.Itoa(st.PID)) {
		t.Errorf("removing a held lab: %v", err)
	}
	if left, _ := lab.Leftovers(labPrefix()); len(left) != len(st.Namespaces) {
		t.Fatalf("the lab lost namespaces: %v, had %v", left, st.Namespaces)
	}

	fix := exec.Command(bin, "fix", "--apply", "--no-wait", "--revert-after", "10m", "--netns", st.Checks[0].Target)
	fix.Args = append(fix.Args, strings.Fields(st.Checks[0].Flow)...)
	if out, err := fix.CombinedOutput(); err != nil {
		t.Fatalf("fix --apply: %v\n%s", err, out)
	}
	if len(ourProcesses()) == 0 {
		t.Fatal("no watchdog runs for the applied fix")
	}
	tt.waitFor("the traffic to recover", 20*time.Second, func(s string) bool { return strings.Contains(s, "✓") })
	tt.keys("q")
	tt.waitFor("asym to exit", 20*time.Second, func(s string) bool { return strings.Contains(s, "asym-exited-0") })
	noLabLeft(t)
	if left, _ := filepath.Glob(filepath.Join(state, "*")); len(left) > 0 {
		t.Errorf("files of the lab outlived it: %v", left)
	}
	if _, err := os.Stat(labStatePath()); !os.IsNotExist(err) {
		t.Errorf("the lab's record outlived it: %v", err)
	}
}

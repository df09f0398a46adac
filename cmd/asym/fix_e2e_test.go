package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"asym/fix/apply"
	"asym/lab"
	"asym/probes/probetest"
)

var buildOnce struct {
	sync.Once
	path string
	err  error
}

// asymBinary builds asym once per test run: the revert watchdog is a
// separate process, and it must be asym, not the test binary.
func asymBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "asym-bin-")
		if err != nil {
			buildOnce.err = err
			return
		}
		buildOnce.path = filepath.Join(dir, "asym")
		if out, err := exec.Command("go", "build", "-o", buildOnce.path, ".").CombinedOutput(); err != nil {
			buildOnce.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildOnce.err != nil {
		t.Fatal(buildOnce.err)
	}
	return buildOnce.path
}

// fixEnv prepares a private journal directory and the watchdog binary.
func fixEnv(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	t.Setenv("ASYM_EXE", asymBinary(t))
	t.Setenv("ASYM_WATCHDOG", "detached") // CI has no systemd as PID 1; be the same everywhere
}

func upScenario(t *testing.T, name string) *lab.Env {
	t.Helper()
	sc, ok := lab.Find(name)
	if !ok {
		t.Fatalf("no scenario %s", name)
	}
	b := make([]byte, 3)
	rand.Read(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	env, err := sc.Up(ctx, "asym-f"+hex.EncodeToString(b)+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Down() })
	return env
}

// dump renders everything a fix may change in a namespace: every rule
// and every route of every table with every field the kernel reads back
// (metric, protocol, iif…), and the per-interface sysctls fixes touch.
func dump(t *testing.T, ns string) string {
	t.Helper()
	h, err := netns.GetFromName(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	return dumpHandle(t, h)
}

func asymRun(t *testing.T, args ...string) (int, string) {
	t.Helper()
	var out bytes.Buffer
	code := run(args, &out, &out)
	return code, out.String()
}

// TestFixHealsAndRollsBack: for every fixable lab scenario, asym fix --apply
// heals the real traffic; --rollback puts back exactly what was there.
func TestFixHealsAndRollsBack(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	for _, sc := range lab.Scenarios() {
		if !sc.Fixable {
			continue
		}
		t.Run(sc.Name, func(t *testing.T) {
			env := upScenario(t, sc.Name)
			c := env.Checks[0]
			rollbackOnFailure(t, "--netns", c.Target)
			ctx := context.Background()
			if env.Try(ctx, 1500*time.Millisecond) == nil {
				t.Fatal("the scenario should fail before the fix")
			}
			before := dump(t, c.Target)
			flowWords := strings.Fields(c.Flow)

			code, out := asymRun(t, append([]string{"fix", "--netns", c.Target}, flowWords...)...)
			dry := "Dry run: nothing changed"
			if sc.FixWatch {
				// The plain plan lacks the gateway and says how to give or
				// learn it; asym never applies a guess.
				dry = "needs the gateway of"
			}
			if code != 0 || !strings.Contains(out, dry) {
				t.Fatalf("dry run: %d\n%s", code, out)
			}
			if dump(t, c.Target) != before {
				t.Fatal("the dry run changed the namespace")
			}
			args := []string{"fix", "--netns", c.Target, "--apply", "--revert-after", "60s"}
			if sc.FixWatch {
				tctx, stop := context.WithCancel(ctx)
				traffic := env.Traffic(tctx, 300*time.Millisecond)
				defer func() {
					stop()
					for range traffic {
					}
				}()
				args = append(args, "--watch", "3s")
			}
			code, out = asymRun(t, append(args, flowWords...)...)
			if sc.FixWatch && !strings.Contains(out, "sent the flow's packets in on") {
				t.Fatalf("the gateway must come from the frames of the flow:\n%s", out)
			}
			if code != 0 || !strings.Contains(out, "Applied") || !strings.Contains(out, "after:  no findings") {
				t.Fatalf("apply: %d\n%s", code, out)
			}
			if err := env.Try(ctx, 2*time.Second); err != nil {
				t.Fatalf("the fix did not heal the real traffic: %v\n%s", err, out)
			}
			code, out = asymRun(t, "fix", "--netns", c.Target, "--status")
			if code != 0 || !strings.Contains(out, "pending") {
				t.Fatalf("status: %d\n%s", code, out)
			}
			code, out = asymRun(t, "fix", "--netns", c.Target, "--rollback")
			if code != 0 || !strings.Contains(out, "rolled back") {
				t.Fatalf("rollback: %d\n%s", code, out)
			}
			if after := dump(t, c.Target); after != before {
				t.Fatalf("rollback did not restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if env.Try(ctx, 1500*time.Millisecond) == nil {
				t.Fatal("after the rollback the flow should fail again")
			}
			noWatchdogLeft(t) // the watchdog leaves once the fix is decided
			code, out = asymRun(t, "fix", "--netns", c.Target, "--confirm")
			if code != 2 || !strings.Contains(out, "already rolled back") {
				t.Fatalf("confirm after rollback must refuse: %d\n%s", code, out)
			}
		})
	}
}

// TestFixConfirmStays: a confirmed fix outlives its deadline.
func TestFixConfirmStays(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	code, out := asymRun(t, append([]string{"fix", "--netns", c.Target, "--apply", "--revert-after", "5s"}, strings.Fields(c.Flow)...)...)
	if code != 0 {
		t.Fatalf("apply: %s", out)
	}
	if code, out = asymRun(t, "fix", "--netns", c.Target, "--confirm"); code != 0 || !strings.Contains(out, "confirmed") {
		t.Fatalf("confirm: %d %s", code, out)
	}
	time.Sleep(6 * time.Second)
	if err := env.Try(context.Background(), 2*time.Second); err != nil {
		t.Fatalf("a confirmed fix must stay after the deadline: %v", err)
	}
}

// TestWatchdogRevertsWhenTheSessionDies applies from a real terminal and
// then kills asym with SIGKILL, and in a second run closes the terminal
// (SIGHUP), while it waits at the keep prompt: the watchdog, in a session
// of its own, restores the namespace at the deadline.
func TestWatchdogRevertsWhenTheSessionDies(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Fatal("tmux is needed: ", err)
	}
	for _, how := range []string{"SIGKILL", "SIGHUP"} {
		t.Run(how, func(t *testing.T) {
			env := upScenario(t, "two-nics-strict")
			c := env.Checks[0]
			before := dump(t, c.Target)
			sock := "asym-fix-" + strings.ToLower(how) + "-" + filepath.Base(env.Prefix)
			tm := func(args ...string) string {
				out, _ := exec.Command(tmux, append([]string{"-L", sock}, args...)...).CombinedOutput()
				return string(out)
			}
			t.Cleanup(func() { tm("kill-server") })
			cmd := fmt.Sprintf("ASYM_STATE_DIR=%s ASYM_EXE=%s ASYM_WATCHDOG=detached %s fix --netns %s --apply --revert-after 6s %s",
				os.Getenv("ASYM_STATE_DIR"), asymBinary(t), asymBinary(t), c.Target, c.Flow)
			tm("new-session", "-d", "-s", "t", "-x", "120", "-y", "40", cmd)
			deadline := time.Now().Add(15 * time.Second)
			for !strings.Contains(tm("capture-pane", "-t", "t", "-p"), "Keep this change?") {
				if time.Now().After(deadline) {
					t.Fatalf("asym did not reach the keep prompt:\n%s", tm("capture-pane", "-t", "t", "-p"))
				}
				time.Sleep(50 * time.Millisecond)
			}
			if env.Try(context.Background(), 2*time.Second) != nil {
				t.Fatal("the fix should be in place while asym waits")
			}
			if how == "SIGKILL" {
				pid := strings.TrimSpace(tm("display-message", "-p", "-t", "t", "#{pane_pid}"))
				if out, err := exec.Command("kill", "-KILL", pid).CombinedOutput(); err != nil {
					t.Fatalf("kill %s: %v %s", pid, err, out)
				}
			} else {
				tm("kill-server") // the terminal goes away: SIGHUP to its session
			}
			id := apply.IDFor("netns", c.Target)
			for {
				j, err := apply.Load(apply.PathFor(id))
				if err == nil && j.State == apply.StateReverted {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the watchdog did not revert: %+v %v", j, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if after := dump(t, c.Target); after != before {
				t.Fatalf("the watchdog did not restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

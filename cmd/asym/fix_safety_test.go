package main

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"asym/evidence"
	"asym/fix"
	"asym/fix/apply"
	"asym/lab/namespace"
	"asym/probes/probetest"
	"asym/session"
)

// The tests of issue #16: each fault a careful operator's worst night
// found, reproduced on real namespaces with the built binary, asserting the
// kernel's exact state afterwards and what asym said.

// asymRules counts the rules asym added (its protocol) in a namespace.
func asymRules(t *testing.T, h netns.NsHandle) int {
	t.Helper()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	rules, _ := nl.RuleList(netlink.FAMILY_ALL)
	n := 0
	for _, r := range rules {
		if r.Protocol == fix.Protocol {
			n++
		}
	}
	return n
}

func nsHandle(t *testing.T, name string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestConcurrentApplies (case 1): two `asym fix --apply` on one namespace
// at once, as real processes, several times. Exactly one applies; the
// other is refused and changes nothing; one rollback restores the
// namespace exactly.
func TestConcurrentApplies(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	h := nsHandle(t, c.Target)
	before := dump(t, c.Target)
	args := append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, strings.Fields(c.Flow)...)
	for round := range 5 {
		a, b := startAsym(t, args...), startAsym(t, args...)
		codeA, outA := a.wait()
		codeB, outB := b.wait()
		winner, loserOut := a, outB
		if codeA != 0 {
			winner, loserOut = b, outA
		}
		if codeA+codeB != 2 || (codeA != 0 && codeB != 0) {
			t.Fatalf("round %d: want one apply to succeed and one to be refused (exit 2):\n--- exit %d\n%s\n--- exit %d\n%s", round, codeA, outA, codeB, outB)
		}
		if !strings.Contains(loserOut, "changed nothing") && !strings.Contains(loserOut, "nothing asym can apply") {
			t.Errorf("round %d: the refused apply must say it changed nothing:\n%s", round, loserOut)
		}
		j := journalOf(t, "netns", c.Target)
		if j.State != apply.StatePending || j.Applier.PID != winner.cmd.Process.Pid {
			t.Fatalf("round %d: the journal must be the winner's (%d), pending: %s by %d", round, winner.cmd.Process.Pid, j.State, j.Applier.PID)
		}
		if n := asymRules(t, h); n != 1 {
			t.Fatalf("round %d: want the fix applied once (one rule of asym's), got %d", round, n)
		}
		if code, out := asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
			t.Fatalf("round %d: rollback: %d\n%s", round, code, out)
		}
		if after := dump(t, c.Target); after != before {
			t.Fatalf("round %d: one rollback must restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", round, before, after)
		}
	}
	noWatchdogLeft(t)
}

// TestWatchdogKilledIsReported (case 2): with the watchdog killed, the fix
// would stay for good. --status says so and exits 1, check adds a line and
// exits 4 (also beside --json), the session reports it for the view, a new
// apply is refused with what to do, and --rollback restores the namespace.
func TestWatchdogKilledIsReported(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	flowWords := strings.Fields(c.Flow)
	if code, out := asymExec(t, append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, flowWords...)...); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	j := journalOf(t, "netns", c.Target)
	killWatchdog(t, j)
	rollback := "asym fix --netns " + c.Target + " --rollback"

	code, out := asymExec(t, "fix", "--netns", c.Target, "--status")
	if code != 1 || !strings.Contains(out, "is gone and recorded no revert: the revert did not run") || !strings.Contains(out, rollback) || !strings.Contains(out, "(gone)") {
		t.Errorf("status must say the watchdog is gone, what to run, and exit 1: %d\n%s", code, out)
	}
	code, out = asymExec(t, append([]string{"check", "--netns", c.Target}, flowWords...)...)
	if code != exitFixStuck || !strings.Contains(out, "!! a fix asym applied here") || !strings.Contains(out, rollback) {
		t.Errorf("check must report the stuck fix and exit %d: %d\n%s", exitFixStuck, code, out)
	}
	if strings.Index(out, "!! a fix asym applied here") > strings.Index(out, "asym check  ") {
		t.Errorf("the stuck fix heads check's text, before the report:\n%s", out)
	}
	cmd := exec.Command(asymBinary(t), append([]string{"check", "--json", "--netns", c.Target}, flowWords...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Run()
	if cmd.ProcessState.ExitCode() != exitFixStuck || !strings.Contains(stderr.String(), "the revert did not run") {
		t.Errorf("check --json: exit %d, stderr %s", cmd.ProcessState.ExitCode(), stderr.String())
	}
	var rep map[string]any
	mustJSON(t, stdout.String(), &rep)

	sess, err := session.Open(session.Config{Netns: c.Target})
	if err != nil {
		t.Fatal(err)
	}
	pf := sess.PendingFix()
	sess.Close()
	if pf == nil || !strings.Contains(pf.Problem, "the revert did not run") || pf.Rollback != rollback {
		t.Errorf("the session's PendingFix must carry the problem: %+v", pf)
	}
	code, out = asymExec(t, append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, flowWords...)...)
	if code != 2 || !strings.Contains(out, "is not settled") || !strings.Contains(out, rollback) {
		t.Errorf("a new apply must be refused, saying what to run: %d\n%s", code, out)
	}
	if code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 || !strings.Contains(out, "rolled back") {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatalf("the rollback did not restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if code, out = asymExec(t, "fix", "--netns", c.Target, "--status"); code != 0 {
		t.Errorf("status after the rollback: %d\n%s", code, out)
	}
}

// TestPidTargetExits (case 3): a fix applied with --pid to a process whose
// namespace outlives it (ip netns keeps it mounted). The journal is still
// shown by --pid; the watchdog, holding the namespace, reverts it at the
// deadline; and a --rollback by the gone pid finds it through the
// watchdog.
func TestPidTargetExits(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	before := dump(t, c.Target)
	for _, how := range []string{"deadline", "rollback"} {
		t.Run(how, func(t *testing.T) {
			sleeper := exec.Command("ip", "netns", "exec", c.Target, "sleep", "300")
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			pid := sleeper.Process.Pid
			pidArg := []string{"--pid", strconv.Itoa(pid)}
			rollbackOnFailure(t, pidArg...)
			waitInNamespace(t, pid, c.Target)
			args := append(append([]string{"fix", "--apply", "--no-wait", "--revert-after", "6s"}, pidArg...), strings.Fields(c.Flow)...)
			if code, out := asymExec(t, args...); code != 0 {
				t.Fatalf("apply: %d\n%s", code, out)
			}
			sleeper.Process.Kill()
			sleeper.Wait()
			code, out := asymExec(t, append([]string{"fix", "--status"}, pidArg...)...)
			if code != 0 || !strings.Contains(out, "pending") || !strings.Contains(out, "(running)") {
				t.Fatalf("status by the gone pid must show the fix: %d\n%s", code, out)
			}
			if how == "rollback" {
				code, out = asymExec(t, append([]string{"fix", "--rollback"}, pidArg...)...)
				if code != 0 || !strings.Contains(out, "rolled back") || !strings.Contains(out, "no longer as pid "+strconv.Itoa(pid)) {
					t.Fatalf("rollback by the gone pid: %d\n%s", code, out)
				}
			} else {
				j := waitJournal(t, "pid", strconv.Itoa(pid), 20*time.Second, func(j *apply.Journal) bool { return !j.Pending() })
				if j.State != apply.StateReverted || !strings.Contains(strings.Join(j.Log, "\n"), "undone: ") {
					t.Fatalf("the watchdog must revert in the namespace it holds: %s\n%s", j.State, strings.Join(j.Log, "\n"))
				}
			}
			if after := dump(t, c.Target); after != before {
				t.Fatalf("the namespace was not restored exactly:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			noWatchdogLeft(t)
		})
	}
}

// waitInNamespace waits until process pid runs in the named namespace
// (ip netns exec enters it, then execs the command).
func waitInNamespace(t *testing.T, pid int, name string) {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Stat("/run/netns/"+name, &want); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var st unix.Stat_t
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
		if unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &st) == nil && st.Ino == want.Ino && strings.TrimSpace(string(b)) == "sleep" {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("process %d did not enter %s", pid, name)
		}
	}
}

func randomName() string {
	b := make([]byte, 4)
	rand.Read(b)
	return "asym-t-" + hex.EncodeToString(b)
}

// TestNamespaceRecreated (case 4): the namespace is deleted while the fix
// is pending and another is made under its name, looking exactly as the
// fixed one did (asym's rule, protocol and all; asym's sysctls). With the
// watchdog alive, it reverts the original, which it holds, and the new
// one is untouched. With the watchdog dead and the original freed (its
// inode free to be reused by the new one), --rollback recognises the new
// namespace as another (its cookie), touches nothing, and closes the fix
// as gone.
func TestNamespaceRecreated(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	name := randomName()
	rollbackOnFailure(t, "--netns", name)
	apply1 := append([]string{"fix", "--netns", name, "--apply", "--no-wait", "--revert-after", "6s"}, twoNICFlow...)

	t.Run("watchdog alive", func(t *testing.T) {
		orig, _ := twoNICHost(t, name)
		before := dumpHandle(t, orig)
		if code, out := asymExec(t, apply1...); code != 0 {
			t.Fatalf("apply: %d\n%s", code, out)
		}
		j := journalOf(t, "netns", name)
		if err := namespace.Remove(name); err != nil {
			t.Fatal(err)
		}
		fresh, _ := twoNICHost(t, name)
		makeLookAlike(t, fresh, j)
		freshState := dump(t, name)
		j = waitJournal(t, "netns", name, 20*time.Second, func(j *apply.Journal) bool { return !j.Pending() })
		if j.State != apply.StateReverted {
			t.Fatalf("the watchdog must revert: %s\n%s", j.State, strings.Join(j.Log, "\n"))
		}
		if got := dump(t, name); got != freshState {
			t.Fatalf("the watchdog changed the new namespace that has the name:\nbefore:\n%s\nafter:\n%s", freshState, got)
		}
		if got := dumpHandle(t, orig); got != before {
			t.Fatalf("the watchdog did not restore the namespace it changed:\nbefore:\n%s\nafter:\n%s", before, got)
		}
		noWatchdogLeft(t)
		namespace.Remove(name)
	})

	t.Run("watchdog dead, inode free", func(t *testing.T) {
		orig, release := twoNICHost(t, name)
		var st unix.Stat_t
		unix.Fstat(int(orig), &st)
		apply60 := append([]string{"fix", "--netns", name, "--apply", "--no-wait", "--revert-after", "60s"}, twoNICFlow...)
		if code, out := asymExec(t, apply60...); code != 0 {
			t.Fatalf("apply: %d\n%s", code, out)
		}
		j := journalOf(t, "netns", name)
		killWatchdog(t, j)
		// Nothing may hold the original now, so that its inode is freed.
		release()
		if err := namespace.Remove(name); err != nil {
			t.Fatal(err)
		}
		ns, reused := createWithInode(t, name, st.Ino)
		twoNICSetUp(t, ns)
		t.Logf("the new namespace got the inode of the freed one: %v", reused)
		makeLookAlike(t, nsHandle(t, name), j)
		freshState := dump(t, name)
		code, out := asymExec(t, "fix", "--netns", name, "--rollback")
		switch {
		case code == 0 && strings.Contains(out, "the namespace the fix changed is gone"):
		case code == 0 && strings.Contains(out, "no longer as netns "+name) && !reused:
			// Something on the machine still held the original: it was
			// found by its identity and rolled back there, which is right.
			t.Logf("the original namespace was still held somewhere:\n%s", out)
		default:
			t.Fatalf("rollback must close the fix as gone: %d\n%s", code, out)
		}
		if got := dump(t, name); got != freshState {
			t.Fatalf("the rollback changed a namespace that only has the name:\nbefore:\n%s\nafter:\n%s", freshState, got)
		}
	})
}

// TestStateDirNotWritable (case 5): the state directory (a tmpfs of the
// test's) becomes read-only, or full, while a fix is pending. The watchdog
// reverts the kernel at the deadline all the same and writes its outcome
// elsewhere; --status says where and exits 1; apply, confirm and rollback
// are not blocked by the stuck journal: apply says to roll back, rollback
// settles it once the directory can be written again.
func TestStateDirNotWritable(t *testing.T) {
	probetest.RequireRoot(t)
	for _, how := range []string{"read-only", "full"} {
		t.Run(how, func(t *testing.T) {
			fixEnv(t)
			dir := t.TempDir()
			if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=512k,mode=0700"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			t.Setenv("ASYM_STATE_DIR", dir)
			fallback := t.TempDir()
			t.Setenv("ASYM_FALLBACK_DIR", fallback)
			env := upScenario(t, "two-nics-strict")
			c := env.Checks[0]
			rollbackOnFailure(t, "--netns", c.Target)
			before := dump(t, c.Target)
			applyArgs := append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait", "--revert-after", "5s"}, strings.Fields(c.Flow)...)
			if code, out := asymExec(t, applyArgs...); code != 0 {
				t.Fatalf("apply: %d\n%s", code, out)
			}
			restore := breakDir(t, dir, how)
			var outcome string
			for end := time.Now().Add(20 * time.Second); outcome == ""; time.Sleep(100 * time.Millisecond) {
				files, _ := filepath.Glob(filepath.Join(fallback, "asym-outcome-*.json"))
				if len(files) > 0 {
					outcome = files[0]
				}
				if time.Now().After(end) {
					t.Fatalf("the watchdog wrote no outcome to %s", fallback)
				}
			}
			if b, _ := os.ReadFile(outcome); !strings.Contains(string(b), `"state": "reverted"`) {
				t.Fatalf("the outcome must say reverted:\n%s", b)
			}
			if after := dump(t, c.Target); after != before {
				t.Fatalf("the watchdog must revert the kernel even when it cannot write the journal:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			code, out := asymExec(t, "fix", "--netns", c.Target, "--status")
			if code != 1 || !strings.Contains(out, "could not be recorded") || !strings.Contains(out, outcome) {
				t.Errorf("status must say the revert was not recorded and where it was: %d\n%s", code, out)
			}
			code, out = asymExec(t, applyArgs...)
			if code != 2 || !strings.Contains(out, "--rollback") || strings.Contains(out, "still pending") {
				t.Errorf("apply must say what to do, not 'still pending': %d\n%s", code, out)
			}
			code, out = asymExec(t, "fix", "--netns", c.Target, "--confirm")
			if code != 2 || !strings.Contains(out, "too late") {
				t.Errorf("confirm must say the fix was reverted: %d\n%s", code, out)
			}
			code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback")
			if code != 2 || !strings.Contains(out, "could not record it") {
				t.Errorf("rollback while the directory is %s: %d\n%s", how, code, out)
			}
			restore()
			code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback")
			if code != 0 || !strings.Contains(out, ": reverted") {
				t.Fatalf("rollback once the directory is writable must settle the journal: %d\n%s", code, out)
			}
			if code, out = asymExec(t, applyArgs...); code != 0 {
				t.Fatalf("apply after the journal was settled: %d\n%s", code, out)
			}
			if code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
				t.Fatalf("rollback: %d\n%s", code, out)
			}
			if after := dump(t, c.Target); after != before {
				t.Fatalf("not restored:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			noWatchdogLeft(t)
		})
	}
}

// breakDir makes the state directory read-only or full, and returns what
// undoes that.
func breakDir(t *testing.T, dir, how string) func() {
	t.Helper()
	if how == "read-only" {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		return func() {
			if err := unix.Mount("", dir, "", unix.MS_REMOUNT, "size=512k,mode=0700"); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	return func() { os.Remove(filepath.Join(dir, "fill")) }
}

// TestRollbackLeavesOthersChanges (cases 6 and 7, end to end): after the
// fix, someone adds a rule that differs from asym's only in iif, removes
// asym's, and sets a sysctl asym set to a value of their own. The rollback
// deletes neither, says what it left alone, and exits 1; everything else
// is as before.
func TestRollbackLeavesOthersChanges(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	h := nsHandle(t, c.Target)
	before := dump(t, c.Target)
	if code, out := asymExec(t, append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, strings.Fields(c.Flow)...)...); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	j := journalOf(t, "netns", c.Target)
	var sysctl *fix.SysctlSet
	for _, s := range j.Steps {
		if st, ok := s.Do.Step.(*fix.SysctlSet); ok && sysctl == nil {
			sysctl = st
		}
	}
	if sysctl == nil {
		t.Fatalf("the fix of two-nics-strict sets no sysctl: %+v", j.Steps)
	}
	nl := probetest.Netlink(t, h)
	rules, _ := nl.RuleList(netlink.FAMILY_V4)
	var mine netlink.Rule
	for _, r := range rules {
		if r.Protocol == fix.Protocol {
			mine = r
		}
	}
	theirs := mine
	theirs.Protocol, theirs.IifName = 0, "eth1"
	if err := nl.RuleAdd(&theirs); err != nil {
		t.Fatal(err)
	}
	if err := nl.RuleDel(&mine); err != nil {
		t.Fatal(err)
	}
	path := strings.TrimPrefix(evidence.SysctlPath(sysctl.Sysctl), "sys/")
	probetest.Sysctl(t, h, path, "3") // not asym's value, not the one before
	code, out := asymExec(t, "fix", "--netns", c.Target, "--rollback")
	if code != 1 || strings.Count(out, "\n  left alone: ") != 2 || !strings.Contains(out, sysctl.Sysctl+" is 3 now") {
		t.Fatalf("rollback must leave both alone, say so and exit 1: %d\n%s", code, out)
	}
	// Take theirs away by hand: what remains is the namespace as it was.
	if err := nl.RuleDel(&theirs); err != nil {
		t.Fatalf("their rule was not left: %v", err)
	}
	probetest.Sysctl(t, h, path, sysctl.Expect)
	if after := dump(t, c.Target); after != before {
		t.Fatalf("apart from theirs, the namespace must be as before:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	noWatchdogLeft(t)
}

// TestKilledBeforeAnyChange (case 8): asym is killed with SIGKILL right
// after it first wrote the journal ("applying", no watchdog armed, no
// step started). Its watchdog here is /bin/true, which never arms, so the
// kill lands in that state every time. Nothing changed; --status says so
// and exits 0; the next apply clears it with a sentence; so does
// --rollback.
func TestKilledBeforeAnyChange(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	applyArgs := append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, strings.Fields(c.Flow)...)
	killAfterJournal := func() {
		t.Helper()
		t.Setenv("ASYM_EXE", "/bin/true")
		p := startAsym(t, applyArgs...)
		waitJournal(t, "netns", c.Target, 10*time.Second, func(j *apply.Journal) bool { return j.State == apply.StateApplying })
		p.cmd.Process.Kill()
		p.wait()
		t.Setenv("ASYM_EXE", asymBinary(t))
		if after := dump(t, c.Target); after != before {
			t.Fatalf("asym changed the namespace before arming the revert:\n%s", after)
		}
	}
	killAfterJournal()
	code, out := asymExec(t, "fix", "--netns", c.Target, "--status")
	if code != 0 || !strings.Contains(out, "nothing was changed") {
		t.Errorf("status: %d\n%s", code, out)
	}
	if code, out = asymExec(t, append([]string{"check", "--netns", c.Target}, strings.Fields(c.Flow)...)...); code == exitFixStuck || strings.Contains(out, "!!") {
		t.Errorf("check must not report a stuck fix: %d\n%s", code, out)
	}
	code, out = asymExec(t, applyArgs...)
	if code != 0 || !strings.Contains(out, "was never made") || strings.Contains(out, "still pending") {
		t.Fatalf("the next apply must clear it and say so: %d\n%s", code, out)
	}
	if code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	killAfterJournal()
	code, out = asymExec(t, "fix", "--netns", c.Target, "--rollback")
	if code != 0 || !strings.Contains(out, "abandoned") || !strings.Contains(out, "nothing to undo") {
		t.Fatalf("rollback must clear it and say nothing was changed: %d\n%s", code, out)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatalf("not as before:\n%s", after)
	}
	noWatchdogLeft(t)
}

// TestUnsafeStateDir (case 9): a state directory others can write, one
// that belongs to another user, and a journal that is a symbolic link are
// refused with a sentence, and nothing changes (the link's target is not
// written).
func TestUnsafeStateDir(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	applyArgs := append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, strings.Fields(c.Flow)...)
	dir := os.Getenv("ASYM_STATE_DIR")
	for _, cs := range []struct {
		name string
		set  func()
		says string
	}{
		{"world-writable", func() { os.Chmod(dir, 0o777) }, "can be written by group or others (mode 0777)"},
		{"another owner", func() { os.Chmod(dir, 0o700); os.Chown(dir, 65534, 65534) }, "belongs to uid 65534"},
	} {
		cs.set()
		code, out := asymExec(t, applyArgs...)
		if code != 2 || !strings.Contains(out, cs.says) {
			t.Errorf("%s: want exit 2 saying %q: %d\n%s", cs.name, cs.says, code, out)
		}
		if after := dump(t, c.Target); after != before {
			t.Fatalf("%s: the namespace changed", cs.name)
		}
	}
	os.Chown(dir, 0, 0)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("someone's file\n"), 0o600)
	if err := os.Symlink(victim, apply.PathFor(apply.IDFor("netns", c.Target))); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{applyArgs, {"fix", "--netns", c.Target, "--status"}, {"fix", "--netns", c.Target, "--rollback"}} {
		code, out := asymExec(t, args...)
		if code != 2 || !strings.Contains(out, "symbolic link") {
			t.Errorf("%v with a journal that is a link: %d\n%s", args, code, out)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "someone's file\n" {
		t.Errorf("the link's target was written: %q", b)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatal("the namespace changed")
	}
	os.Remove(apply.PathFor(apply.IDFor("netns", c.Target)))
	if code, out := asymExec(t, applyArgs...); code != 0 {
		t.Fatalf("apply in a safe directory: %d\n%s", code, out)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.tmp-*"))
	st, err := os.Lstat(apply.PathFor(apply.IDFor("netns", c.Target)))
	if len(left) > 0 || err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("the journal must be a regular file of mode 0600 and no temporary file left: %v %v %v", left, st.Mode(), err)
	}
	if code, out := asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	noWatchdogLeft(t)
}

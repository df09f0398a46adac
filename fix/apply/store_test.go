package apply

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"asym/fix"
)

// TestLockRemovedWhileWaiting: a lock file removed by its holder while
// another asym waits on it locks nothing any more; the waiter takes the
// lock on the file the name gives now, so it and a newcomer never hold
// the lock at once.
func TestLockRemovedWhileWaiting(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	path := PathFor("netns-x")
	holder, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.close()
	if err := holder.lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	waiter, err := openStore(path) // the same file, before it is removed
	if err != nil {
		t.Fatal(err)
	}
	defer waiter.close()
	var inside atomic.Int32
	got := make(chan error, 1)
	go func() {
		if err := waiter.lock(context.Background()); err != nil {
			got <- err
			return
		}
		inside.Add(1)
		time.Sleep(300 * time.Millisecond)
		inside.Add(-1)
		waiter.unlock()
		got <- nil
	}()
	time.Sleep(100 * time.Millisecond)
	holder.removeLock()
	holder.unlock()
	time.Sleep(100 * time.Millisecond) // the waiter holds it now, on a new file
	newcomer, err := openStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer newcomer.close()
	if err := newcomer.lock(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := inside.Load(); n != 0 {
		t.Fatal("the newcomer took the lock while the waiter held it")
	}
	newcomer.unlock()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// TestForgetLeavesNoFile: asym lab forgets the journal of a namespace it
// removes; neither the journal nor its lock stays, and forgetting what is
// not there is no error.
func TestForgetLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASYM_STATE_DIR", dir)
	st, err := openStore(PathFor("netns-asym-lab-host"))
	if err != nil {
		t.Fatal(err)
	}
	st.close()
	if err := os.WriteFile(PathFor("netns-asym-lab-host"), []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := Forget("netns-asym-lab-host"); err != nil {
			t.Fatal(err)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
			t.Fatalf("left behind: %v", left)
		}
	}
	t.Setenv("ASYM_STATE_DIR", filepath.Join(dir, "never-made"))
	if err := Forget("netns-asym-lab-host"); err != nil {
		t.Fatalf("no state directory: %v", err)
	}
}

// TestNoLockFileOutlivesAFix: a fix applied, kept and looked at leaves its
// journal (the last fix, for --status) and nothing else: the namespace's
// own lock is gone once the fix has begun, and Forget removes the rest.
func TestNoLockFileOutlivesAFix(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASYM_STATE_DIR", dir)
	tg, _, ns := host(t)
	steps := fix.Steps{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}}}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Confirm(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "ns-*")); len(left) > 0 {
		t.Errorf("the namespace's lock outlived the fix: %v", left)
	}
	if err := Forget(IDFor("netns", ns.Name)); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("left behind after Forget: %v", left)
	}
}

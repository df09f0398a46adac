package namespace_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"asym/lab/namespace"
)

// TestHolders: a process that holds a namespace open, or runs in it, is
// named; this process, which made it, is not.
func TestHolders(t *testing.T) {
	ns := create(t)
	if hs, err := namespace.Holders(ns.Name); err != nil || len(hs) != 0 {
		t.Fatalf("only this process holds it: %v %v", hs, err)
	}
	handle := os.NewFile(uintptr(ns.Handle), "netns")
	open := exec.Command("sleep", "30")
	open.ExtraFiles = []*os.File{handle} // its descriptor 3
	inside := exec.Command("ip", "netns", "exec", ns.Name, "sleep", "30")
	for _, c := range []*exec.Cmd{open, inside} {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	var hs []namespace.Holder
	for range 50 { // ip netns exec enters the namespace, then execs sleep
		hs, _ = namespace.Holders(ns.Name)
		if len(hs) == 2 && strings.Contains(hs[0].String()+hs[1].String(), "(sleep 30)") && !strings.Contains(hs[0].String()+hs[1].String(), "ip netns") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pids := map[int]bool{}
	for _, h := range hs {
		pids[h.PID] = true
	}
	if len(hs) != 2 || !pids[open.Process.Pid] || !pids[inside.Process.Pid] {
		t.Fatalf("holders %v, want pids %d (descriptor) and %d (inside)", hs, open.Process.Pid, inside.Process.Pid)
	}
	if _, err := namespace.Holders("asym-t-no-such-namespace"); err == nil {
		t.Error("a namespace that does not exist has no holders to list: want an error")
	}
}

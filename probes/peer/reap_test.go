package peer

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"
	"time"

	"asym/evidence"
	"asym/probes/probetest"
)

// TestCollectTimeoutKillsEscapedSession (issue #16, case 10): a peer
// command that starts a process in a session of its own (`setsid … &`)
// and then hangs. At the timeout both are killed: with the peer's cgroup
// (also a child that dropped its environment), and without one by the
// scan for the peer's token.
func TestCollectTimeoutKillsEscapedSession(t *testing.T) {
	probetest.RequireRoot(t) // the cgroup is made in asym's own
	for _, c := range []struct {
		name   string
		cgroup bool
		mode   string
	}{
		{"cgroup", true, "escape"},
		{"cgroup, environment dropped", true, "escape-noenv"},
		{"scan of /proc", false, "escape"},
	} {
		t.Run(c.name, func(t *testing.T) {
			useCgroup = c.cgroup
			t.Cleanup(func() { useCgroup = true })
			if c.cgroup && (cgroup2Mount() == "" || ownCgroup() == "") {
				t.Skip("no cgroup v2 here: the scan alone tracks the peer (tested below)")
			}
			o := fake(t, c.mode)
			pidFile := filepath.Join(t.TempDir(), "pids")
			o.Prefix = append(o.Prefix, "ASYM_FAKE_PIDS="+pidFile)
			o.Timeout = time.Second
			start := time.Now()
			res := Collect(context.Background(), o)
			pids := readPids(t, pidFile)
			t.Cleanup(func() { killAll(pids) })
			if res.Failure == nil || res.Failure.Kind != evidence.PeerTimeout {
				t.Fatalf("Failure = %+v, want a timeout", res.Failure)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("Collect took %v with a 1s timeout", took)
			}
			for _, pid := range pids {
				if !gone(pid, 2*time.Second) {
					t.Errorf("process %d of the peer (its own session) is still running after the timeout", pid)
				}
			}
			if g := cgroupsLeft(); len(g) > 0 {
				t.Errorf("the peer's cgroup is left: %v", g)
			}
		})
	}
}

// TestCollectCleansPeerText (issue #16, case 10): every string of a
// peer's collection, whatever field it is in, is cleaned before asym uses
// it: the escapes show, none acts.
func TestCollectCleansPeerText(t *testing.T) {
	res := Collect(context.Background(), fake(t, "hostile"))
	if res.Failure != nil {
		t.Fatalf("Failure = %+v (stderr %q)", res.Failure, res.Stderr)
	}
	c := res.Collection
	n := 0
	walkStrings(reflect.ValueOf(c).Elem(), func(s string) {
		n++
		harmless(t, "a string of the collection", s)
	})
	if n == 0 || c.Evidence.Host.Hostname != `db1\x1b[2J\x1b]0;pwned\x07\x9b31m\x85\u202egnp.exe\u2066x` {
		t.Errorf("the hostname must keep its text with the escapes shown: %q (%d strings)", c.Evidence.Host.Hostname, n)
	}
}

// walkStrings calls fn with every string reachable from v.
func walkStrings(v reflect.Value, fn func(string)) {
	switch v.Kind() {
	case reflect.String:
		fn(v.String())
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			walkStrings(v.Elem(), fn)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				walkStrings(v.Field(i), fn)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			walkStrings(v.Index(i), fn)
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			walkStrings(k, fn)
			walkStrings(v.MapIndex(k), fn)
		}
	}
}

// cgroupsLeft lists the peer cgroups this process made that are still
// there. Other processes in the same cgroup make theirs beside them (the
// tests of cmd/asym run asym --peer while these run): their names carry
// their pid.
func cgroupsLeft() []string {
	if cgroup2Mount() == "" || ownCgroup() == "" {
		return nil
	}
	left, _ := filepath.Glob(filepath.Join(cgroup2Mount(), ownCgroup(), "asym-peer-"+strconv.Itoa(os.Getpid())+"-*"))
	return left
}

package apply

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"asym/probes/probetest"
)

// keptFix applies sourceFix to a fresh namespace and keeps it. before is
// the namespace as it was.
func keptFix(t *testing.T) (j *Journal, h *netlink.Handle, ns probetest.NS, before string) {
	t.Helper()
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before = state(t, h, ns)
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix(), RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	if j, err = Confirm(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if state(t, h, ns) == before {
		t.Fatal("the fix changed nothing")
	}
	return j, h, ns, before
}

// A kept fix is undone exactly, with who and when in its journal; a
// second undo says it was undone already, and changes nothing.
func TestUndoKept(t *testing.T) {
	j, h, ns, before := keptFix(t)
	j, err := Undo(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after := state(t, h, ns); after != before {
		t.Fatalf("the undo did not restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if j.State != StateUndone || j.Undone == nil || !strings.Contains(j.Undone.By, ", pid ") || time.Since(j.Undone.At) > time.Minute || len(j.LeftAlone) != 0 {
		t.Fatalf("want undone, when and by whom, nothing left alone: %s %+v %q", j.State, j.Undone, j.LeftAlone)
	}
	log := strings.Join(j.Log, "\n")
	if strings.Count(log, " undone: ") != 3 || !strings.Contains(log, "undone on request by ") {
		t.Errorf("the log must name each change undone and who asked:\n%s", log)
	}
	_, err = Undo(context.Background(), j.ID)
	var nothing *NothingToUndo
	if !errors.As(err, &nothing) || !strings.Contains(err.Error(), "was already undone at ") || !strings.Contains(err.Error(), j.Undone.By) {
		t.Fatalf("a second undo must say it was undone already, when and by whom: %v", err)
	}
	if after := state(t, h, ns); after != before {
		t.Fatal("the second undo changed the namespace")
	}
}

// The undo of a kept fix leaves what someone changed since, says so, and
// undoes the rest; when someone changed everything still there, nothing
// is undone and the fix stays kept.
func TestUndoKeptLeavesOthersChanges(t *testing.T) {
	t.Run("partial", func(t *testing.T) {
		j, h, ns, _ := keptFix(t)
		probetest.Sysctl(t, ns.Handle, "net/ipv4/conf/eth0/rp_filter", "1")
		j, err := Undo(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State != StateUndone || len(j.LeftAlone) != 1 || !strings.Contains(j.LeftAlone[0], "rp_filter is 1 now, not the 2 asym expected") {
			t.Fatalf("want undone with rp_filter left alone: %s %q", j.State, j.LeftAlone)
		}
		if s := state(t, h, ns); strings.Contains(s, `"protocol":245`) || strings.Contains(s, "proto 245") || !strings.Contains(s, "rp_filter 1") {
			t.Fatalf("asym's rule and route must be gone and their rp_filter kept:\n%s", s)
		}
	})
	t.Run("refused", func(t *testing.T) {
		j, h, ns, _ := keptFix(t)
		mine := asymsRule(t, h)
		if err := h.RuleAdd(theirRule()); err != nil {
			t.Fatal(err)
		}
		if err := h.RuleDel(&mine); err != nil {
			t.Fatal(err)
		}
		myRoute := asymsRoute(t, h)
		if err := h.RouteAdd(theirRoute(h)); err != nil {
			t.Fatal(err)
		}
		if err := h.RouteDel(&myRoute); err != nil {
			t.Fatal(err)
		}
		probetest.Sysctl(t, ns.Handle, "net/ipv4/conf/eth0/rp_filter", "1")
		theirs := state(t, h, ns)
		j, err := Undo(context.Background(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		if after := state(t, h, ns); after != theirs {
			t.Fatalf("the undo touched what someone else made:\nbefore:\n%s\nafter:\n%s", theirs, after)
		}
		if j.State != StateConfirmed || j.Undone != nil || len(j.LeftAlone) != 3 || !strings.Contains(strings.Join(j.Log, "\n"), "refused") {
			t.Fatalf("want the fix still kept, 3 things left alone and the refusal logged: %s %q\n%s", j.State, j.LeftAlone, strings.Join(j.Log, "\n"))
		}
	})
}

// An undo needs a kept fix: a pending one is rolled back instead, and
// one rolled back has nothing left to undo.
func TestUndoNeedsAKeptFix(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before := state(t, h, ns)
	if _, err := Undo(context.Background(), IDFor("netns", "asym-none")); !errors.Is(err, ErrNone) {
		t.Errorf("no journal: %v", err)
	}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix(), RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	withFix := state(t, h, ns)
	_, err = Undo(context.Background(), j.ID)
	var nothing *NothingToUndo
	if err == nil || errors.As(err, &nothing) || !strings.Contains(err.Error(), "is not kept yet") || !strings.Contains(err.Error(), "--rollback") {
		t.Fatalf("a pending fix must be refused, pointing at --rollback: %v", err)
	}
	if state(t, h, ns) != withFix {
		t.Fatal("the refused undo changed the namespace")
	}
	if _, err := Rollback(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	_, err = Undo(context.Background(), j.ID)
	if !errors.As(err, &nothing) || !strings.Contains(err.Error(), "was rolled back before it was kept") {
		t.Fatalf("a rolled-back fix has nothing to undo, and the undo must say so: %v", err)
	}
	if after := state(t, h, ns); after != before {
		t.Fatalf("the namespace is not as before:\n%s\n%s", before, after)
	}
}

// The undo commands are the journal's undo steps, newest first, entering
// the namespace and naming asym's objects by their protocol.
func TestUndoCommands(t *testing.T) {
	j, _, _, _ := keptFix(t)
	pre := "ip netns exec " + j.Target.Value + " "
	want := []string{
		pre + "sysctl -w net.ipv4.conf.eth0.rp_filter=0",
		pre + "ip rule del from 198.51.100.10 lookup 100 priority 1000 protocol 245",
		pre + "ip route del 198.51.100.0/24 dev eth0 scope link src 198.51.100.10 proto 245 table 100",
	}
	if got := j.UndoCommands(j.Target.Render()); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A new fix applied over a kept one replaces its journal; the new
// journal's log says that the kept fix stays, with its undo commands.
func TestApplyOverAKeptFix(t *testing.T) {
	j, _, _, _ := keptFix(t)
	tg, err := openRef(context.Background(), j.Target, j.Target.NSPath)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	tg.Kind, tg.Value = j.Target.Kind, j.Target.Value
	second, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix()[2:], RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	defer Rollback(context.Background(), second.ID)
	log := strings.Join(second.Log, "\n")
	if !strings.Contains(log, "stays in place") || !strings.Contains(log, "ip rule del from 198.51.100.10 lookup 100 priority 1000 protocol 245") {
		t.Fatalf("the new journal must carry the kept fix's undo:\n%s", log)
	}
}

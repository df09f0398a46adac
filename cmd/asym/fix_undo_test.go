package main

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"asym/evidence"
	"asym/fix"
	"asym/fix/apply"
	"asym/probes/probetest"
	"asym/session"
)

// The tests of `asym fix --undo` (issue #15): a kept fix undone later,
// on real namespaces with the built binary, asserting the kernel's exact
// state afterwards and what asym said.

// applyAndKeep applies the scenario's fix and keeps it.
func applyAndKeep(t *testing.T, target string, flowWords []string) *apply.Journal {
	t.Helper()
	if code, out := asymExec(t, append([]string{"fix", "--netns", target, "--apply", "--no-wait"}, flowWords...)...); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	if code, out := asymExec(t, "fix", "--netns", target, "--confirm"); code != 0 {
		t.Fatalf("confirm: %d\n%s", code, out)
	}
	noWatchdogLeft(t)
	return journalOf(t, "netns", target)
}

// TestUndoKeptFix: apply, keep, and later undo. --status shows a kept
// fix's undo commands; the undo restores rule, route and sysctl dumps
// identical to before, records who and when, and exits 0; a second undo
// says it was undone already and changes nothing.
func TestUndoKeptFix(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	j := applyAndKeep(t, c.Target, strings.Fields(c.Flow))
	withFix := dump(t, c.Target)
	if withFix == before {
		t.Fatal("the fix changed nothing")
	}

	code, out := asymExec(t, "fix", "--netns", c.Target, "--status")
	undo := "asym fix --netns " + c.Target + " --undo"
	if code != 0 || !strings.Contains(out, ": confirmed") || !strings.Contains(out, "undo it:  "+undo) {
		t.Fatalf("status of a kept fix must show how to undo it: %d\n%s", code, out)
	}
	byHand := j.UndoCommands(j.Target.Render())
	changes := 0
	for _, s := range j.Steps {
		if !fix.Stateless(s.Do.Step) {
			changes++
		}
	}
	if len(byHand) != changes || changes == 0 {
		t.Fatalf("want one undo command per change (%d): %q", changes, byHand)
	}
	for _, cmd := range byHand {
		if !strings.Contains(out, "\n    "+cmd+"\n") || !strings.HasPrefix(cmd, "ip netns exec "+c.Target+" ") {
			t.Errorf("status must list the undo command %q, in the namespace:\n%s", cmd, out)
		}
	}
	if !strings.Contains(out, "protocol 245") {
		t.Errorf("the undo of asym's rule must name its protocol:\n%s", out)
	}
	sess, err := session.Open(session.Config{Netns: c.Target})
	if err != nil {
		t.Fatal(err)
	}
	kept := sess.KeptFix()
	sess.Close()
	if kept == nil || kept.Undo != undo || !slices.Equal(kept.UndoCommands, byHand) || kept.Summary != j.Summary {
		t.Errorf("the session's KeptFix must carry the undo: %+v", kept)
	}

	code, out = asymExec(t, "fix", "--netns", c.Target, "--undo")
	if code != 0 || !strings.Contains(out, "Undone: what the fix changed is as it was before.") || !strings.Contains(out, ": undone\n") {
		t.Fatalf("undo: %d\n%s", code, out)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatalf("the undo did not restore the namespace exactly:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	j = journalOf(t, "netns", c.Target)
	if j.State != apply.StateUndone || j.Undone == nil || !strings.Contains(j.Undone.By, "pid ") || !strings.Contains(strings.Join(j.Log, "\n"), "undone on request by "+j.Undone.By) {
		t.Fatalf("the journal must record the undo, who and when: %s %+v\n%s", j.State, j.Undone, strings.Join(j.Log, "\n"))
	}
	code, out = asymExec(t, "fix", "--netns", c.Target, "--status")
	if code != 0 || !strings.Contains(out, "  undone:   ") || strings.Contains(out, "undo it:") {
		t.Errorf("status of an undone fix: %d\n%s", code, out)
	}

	code, out = asymExec(t, "fix", "--netns", c.Target, "--undo")
	if code != 0 || !strings.Contains(out, "was already undone at ") || !strings.Contains(out, "nothing more to undo") {
		t.Fatalf("a second undo must say it was undone already, and exit 0: %d\n%s", code, out)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatalf("the second undo changed the namespace:\n%s", after)
	}
}

// TestUndoLeavesOthersChanges: someone changed the kept fix since. When
// one of its changes is someone else's now, the undo undoes the rest,
// leaves that one, says so and exits 1; when all are, it undoes nothing,
// says the fix stays kept, and exits 1.
func TestUndoLeavesOthersChanges(t *testing.T) {
	probetest.RequireRoot(t)
	t.Run("partial", func(t *testing.T) {
		fixEnv(t)
		env := upScenario(t, "two-nics-strict")
		c := env.Checks[0]
		rollbackOnFailure(t, "--netns", c.Target)
		h := nsHandle(t, c.Target)
		before := dump(t, c.Target)
		j := applyAndKeep(t, c.Target, strings.Fields(c.Flow))
		sysctl := firstSysctl(t, j)
		path := strings.TrimPrefix(evidence.SysctlPath(sysctl.Sysctl), "sys/")
		theirs := otherValue(sysctl)
		probetest.Sysctl(t, h, path, theirs)
		code, out := asymExec(t, "fix", "--netns", c.Target, "--undo")
		if code != 1 || strings.Count(out, "\n  left alone: ") != 1 || !strings.Contains(out, sysctl.Sysctl+" is "+theirs+" now") ||
			!strings.Contains(out, "Undone, except what someone changed since") {
			t.Fatalf("the undo must leave their sysctl, say so and exit 1: %d\n%s", code, out)
		}
		if n := asymRules(t, h); n != 0 {
			t.Errorf("asym's rule must be undone: %d left", n)
		}
		// Put theirs back by hand: what remains is the namespace as it was.
		probetest.Sysctl(t, h, path, sysctl.Expect)
		if after := dump(t, c.Target); after != before {
			t.Fatalf("apart from theirs, the namespace must be as before:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
	t.Run("refused", func(t *testing.T) {
		fixEnv(t)
		env := upScenario(t, "two-nics-strict")
		c := env.Checks[0]
		rollbackOnFailure(t, "--netns", c.Target)
		h := nsHandle(t, c.Target)
		j := applyAndKeep(t, c.Target, strings.Fields(c.Flow))
		replaceEverything(t, h, j)
		theirs := dump(t, c.Target)
		code, out := asymExec(t, "fix", "--netns", c.Target, "--undo")
		if code != 1 || !strings.Contains(out, "Nothing was undone") || !strings.Contains(out, "the fix stays kept") || !strings.Contains(out, ": confirmed\n") {
			t.Fatalf("the undo must refuse, say why and exit 1: %d\n%s", code, out)
		}
		if after := dump(t, c.Target); after != theirs {
			t.Fatalf("the refused undo touched what someone else made:\nbefore:\n%s\nafter:\n%s", theirs, after)
		}
		if j := journalOf(t, "netns", c.Target); j.State != apply.StateConfirmed || len(j.LeftAlone) == 0 {
			t.Fatalf("the fix must stay kept, with what was left alone: %s %q", j.State, j.LeftAlone)
		}
	})
}

// TestUndoNeedsAKeptFix: an undo of a pending fix is refused with what to
// run instead (exit 2) and changes nothing; of a fix rolled back, it says
// there is nothing to undo (exit 0); with no fix at all it is an error.
func TestUndoNeedsAKeptFix(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	rollbackOnFailure(t, "--netns", c.Target)
	before := dump(t, c.Target)
	if code, out := asymExec(t, "fix", "--netns", c.Target, "--undo"); code != 2 || !strings.Contains(out, "no fix has been applied") {
		t.Errorf("undo with no fix: %d\n%s", code, out)
	}
	if code, out := asymExec(t, append([]string{"fix", "--netns", c.Target, "--apply", "--no-wait"}, strings.Fields(c.Flow)...)...); code != 0 {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	withFix := dump(t, c.Target)
	code, out := asymExec(t, "fix", "--netns", c.Target, "--undo")
	if code != 2 || !strings.Contains(out, "is not kept yet") || !strings.Contains(out, "asym fix --netns "+c.Target+" --rollback") {
		t.Fatalf("undo of a pending fix must point at --rollback and exit 2: %d\n%s", code, out)
	}
	if after := dump(t, c.Target); after != withFix {
		t.Fatal("the refused undo changed the namespace")
	}
	if code, out := asymExec(t, "fix", "--netns", c.Target, "--rollback"); code != 0 {
		t.Fatalf("rollback: %d\n%s", code, out)
	}
	code, out = asymExec(t, "fix", "--netns", c.Target, "--undo")
	if code != 0 || !strings.Contains(out, "was rolled back before it was kept") || !strings.Contains(out, "nothing to undo") {
		t.Fatalf("undo of a rolled-back fix must say so and exit 0: %d\n%s", code, out)
	}
	sess, err := session.Open(session.Config{Netns: c.Target})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sess.Undo(context.Background())
	kept := sess.KeptFix()
	sess.Close()
	var nothing *apply.NothingToUndo
	if !errors.As(err, &nothing) || kept != nil {
		t.Errorf("the session must say there is nothing to undo, and no kept fix: %v %+v", err, kept)
	}
	if after := dump(t, c.Target); after != before {
		t.Fatalf("not as before:\n%s", after)
	}
	if code, out := asymExec(t, "fix", "--netns", c.Target, "--undo", "tcp", "192.0.2.1:1", "192.0.2.2:2"); code != 2 || !strings.Contains(out, "take no flow") {
		t.Errorf("--undo with a flow: %d\n%s", code, out)
	}
	noWatchdogLeft(t)
}

func firstSysctl(t *testing.T, j *apply.Journal) *fix.SysctlSet {
	t.Helper()
	for _, s := range j.Steps {
		if st, ok := s.Do.Step.(*fix.SysctlSet); ok {
			return st
		}
	}
	t.Fatalf("the fix sets no sysctl: %+v", j.Steps)
	return nil
}

// otherValue is a value of the sysctl that is neither the one before the
// fix nor asym's, and that every sysctl a fix sets takes (rp_filter,
// arp_ignore and arp_announce all take 0 to 2).
func otherValue(s *fix.SysctlSet) string {
	for _, v := range []string{"0", "1", "2"} {
		if v != s.Value && v != s.Expect {
			return v
		}
	}
	return "1"
}

// replaceEverything puts someone else's object in place of each of the
// fix's changes: a rule that differs from asym's only in iif and protocol,
// a route that differs only in metric and protocol, a sysctl value of
// their own.
func replaceEverything(t *testing.T, h netns.NsHandle, j *apply.Journal) {
	t.Helper()
	nl := probetest.Netlink(t, h)
	rules, _ := nl.RuleList(netlink.FAMILY_ALL)
	for _, r := range rules {
		if r.Protocol != fix.Protocol {
			continue
		}
		theirs := r
		theirs.Protocol, theirs.IifName = 0, "eth1"
		if err := nl.RuleAdd(&theirs); err != nil {
			t.Fatal(err)
		}
		if err := nl.RuleDel(&r); err != nil {
			t.Fatal(err)
		}
	}
	routes, _ := nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	for _, r := range routes {
		if r.Protocol != netlink.RouteProtocol(fix.Protocol) {
			continue
		}
		theirs := r
		theirs.Protocol, theirs.Priority = 0, r.Priority+7
		if err := nl.RouteAdd(&theirs); err != nil {
			t.Fatal(err)
		}
		if err := nl.RouteDel(&r); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range j.Steps {
		if st, ok := s.Do.Step.(*fix.SysctlSet); ok {
			probetest.Sysctl(t, h, strings.TrimPrefix(evidence.SysctlPath(st.Sysctl), "sys/"), otherValue(st))
		}
	}
}

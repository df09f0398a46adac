package apply

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"asym/fix"
	"asym/probes/probetest"
)

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// sourceFix is what the playbook applies for a second address: a link
// route in a table of its own, a source rule, a loose rp_filter.
func sourceFix() fix.Steps {
	return fix.Steps{
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth0", Scope: "link", PrefSrc: netip.MustParseAddr("198.51.100.10")}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}},
		&fix.SysctlSet{Sysctl: "net.ipv4.conf.eth0.rp_filter", Value: "2"},
	}
}

// asymsRule and asymsRoute find what the fix added, by asym's protocol.
func asymsRule(t *testing.T, h *netlink.Handle) netlink.Rule {
	t.Helper()
	rules, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range rules {
		if r.Protocol == fix.Protocol {
			return r
		}
	}
	t.Fatal("asym's rule (protocol 245) is not there")
	return netlink.Rule{}
}

func asymsRoute(t *testing.T, h *netlink.Handle) netlink.Route {
	t.Helper()
	routes, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 100}, netlink.RT_FILTER_TABLE)
	for _, r := range routes {
		if r.Protocol == netlink.RouteProtocol(fix.Protocol) {
			return r
		}
	}
	t.Fatal("asym's route (protocol 245) is not there")
	return netlink.Route{}
}

// theirRule differs from asym's rule only in a selector asym did not
// name: the kernel takes a selector a delete leaves out as a wildcard.
func theirRule() *netlink.Rule {
	r := netlink.NewRule()
	r.Family, r.Priority, r.Table, r.Src, r.IifName = netlink.FAMILY_V4, 1000, 100, cidr("198.51.100.10/32"), "eth0"
	return r
}

// theirRoute differs from asym's route only in its metric.
func theirRoute(h *netlink.Handle) *netlink.Route {
	l, _ := h.LinkByName("eth0")
	return &netlink.Route{LinkIndex: l.Attrs().Index, Table: 100, Dst: cidr("198.51.100.0/24"), Scope: netlink.SCOPE_LINK,
		Src: net.ParseIP("198.51.100.10").To4(), Priority: 50}
}

// TestUndoLeavesWhatSomeoneElseChanged (issue #16, cases 6 and 7): after
// the fix, someone adds a rule that differs from asym's only in iif and a
// route that differs only in metric, removes asym's, and sets rp_filter
// to a value of their own. The rollback deletes neither of theirs,
// leaves rp_filter as they set it, and says so for each.
func TestUndoLeavesWhatSomeoneElseChanged(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix(), RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
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

	j, err = Rollback(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after := state(t, h, ns); after != theirs {
		t.Fatalf("the rollback touched what someone else made:\nbefore the rollback:\n%s\nafter:\n%s", theirs, after)
	}
	if j.State != StateRolledBack || len(j.LeftAlone) != 3 {
		t.Fatalf("want rolled back with 3 things left alone, got %s: %q", j.State, j.LeftAlone)
	}
	for i, want := range []string{"net.ipv4.conf.eth0.rp_filter is 1 now, not the 2 asym expected", "priority 1000 is not", "is not there any more"} {
		if !strings.Contains(strings.Join(j.LeftAlone, "\n"), want) {
			t.Errorf("left alone #%d: want it to say %q: %q", i, want, j.LeftAlone)
		}
	}
}

// TestUndoDeletesOnlyAsyms: the same look-alikes next to asym's own rule
// and route (not instead of them): the rollback deletes asym's and keeps
// theirs, and puts rp_filter back.
func TestUndoDeletesOnlyAsyms(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before := state(t, h, ns)
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix(), RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RuleAdd(theirRule()); err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(theirRoute(h)); err != nil {
		t.Fatal(err)
	}
	if j, err = Rollback(context.Background(), j.ID); err != nil || len(j.LeftAlone) != 0 {
		t.Fatalf("rollback: %v, left alone %q", err, j.LeftAlone)
	}
	// What remains is the namespace as it was, plus theirs exactly.
	if err := h.RuleDel(theirRule()); err != nil {
		t.Fatalf("their rule is gone: %v", err)
	}
	if err := h.RouteDel(theirRoute(h)); err != nil {
		t.Fatalf("their route is gone: %v", err)
	}
	if after := state(t, h, ns); after != before {
		t.Fatalf("after the rollback and without theirs, the namespace differs:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestUndoRestoresOnlyWhereNothingChanged: the fix deletes someone's rule
// and corrects a route's source hint; meanwhile someone puts another rule
// at that priority and changes the route again. The rollback neither adds
// the old rule beside theirs nor writes the old route over theirs.
func TestUndoRestoresOnlyWhereNothingChanged(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	l, _ := h.LinkByName("eth0")
	for _, a := range []string{"198.51.100.20/24", "198.51.100.30/24"} {
		ad, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(l, ad); err != nil {
			t.Fatal(err)
		}
	}
	old := netlink.NewRule()
	old.Family, old.Priority, old.Table, old.Src = netlink.FAMILY_V4, 1001, 100, cidr("198.51.100.12/32")
	if err := h.RuleAdd(old); err != nil {
		t.Fatal(err)
	}
	def := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("198.51.100.1").To4(), Src: net.ParseIP("198.51.100.20").To4(), Priority: 100}
	if err := h.RouteAdd(def); err != nil {
		t.Fatal(err)
	}
	steps := fix.Steps{
		&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("198.51.100.12/32"), Table: 100}},
		&fix.RouteReplace{Route: fix.RouteSpec{Table: 254, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("198.51.100.1"), Dev: "eth0", PrefSrc: netip.MustParseAddr("198.51.100.10")}},
	}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	other := netlink.NewRule()
	other.Family, other.Priority, other.Table, other.Src = netlink.FAMILY_V4, 1001, 101, cidr("198.51.100.13/32")
	if err := h.RuleAdd(other); err != nil {
		t.Fatal(err)
	}
	def.Src = net.ParseIP("198.51.100.30").To4()
	if err := h.RouteReplace(def); err != nil {
		t.Fatal(err)
	}
	theirs := state(t, h, ns)
	j, err = Rollback(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after := state(t, h, ns); after != theirs {
		t.Fatalf("the rollback wrote over what someone else made:\nbefore the rollback:\n%s\nafter:\n%s", theirs, after)
	}
	got := strings.Join(j.LeftAlone, "\n")
	if len(j.LeftAlone) != 2 || !strings.Contains(got, "priority 1001 holds another rule now") || !strings.Contains(got, "src 198.51.100.30") {
		t.Fatalf("want both left alone and named: %q", j.LeftAlone)
	}
}

// TestFindRefusesAReusedInode (issue #16, case 4): a namespace with the
// inode of the one the fix changed, but another cookie, is a new
// namespace that was given the freed inode. Rollback closes the fix as
// gone and touches nothing there.
func TestFindRefusesAReusedInode(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("ASYM_STATE_DIR", dir)
	tg, h, ns := host(t)
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: sourceFix(), RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	// As if the namespace of the fix had been freed and this one had been
	// given its inode: same name, same inode, another cookie.
	if _, err := update(context.Background(), j.path, func(j *Journal) error { j.Target.Cookie++; return nil }); err != nil {
		t.Fatal(err)
	}
	withFix := state(t, h, ns)
	j, err = Rollback(context.Background(), j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after := state(t, h, ns); after != withFix {
		t.Fatalf("the rollback acted on a namespace that only has the fix's name and inode:\nbefore:\n%s\nafter:\n%s", withFix, after)
	}
	if j.State != StateRolledBack || !strings.Contains(strings.Join(j.Log, "\n"), "the namespace the fix changed is gone") {
		t.Fatalf("want the fix closed as gone: %s %q", j.State, j.Log)
	}
	// The namespace really is the one of the fix: undo by hand.
	asymsRoute(t, h)
	r := asymsRule(t, h)
	h.RuleDel(&r)
}

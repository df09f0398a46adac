package apply

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"asym/evidence"
	"asym/fix"
	"asym/probes"
	"asym/probes/probetest"
)

// host builds a namespace with one veth (198.51.100.10/24) and returns it
// opened as a target.
func host(t *testing.T) (*probes.Target, *netlink.Handle, probetest.NS) {
	t.Helper()
	ns, peer := probetest.NewNS(t), probetest.NewNS(t)
	h, p := probetest.Netlink(t, ns.Handle), probetest.Netlink(t, peer.Handle)
	if err := p.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0", Namespace: netlink.NsFd(ns.Handle)}, PeerName: "p0"}); err != nil {
		t.Fatal(err)
	}
	l, _ := h.LinkByName("eth0")
	a, _ := netlink.ParseAddr("198.51.100.10/24")
	h.AddrAdd(l, a)
	h.LinkSetUp(l)
	pl, _ := p.LinkByName("p0")
	p.LinkSetUp(pl)
	tg, err := probes.OpenTarget(ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tg.Close)
	return tg, h, ns
}

// state renders everything a fix may change in the namespace, each rule
// and route with every field the kernel reads back (selectors, metric,
// protocol, scope), so that a look-alike differs from the original.
func state(t *testing.T, h *netlink.Handle, ns probetest.NS) string {
	t.Helper()
	var lines []string
	rules, _ := h.RuleList(netlink.FAMILY_V4)
	for _, r := range rules {
		b, _ := json.Marshal(specOf(r, false))
		lines = append(lines, "rule "+string(b))
	}
	routes, _ := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	for _, r := range routes {
		lines = append(lines, fmt.Sprintf("route %d %s metric %d proto %d scope %d type %d", r.Table, r.String(), r.Priority, r.Protocol, r.Scope, r.Type))
	}
	probetest.Do(t, ns.Handle, func() error {
		b, _ := os.ReadFile("/proc/sys/net/ipv4/conf/eth0/rp_filter")
		lines = append(lines, "rp_filter "+string(b))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// inProcess arms the watchdog as a goroutine, handing it the target's
// namespace as its own file: the way it is started is tested end to end
// with the binary; here the journal logic is.
func inProcess(j *Journal, t *probes.Target) (string, error) {
	go Watchdog(j.path, fmt.Sprintf("/proc/self/fd/%d", t.NS()))
	return "a goroutine of the test", nil
}

func TestFailedStepRollsBack(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before := state(t, h, ns)
	steps := fix.Steps{
		&fix.SysctlSet{Sysctl: "net.ipv4.conf.eth0.rp_filter", Value: "2"},
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth0", Scope: "link", PrefSrc: netip.MustParseAddr("198.51.100.10")}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}},
		// A gateway that is not on-link: the kernel refuses (ENETUNREACH).
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("203.0.113.1"), Dev: "eth0"}},
	}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Minute, Arm: inProcess})
	if err == nil || !strings.Contains(err.Error(), "rolled back") {
		t.Fatalf("want a failure that says it rolled back, got %v", err)
	}
	if j == nil || j.State != StateRolledBack || !j.Steps[3].Started || j.Steps[3].Done || !j.Steps[2].Done {
		t.Fatalf("journal: %+v", j)
	}
	if after := state(t, h, ns); after != before {
		t.Fatalf("a failed step must leave the namespace as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestWatchdogRevertsAtDeadline(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before := state(t, h, ns)
	steps := fix.Steps{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}}}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Second, Arm: inProcess})
	if err != nil || j.State != StatePending || !j.Armed {
		t.Fatalf("apply: %v %+v", err, j)
	}
	if state(t, h, ns) == before {
		t.Fatal("the rule was not added")
	}
	// A second fix while one is pending is refused.
	if _, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, Arm: inProcess}); err == nil || !strings.Contains(err.Error(), "still pending") {
		t.Fatalf("second apply: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		j, _ = Load(PathFor(IDFor("netns", ns.Name)))
		if j.State == StateReverted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not reverted: %+v", j)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state(t, h, ns) != before {
		t.Fatal("the watchdog did not restore the rules")
	}
	if _, err := Confirm(context.Background(), j.ID); err == nil || !strings.Contains(err.Error(), "too late") {
		t.Fatalf("confirm after the revert: %v", err)
	}
}

func TestRefusesWhenTheHostChanged(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, _ := host(t)
	r := netlink.NewRule()
	r.Family, r.Priority, r.Table = netlink.FAMILY_V4, 1000, 50
	if err := h.RuleAdd(r); err != nil {
		t.Fatal(err)
	}
	l, _ := h.LinkByName("eth0")
	h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: &net.IPNet{IP: net.ParseIP("192.0.2.0").To4(), Mask: net.CIDRMask(24, 32)}, Table: 101})
	for _, c := range []struct {
		step fix.Step
		says string
	}{
		{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}}, "priority 1000 is taken"},
		{&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("198.51.100.12/32"), Table: 100}}, "no longer there"},
		{&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 101, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0"}}, "table 101 is not empty"},
		{&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 102, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth9"}}, "is gone"},
		{&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 102, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0"}, Unknown: "the gateway"}, "will not apply a guess"},
	} {
		_, err := Apply(context.Background(), Plan{Target: tg, Steps: fix.Steps{c.step}, Arm: inProcess})
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: got %v, want it to say %q", evidence.Command(c.step.Words()...), err, c.says)
		}
	}
}

// TestRouteReplaceAndUndo: correcting a route's source hint replaces the
// route the kernel holds, and the undo puts back exactly that route (its
// src, metric and protocol), not a route asym made up.
func TestRouteReplaceAndUndo(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	l, _ := h.LinkByName("eth0")
	a, _ := netlink.ParseAddr("198.51.100.20/24")
	if err := h.AddrAdd(l, a); err != nil {
		t.Fatal(err)
	}
	def := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("198.51.100.1").To4(), Src: net.ParseIP("198.51.100.20").To4(), Priority: 100, Protocol: netlink.RouteProtocol(4)}
	if err := h.RouteAdd(def); err != nil {
		t.Fatal(err)
	}
	before := state(t, h, ns)
	step := &fix.RouteReplace{Route: fix.RouteSpec{Table: 254, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("198.51.100.1"), Dev: "eth0", PrefSrc: netip.MustParseAddr("198.51.100.10")}}
	if got := evidence.Command(step.Words()...); got != "ip route replace default via 198.51.100.1 dev eth0 src 198.51.100.10 table 254" {
		t.Errorf("command %q", got)
	}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: fix.Steps{step}, RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	routes, _ := h.RouteList(l, netlink.FAMILY_V4)
	var srcs []string
	for _, r := range routes {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			srcs = append(srcs, fmt.Sprint(r.Src, " metric ", r.Priority))
		}
	}
	if len(srcs) != 1 || srcs[0] != "198.51.100.10 metric 100" {
		t.Fatalf("the default route after the fix: %v (want one, src .10, its metric kept)", srcs)
	}
	if _, err := Rollback(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
	if after := state(t, h, ns); after != before {
		t.Fatalf("the rollback must put back the route as it was:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A route that is gone is refused by name, before anything changes.
	gone := &fix.RouteReplace{Route: fix.RouteSpec{Table: 254, Dst: netip.MustParsePrefix("192.0.2.0/24"), Dev: "eth0"}}
	if _, err := Apply(context.Background(), Plan{Target: tg, Steps: fix.Steps{gone}, Arm: inProcess}); err == nil || !strings.Contains(err.Error(), "no longer there") {
		t.Fatalf("replacing a route that is not there: %v", err)
	}
}

// TestWatchdogRevertsWhenTheJournalIsRemoved: nobody can decide a fix
// whose journal is gone, so the watchdog reverts it at once rather than
// leave a change asym no longer reports.
func TestWatchdogRevertsWhenTheJournalIsRemoved(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, h, ns := host(t)
	before := state(t, h, ns)
	steps := fix.Steps{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}}}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(j.path); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); state(t, h, ns) != before; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the fix stayed after its journal was removed:\n%s", state(t, h, ns))
		}
	}
}

// TestOneFixPerNamespaceWhateverItsName: a namespace named by its ip netns
// name and by its path has two journals; a fix pending under one name
// refuses a fix under the other.
func TestOneFixPerNamespaceWhateverItsName(t *testing.T) {
	t.Setenv("ASYM_STATE_DIR", t.TempDir())
	tg, _, ns := host(t)
	steps := fix.Steps{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.10/32"), Table: 100}}}
	j, err := Apply(context.Background(), Plan{Target: tg, Steps: steps, RevertAfter: time.Minute, Arm: inProcess})
	if err != nil {
		t.Fatal(err)
	}
	byPath, err := probes.OpenTarget("/run/netns/"+ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer byPath.Close()
	other := fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf.eth0.rp_filter", Value: "2"}}
	_, err = Apply(context.Background(), Plan{Target: byPath, Steps: other, RevertAfter: time.Minute, Arm: inProcess})
	if err == nil || !strings.Contains(err.Error(), "to this same namespace, as netns "+ns.Name) || !strings.Contains(err.Error(), "changed nothing") {
		t.Fatalf("a second fix on the same namespace by its path: %v", err)
	}
	if _, err := Rollback(context.Background(), j.ID); err != nil {
		t.Fatal(err)
	}
}

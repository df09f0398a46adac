package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/probes/probetest"
	"asym/probes/xtables"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// connmarkNoRestoreTest: the reply leaves by eth0 with mark 0 and ISP A's
// ingress filter drops it; restoring the mark heals it, and so does the
// source rule asym can apply.
var connmarkNoRestoreTest = scenarioTest{
	evidence: func(t *testing.T, e *Env) {
		if n := nftCounter(t, e, "isp-a", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n == 0 {
			t.Error("isp-a: the ingress filter dropped nothing: the reply did not leave by eth0")
		} else {
			t.Logf("isp-a: the ingress filter dropped %d replies from %s", n, upHostB)
		}
		if n := nftCounter(t, e, "isp-b", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n != 0 {
			t.Errorf("isp-b: the ingress filter dropped %d packets: nothing foreign should leave by eth1", n)
		}
		if n := tcpExt(t, e, "host", "IPReversePathFilter"); n != 0 {
			t.Errorf("host: TcpExt IPReversePathFilter is %d: rp_filter is off, the request must pass", n)
		}
		f, _ := parseFlow(e.Checks[0].Flow)
		ct, ok := conntrackEntry(t, e, "host", f)
		switch {
		case !ok:
			t.Error("host: no conntrack entry for the flow")
		case ct.Mark != connmarkB || tcpState(ct) != 2:
			t.Errorf("host: the flow's conntrack entry has mark %#x and state %d, want %#x and 2 (SYN_RECV: the SYN-ACK left)", ct.Mark, tcpState(ct), connmarkB)
		default:
			t.Logf("host: conntrack entry with mark %#x, state %d", ct.Mark, tcpState(ct))
		}
		// What asym reads: the reply without a mark takes main out of
		// eth0; with the connection's mark it would leave by eth1.
		h := nlh(t, e, "host")
		if dev := routeDev(t, h, upClient, upHostB, 0); dev != "eth0" {
			t.Errorf("host: the reply without a mark leaves by %s, want eth0", dev)
		}
		if dev := routeDev(t, h, upClient, upHostB, connmarkB); dev != "eth1" {
			t.Errorf("host: the reply with mark %#x leaves by %s, want eth1", connmarkB, dev)
		}
	},
	contrast: func(t *testing.T, e *Env) {
		// The missing half of the recipe heals it: `meta mark set ct
		// mark` in a route chain on output. Take it out again so the
		// heal below starts from the failure.
		if err := e.builderFor(t).restoreMark("host"); err != nil {
			t.Fatal(err)
		}
		if err := e.Try(t.Context(), healedTimeout); err != nil {
			t.Errorf("with the mark restored on output the flow should work: %v", err)
		} else {
			t.Log("with `meta mark set ct mark` in a route chain on output the flow works")
		}
		c, err := e.builderFor(t).nft("host")
		if err != nil {
			t.Fatal(err)
		}
		c.DelChain(&nftables.Chain{Name: "output", Table: &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "mangle"}})
		if err := c.Flush(); err != nil {
			t.Fatalf("host: remove the restore chain: %v", err)
		}
		if err := e.Try(t.Context(), tryTimeout); err == nil {
			t.Fatal("without the restore chain again the flow worked")
		}
	},
	heal: func(t *testing.T, e *Env) {
		// The source rule missing_source_rule's fix would add: a table
		// that leaves by eth1 and `from 198.51.100.2 lookup 100`.
		h := nlh(t, e, "host")
		eth1 := link(t, h, "eth1")
		for _, r := range []*netlink.Route{
			{Table: 100, Dst: cidr("198.51.100.0/24"), LinkIndex: eth1, Scope: netlink.SCOPE_LINK, Src: ip(upHostB)},
			{Table: 100, Dst: cidr("0.0.0.0/0"), LinkIndex: eth1, Gw: ip(upISPB)},
		} {
			if err := h.RouteAdd(r); err != nil {
				t.Fatalf("heal: add route %v: %v", r, err)
			}
		}
		if err := h.RuleAdd(newRule(upHostB, 100, 1000)); err != nil {
			t.Fatalf("heal: add rule: %v", err)
		}
	},
}

// srcValidMarkTest: strict rp_filter on eth1 drops the request because the
// check ignores the mark; src_valid_mark=1 heals it.
var srcValidMarkTest = scenarioTest{
	evidence: func(t *testing.T, e *Env) {
		if n := tcpExt(t, e, "host", "IPReversePathFilter"); n == 0 {
			t.Error("host: TcpExt IPReversePathFilter is 0: the SYN was not dropped by rp_filter")
		} else {
			t.Logf("host: TcpExt IPReversePathFilter = %d", n)
		}
		f, _ := parseFlow(e.Checks[0].Flow)
		if _, ok := conntrackEntry(t, e, "host", f); ok {
			t.Error("host: has a conntrack entry for the flow: the SYN got past the routing step")
		}
		for _, isp := range []string{"isp-a", "isp-b"} {
			if n := nftCounter(t, e, isp, nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n != 0 {
				t.Errorf("%s: the ingress filter dropped %d packets: no reply should have left the host", isp, n)
			}
		}
		// What asym reads: the input lookup with the mark the packet
		// gets is refused, though the way back with that mark leaves by
		// eth1; the check ignores the mark.
		h := nlh(t, e, "host")
		_, err := h.RouteGetWithOptions(ip(upHostB), &netlink.RouteGetOptions{Iif: "eth1", SrcAddr: ip(upClient), Mark: pktmarkB})
		if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.EXDEV) {
			t.Errorf("host: route get %s from %s iif eth1 mark %#x: %v, want the reverse-path refusal (EINVAL, EXDEV before 6.13)", upHostB, upClient, pktmarkB, err)
		}
		if dev := routeDev(t, h, upClient, upHostB, pktmarkB); dev != "eth1" {
			t.Errorf("host: the way back with mark %#x leaves by %s, want eth1", pktmarkB, dev)
		}
	},
	contrast: func(t *testing.T, e *Env) {
		// The failure is the reverse-path check alone: with loose
		// rp_filter on eth1 the marks route the reply out of eth1 and
		// the flow works.
		setSysctl(t, e, "host", "net/ipv4/conf/eth1/rp_filter", "2")
		if err := e.Try(t.Context(), healedTimeout); err != nil {
			t.Errorf("with loose rp_filter on eth1 the flow should work: %v", err)
		} else {
			t.Log("with loose rp_filter on eth1 the flow works")
		}
		h := nlh(t, e, "host")
		if _, err := h.RouteGetWithOptions(ip(upHostB), &netlink.RouteGetOptions{Iif: "eth1", SrcAddr: ip(upClient), Mark: pktmarkB}); err != nil {
			t.Errorf("host: with loose rp_filter the input lookup should pass: %v", err)
		}
		setSysctl(t, e, "host", "net/ipv4/conf/eth1/rp_filter", "1")
		// A source rule gets past the check too, mark or no mark: the
		// check looks up the way back from the local address, so `from
		// 198.51.100.2` matches it (notes K2). It works by going around
		// the marks, which is why it is not src_valid_mark_off's fix;
		// the test holds the kernel fact the analyzer must know.
		src := newRule(upHostB, pktmarkTable, 900)
		if err := h.RuleAdd(src); err != nil {
			t.Fatalf("host: add `from %s lookup %d`: %v", upHostB, pktmarkTable, err)
		}
		if err := e.Try(t.Context(), healedTimeout); err != nil {
			t.Errorf("with `from %s lookup %d` the reverse-path check should pass: %v", upHostB, pktmarkTable, err)
		} else {
			t.Logf("with `from %s lookup %d` the flow works too", upHostB, pktmarkTable)
		}
		if err := h.RuleDel(src); err != nil {
			t.Fatalf("host: delete the source rule: %v", err)
		}
		// Back to the failure before the heal.
		if err := e.Try(t.Context(), tryTimeout); err == nil {
			t.Fatal("with strict rp_filter and no source rule again the flow worked")
		}
	},
	heal: func(t *testing.T, e *Env) {
		setSysctl(t, e, "host", "net/ipv4/conf/all/src_valid_mark", "1")
		h := nlh(t, e, "host")
		if _, err := h.RouteGetWithOptions(ip(upHostB), &netlink.RouteGetOptions{Iif: "eth1", SrcAddr: ip(upClient), Mark: pktmarkB}); err != nil {
			t.Errorf("host: with src_valid_mark=1 the input lookup with the mark should pass: %v", err)
		}
	},
}

// firewallOneWayTest: fw drops the SYN-ACK with the iptables-nft rule and
// has no entry for the flow; sending the request through fw too works.
var firewallOneWayTest = scenarioTest{
	evidence: func(t *testing.T, e *Env) {
		rules := nftRules(t, e, "fw", nftables.TableFamilyIPv4, "filter", "FORWARD")
		if len(rules) != 1 || !isXtInvalidDrop(rules[0]) {
			t.Fatalf("fw: FORWARD does not read back as one `-m conntrack --ctstate INVALID` counter drop rule: %v", rules)
		}
		if n := nftCounter(t, e, "fw", nftables.TableFamilyIPv4, "filter", "FORWARD", ""); n == 0 {
			t.Error("fw: `-m conntrack --ctstate INVALID -j DROP` dropped nothing: the SYN-ACK did not come back through fw")
		} else {
			t.Logf("fw: the INVALID drop rule counted %d packets", n)
		}
		if n := ctStatInvalid(t, e, "fw"); n == 0 {
			t.Error("fw: conntrack's invalid statistic is 0")
		}
		f, _ := parseFlow(e.Checks[0].Flow)
		if _, ok := conntrackEntry(t, e, "fw", f); ok {
			t.Error("fw: has a conntrack entry for the flow: the SYN went through fw")
		}
	},
	contrast: func(t *testing.T, e *Env) {
		// Through fw both ways the flow works: the firewall passes a
		// connection it sees whole, and the lab's paths are sound.
		h := nlh(t, e, "r1")
		r := &netlink.Route{Dst: cidr("203.0.113.0/24"), LinkIndex: link(t, h, "eth2"), Gw: ip("198.51.100.6")}
		if err := h.RouteReplace(r); err != nil {
			t.Fatalf("r1: send requests through fw: %v", err)
		}
		if err := e.Try(t.Context(), healedTimeout); err != nil {
			t.Errorf("with the request through fw too the flow should work: %v", err)
		} else {
			t.Log("with the request through fw too the flow works")
		}
		f, _ := parseFlow(e.Checks[0].Flow)
		if _, ok := conntrackEntry(t, e, "fw", f); !ok {
			t.Error("fw: no conntrack entry for the flow after it crossed fw both ways")
		}
	},
}

// busyFirewallTest: the flow works through fw while fw's INVALID counter
// climbs from the strays.
var busyFirewallTest = scenarioTest{
	evidence: func(t *testing.T, e *Env) {
		f, _ := parseFlow(e.Checks[0].Flow)
		if st, ok := conntrackEntry(t, e, "fw", f); !ok {
			t.Error("fw: no conntrack entry for the flow that just worked through it")
		} else if s := tcpState(st); s < 3 {
			t.Errorf("fw: the flow's conntrack state is %d, want ESTABLISHED or later (it was answered)", s)
		} else {
			t.Logf("fw: the flow's conntrack state is %d", s)
		}
		start := time.Now()
		before := nftCounter(t, e, "fw", nftables.TableFamilyINet, "filter", "forward", "")
		invalid := ctStatInvalid(t, e, "fw")
		if !probetest.Poll(3*time.Second, func() bool {
			return nftCounter(t, e, "fw", nftables.TableFamilyINet, "filter", "forward", "") >= before+5
		}) {
			t.Fatalf("fw: the `ct state invalid counter drop` counter did not climb by 5 in 3s (from %d)", before)
		}
		after := nftCounter(t, e, "fw", nftables.TableFamilyINet, "filter", "forward", "")
		if n := ctStatInvalid(t, e, "fw"); n <= invalid {
			t.Errorf("fw: conntrack's invalid statistic did not climb with the counter (%d, then %d)", invalid, n)
		}
		t.Logf("fw: the INVALID drop counter went from %d to %d in %s", before, after, time.Since(start).Round(time.Millisecond))
		// And the flow keeps working while it climbs.
		if err := e.Try(t.Context(), tryTimeout); err != nil {
			t.Errorf("the flow failed while the strays were dropped: %v", err)
		}
	},
}

// TestStraysStopAtDown: the busy firewall's background traffic ends with
// Down and leaves no goroutine or socket behind. Not parallel, so the
// counts are this test's alone.
func TestStraysStopAtDown(t *testing.T) {
	probetest.RequireRoot(t)
	fds := func() int {
		d, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	fdsBefore, goBefore := fds(), runtime.NumGoroutine()
	s, _ := Find("busy-firewall-ok")
	prefix := testPrefix(t)
	t.Cleanup(func() { Cleanup(prefix) })
	e, err := s.Up(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := e.Down(); err != nil {
		t.Fatal(err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	deadline := time.Now().Add(2 * time.Second)
	for (fds() > fdsBefore || runtime.NumGoroutine() > goBefore) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := fds(); n > fdsBefore {
		t.Errorf("%d file descriptors before Up, %d after Down", fdsBefore, n)
	}
	if n := runtime.NumGoroutine(); n > goBefore {
		t.Errorf("%d goroutines before Up, %d after Down", goBefore, n)
	}
}

// TestStraySegment checks the stray segments against the checksum any
// receiver computes: summed with their own checksum, they come to zero.
func TestStraySegment(t *testing.T) {
	s := stray{src: netip.MustParseAddr("203.0.113.20"), dst: netip.MustParseAddr("192.0.2.10"), sport: 443, dport: 50000, ports: 10, flags: tcpSYN | tcpACK}
	for n := range uint32(12) {
		seg := s.segment(n)
		if len(seg) != 40 || seg[0] != 0x45 || seg[9] != unix.IPPROTO_TCP {
			t.Fatalf("segment %d: bad IPv4 header % x", n, seg[:20])
		}
		var src, dst [4]byte
		copy(src[:], seg[12:16])
		copy(dst[:], seg[16:20])
		if c := tcpChecksum(src, dst, seg[20:]); c != 0 {
			t.Errorf("segment %d: checksum does not verify (%#x)", n, c)
		}
		if p := int(seg[22])<<8 | int(seg[23]); p != 50000+int(n%10) {
			t.Errorf("segment %d: destination port %d", n, p)
		}
	}
}

// --- helpers that read the evidence ---

// routeDev asks the host which interface a packet to dst from src with
// mark leaves by (an output lookup, `ip route get dst from src mark m`).
func routeDev(t *testing.T, h *netlink.Handle, dst, src string, mark uint32) string {
	t.Helper()
	rs, err := h.RouteGetWithOptions(ip(dst), &netlink.RouteGetOptions{SrcAddr: ip(src), Mark: mark})
	if err != nil || len(rs) == 0 {
		t.Fatalf("route get %s from %s mark %#x: %v", dst, src, mark, err)
	}
	l, err := h.LinkByIndex(rs[0].LinkIndex)
	if err != nil {
		t.Fatalf("interface %d: %v", rs[0].LinkIndex, err)
	}
	return l.Attrs().Name
}

// setSysctl writes one sysctl inside a role's namespace.
func setSysctl(t *testing.T, e *Env, role, path, value string) {
	t.Helper()
	if err := e.Do(role, func() error { return os.WriteFile("/proc/sys/"+path, []byte(value), 0) }); err != nil {
		t.Fatalf("%s: set %s=%s: %v", role, path, value, err)
	}
}

// conntrackEntry returns the flow's conntrack entry in a role's namespace.
func conntrackEntry(t *testing.T, e *Env, role string, f flow) (*netlink.ConntrackFlow, bool) {
	t.Helper()
	flows, err := nlh(t, e, role).ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("%s: conntrack dump: %v", role, err)
	}
	for _, c := range flows {
		if c.Forward.Protocol == unix.IPPROTO_TCP && c.Forward.SrcIP.Equal(f.src.Addr().AsSlice()) && c.Forward.SrcPort == f.src.Port() &&
			c.Forward.DstIP.Equal(f.dst.Addr().AsSlice()) && c.Forward.DstPort == f.dst.Port() {
			return c, true
		}
	}
	return nil, false
}

// tcpState is a conntrack entry's TCP state (1 SYN_SENT, 2 SYN_RECV, 3
// ESTABLISHED ... 8 CLOSE), 0 when it has none.
func tcpState(c *netlink.ConntrackFlow) uint8 {
	if p, ok := c.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
		return p.State
	}
	return 0
}

// nftRules lists a chain's rules.
func nftRules(t *testing.T, e *Env, role string, fam nftables.TableFamily, table, chain string) []*nftables.Rule {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(e.handles[role])))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.GetRules(&nftables.Table{Name: table, Family: fam}, &nftables.Chain{Name: chain})
	if err != nil {
		t.Fatalf("%s: list rules of %s %s: %v", role, table, chain, err)
	}
	return rules
}

// isXtInvalidDrop says whether a rule reads back as iptables-nft's
// `-m conntrack --ctstate INVALID -j DROP`: the xt match, a counter, drop.
func isXtInvalidDrop(r *nftables.Rule) bool {
	if len(r.Exprs) != 3 {
		return false
	}
	m, ok := r.Exprs[0].(*expr.Match)
	if !ok || m.Name != "conntrack" || m.Rev != 3 {
		return false
	}
	info, ok := m.Info.(*xt.ConntrackMtinfo3)
	if !ok || info.MatchFlags != uint16(xt.ConntrackState) || info.StateMask != uint16(expr.CtStateBitINVALID) {
		return false
	}
	_, counter := r.Exprs[1].(*expr.Counter)
	v, verdict := r.Exprs[2].(*expr.Verdict)
	return counter && verdict && v.Kind == expr.VerdictDrop
}

// procNet reads a file of /proc/thread-self/net inside a role's namespace
// (/proc/net follows the thread-group leader, notes §6).
func procNet(t *testing.T, e *Env, role, name string) []byte {
	t.Helper()
	var data []byte
	if err := e.Do(role, func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/" + name)
		return err
	}); err != nil {
		t.Fatalf("read %s in %s: %v", name, role, err)
	}
	return data
}

// snmp reads one counter of /proc/net/snmp ("Ip", "FragFails"): a header
// line and a value line per protocol, as in netstat.
func snmp(t *testing.T, e *Env, role, proto, name string) uint64 {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(procNet(t, e, role, "snmp")))
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != proto+":" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == name && i < len(f) {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("parse %s %s: %v", proto, name, err)
				}
				return n
			}
		}
	}
	t.Fatalf("%s: no %s %s in snmp", role, proto, name)
	return 0
}

// ctStatInvalid sums conntrack's invalid column over the CPUs of
// /proc/net/stat/nf_conntrack (hex, one row per CPU, columns found by name:
// they were renamed across kernels, notes K6).
func ctStatInvalid(t *testing.T, e *Env, role string) uint64 {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(string(procNet(t, e, role, "stat/nf_conntrack"))), "\n")
	col := -1
	for i, h := range strings.Fields(lines[0]) {
		if h == "invalid" {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("%s: no invalid column in stat/nf_conntrack: %q", role, lines[0])
	}
	var sum uint64
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if col >= len(f) {
			continue
		}
		n, err := strconv.ParseUint(f[col], 16, 64)
		if err != nil {
			t.Fatalf("%s: parse %q: %v", role, f[col], err)
		}
		sum += n
	}
	return sum
}

// firewallOneWayLegacyTest: the same drop, by an x_tables rule nftables
// cannot see; its counter, read through the kernel, shows the SYN-ACK.
var firewallOneWayLegacyTest = scenarioTest{
	evidence: func(t *testing.T, e *Env) {
		if rules := nftRules(t, e, "fw", nftables.TableFamilyIPv4, "filter", "FORWARD"); len(rules) != 0 {
			t.Fatalf("fw: nftables holds FORWARD rules %v: the rule must live in x_tables only", rules)
		}
		var rs *xtables.Ruleset
		if err := e.Do("fw", func() error {
			var err error
			rs, err = xtables.Read(t.Context(), func(_ context.Context, fn func() error) error { return fn() })
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rules := rs.FirewallRules()
		if len(rules) != 1 || rules[0].Kind != evidence.RuleCtInvalid || rules[0].Packets == 0 {
			t.Fatalf("fw: the legacy INVALID drop did not count the SYN-ACK: %+v", rules)
		}
		t.Logf("fw: %s", rules[0].Text)
		f, _ := parseFlow(e.Checks[0].Flow)
		if _, ok := conntrackEntry(t, e, "fw", f); ok {
			t.Error("fw: has a conntrack entry for the flow: the SYN went through fw")
		}
	},
	contrast: firewallOneWayTest.contrast,
}

package probes

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// twoNICs builds the cloud article's host in a throwaway namespace: eth0
// 198.51.100.10/24 and eth1 198.51.100.11/24 (veths whose peers live in a
// second namespace, so both have carrier), default via .1 dev eth0.
func twoNICs(t *testing.T) (*Target, *netlink.Handle, probetest.NS) {
	t.Helper()
	host, peer := probetest.NewNS(t), probetest.NewNS(t)
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/all/rp_filter", "0")
	var eth0 netlink.Link
	for i, name := range []string{"eth0", "eth1"} {
		l, _ := probetest.Veth(t, host, probetest.Link{Name: name, Addrs: []string{fmt.Sprintf("198.51.100.%d/24", 10+i)}}, peer, probetest.Link{Name: "p" + name})
		if i == 0 {
			eth0 = l
		}
	}
	h := probetest.Netlink(t, host.Handle)
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("198.51.100.1")}))
	return openTarget(t, host.Name), h, host
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var (
	ip10   = netip.MustParseAddr("198.51.100.10")
	ip11   = netip.MustParseAddr("198.51.100.11")
	client = netip.MustParseAddr("203.0.113.9")
)

func TestRouteDecisions(t *testing.T) {
	tg, h, host := twoNICs(t)
	ctx := context.Background()

	// Output lookup from eth1's address: main's default, by eth0.
	d, err := tg.RouteGet(ctx, evidence.RouteQuery{Dst: client, Src: ip11})
	must(t, err)
	if d.Failed() || d.Dev != "eth0" || d.Table != unix.RT_TABLE_MAIN || d.Gateway.String() != "198.51.100.1" {
		t.Fatalf("output lookup: %+v", d)
	}
	if d.Text != "203.0.113.9 from 198.51.100.11 via 198.51.100.1 dev eth0 table main" {
		t.Errorf("text %q", d.Text)
	}

	// Input lookup on eth1: passes with rp_filter off, refused in strict
	// mode (EINVAL since 6.13, EXDEV before), passes in loose mode.
	in := evidence.RouteQuery{Dst: ip11, Src: client, Iif: "eth1"}
	d, err = tg.RouteGet(ctx, in)
	must(t, err)
	if !d.Local() || d.Failed() {
		t.Fatalf("rp_filter off: %+v", d)
	}
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/all/rp_filter", "1")
	d, err = tg.RouteGet(ctx, in)
	must(t, err)
	if !d.RPFReject() || !strings.HasPrefix(d.Text, "RTNETLINK answers: ") {
		t.Fatalf("strict: want a reverse-path refusal, got %+v", d)
	}
	if rp := tg.readRPFilter(ctx, "eth1"); rp == nil || rp.Effective != 1 || rp.All != 1 || rp.Dev != 0 {
		t.Fatalf("rp_filter read: %+v", rp)
	}
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/eth1/rp_filter", "2")
	d, err = tg.RouteGet(ctx, in)
	must(t, err)
	if !d.Local() {
		t.Fatalf("loose: %+v", d)
	}
	if rp := tg.readRPFilter(ctx, "eth1"); rp.Effective != 2 {
		t.Fatalf("effective is max(all, dev): %+v", rp)
	}

	// A port-matching rule is seen only when the lookup carries the ports,
	// which the netlink library cannot send: the raw request does.
	eth1, _ := h.LinkByName("eth1")
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth1.Attrs().Index, Gw: net.ParseIP("198.51.100.1"), Table: 100}))
	r := netlink.NewRule()
	r.Family, r.Priority, r.Table, r.IPProto, r.Dport = netlink.FAMILY_V4, 900, 100, unix.IPPROTO_TCP, netlink.NewRulePortRange(443, 443)
	must(t, h.RuleAdd(r))
	q := evidence.RouteQuery{Dst: client, Src: ip11, Proto: unix.IPPROTO_TCP, Sport: 40000, Dport: 443}
	d, err = tg.RouteGet(ctx, q)
	must(t, err)
	if d.Dev != "eth1" || d.Table != 100 {
		t.Fatalf("with ports the rule must answer: %+v", d)
	}
	q.Dport = 80
	if d, _ = tg.RouteGet(ctx, q); d.Table != unix.RT_TABLE_MAIN {
		t.Fatalf("port 80 must miss the rule: %+v", d)
	}
	if got := strings.Join(q.Words(), " "); got != "route get 203.0.113.9 from 198.51.100.11 ipproto tcp sport 40000 dport 80" {
		t.Errorf("words %q", got)
	}

	// The rules probe reads the rule back, and Served names it.
	f, _ := flow.ParseString("tcp 198.51.100.11:40000 203.0.113.9:443")
	rv := ProbeRules(ctx, tg, f, nil)
	if !rv.OK() {
		t.Fatalf("rules: %s", rv.Reason)
	}
	if !slices.Contains(rv.Lines, "900:\tfrom all ipproto tcp dport 443 lookup 100") {
		t.Errorf("rule rendering: %q", rv.Lines)
	}
	d, _ = tg.RouteGet(ctx, evidence.RouteQuery{Dst: client, Src: ip11, Proto: 6, Sport: 40000, Dport: 443})
	served := rv.Served(&d, evidence.Packet{Src: ip11, Dst: client, Iif: "lo", Proto: 6, Sport: 40000, Dport: 443})
	if served == nil || served.Priority != 900 {
		t.Fatalf("served: %+v", served)
	}

	// FIB match shows every next hop of a multipath route; the plain
	// lookup shows the one this flow hashes to.
	must(t, h.RouteAdd(&netlink.Route{Dst: mustNet("192.0.2.0/24"), MultiPath: []*netlink.NexthopInfo{
		{LinkIndex: eth1.Attrs().Index - 1, Gw: net.ParseIP("198.51.100.1")}, {LinkIndex: eth1.Attrs().Index, Gw: net.ParseIP("198.51.100.2"), Hops: 1}}}))
	fm, err := tg.RouteGet(ctx, evidence.RouteQuery{Dst: netip.MustParseAddr("192.0.2.7"), FIBMatch: true})
	must(t, err)
	if len(fm.Nexthops) != 2 || fm.Nexthops[1].Weight != 2 || fm.Dst.String() != "192.0.2.0/24" {
		t.Fatalf("fibmatch: %+v", fm)
	}
}

func mustNet(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

func TestTablesAreBounded(t *testing.T) {
	tg, h, _ := twoNICs(t)
	eth1, _ := h.LinkByName("eth1")
	// 300 routes in table 100, 5 in table 200: the probe reads at most
	// maxTableRoutes of one table, and only the tables it is asked for.
	for i := 0; i < 300; i++ {
		must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth1.Attrs().Index, Dst: mustNet(fmt.Sprintf("198.18.%d.%d/32", i/256, i%256)), Gw: net.ParseIP("198.51.100.1"), Table: 100}))
	}
	for i := 0; i < 5; i++ {
		must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth1.Attrs().Index, Dst: mustNet(fmt.Sprintf("198.19.0.%d/32", i)), Gw: net.ParseIP("198.51.100.1"), Table: 200}))
	}
	f, _ := flow.ParseString("tcp 198.51.100.11:1 203.0.113.9:2")
	v := ProbeTables(context.Background(), tg, f, []int{200, 100, unix.RT_TABLE_MAIN}, map[int]string{200: "test"})
	if !v.OK() || len(v.Tables) != 2 {
		t.Fatalf("tables: %s %+v", v.Reason, v.Tables)
	}
	small, big := v.Table(200), v.Table(100)
	if len(small.Routes) != 5 || small.Truncated || small.Routes[0].Text != "198.19.0.0 via 198.51.100.1 dev eth1" {
		t.Fatalf("table 200: %+v", small)
	}
	if len(big.Routes) != maxTableRoutes || !big.Truncated {
		t.Fatalf("table 100: %d routes, truncated %v", len(big.Routes), big.Truncated)
	}
	if v.Table(unix.RT_TABLE_MAIN) != nil {
		t.Fatal("main must never be dumped")
	}
	if r := small.Lookup(netip.MustParseAddr("198.19.0.3")); r == nil || r.Dst.String() != "198.19.0.3/32" {
		t.Fatalf("lookup: %+v", r)
	}
}

func TestHostSysctlsNeighbours(t *testing.T) {
	tg, h, host := twoNICs(t)
	ctx := context.Background()
	f, _ := flow.ParseString("tcp 203.0.113.9:40000 198.51.100.11:8080")
	hv := ProbeHost(ctx, tg, f, "")
	if !hv.OK() || hv.Role != evidence.RoleServer || hv.LocalIface != "eth1" || hv.Local != ip11 {
		t.Fatalf("host: %+v", hv)
	}
	if c := hv.Connected(netip.MustParseAddr("198.51.100.50")); len(c) != 2 {
		t.Fatalf("both NICs are on the subnet: %+v", c)
	}
	if ProbeHost(ctx, tg, f.Reverse(), "").Role != evidence.RoleClient {
		t.Fatal("reverse flow: client role")
	}
	// Neither end local: a router or firewall in the middle, when it
	// forwards; otherwise it is not on the flow's path at all.
	g, _ := flow.ParseString("tcp 192.0.2.1:1 203.0.113.9:2")
	if r := ProbeHost(ctx, tg, g, "").Role; r != evidence.RoleOffPath {
		t.Fatalf("neither end local, no forwarding: %s, want off the path", r)
	}
	probetest.Sysctl(t, host.Handle, "net/ipv4/ip_forward", "1")
	if r := ProbeHost(ctx, tg, g, "").Role; r != evidence.RoleMiddle {
		t.Fatalf("neither end local, forwarding: %s, want middle", r)
	}
	probetest.Sysctl(t, host.Handle, "net/ipv4/ip_forward", "0")

	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/all/rp_filter", "1")
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/eth1/arp_ignore", "1")
	sv := ProbeSysctls(ctx, tg, f, []string{"eth1", "eth0"})
	if !sv.OK() {
		t.Fatal(sv.Reason)
	}
	if _, _, eff, ok := sv.Conf("eth1", "rp_filter"); !ok || eff != 1 {
		t.Fatalf("rp_filter eth1 effective %d", eff)
	}
	if sv.Effective("eth1", "arp_ignore", -1) != 1 || sv.Effective("eth0", "arp_ignore", -1) != 0 {
		t.Fatalf("arp_ignore: %v", sv.Values)
	}
	if !slices.Contains(sv.Lines, "net.ipv4.conf.eth1.rp_filter = 0") {
		t.Errorf("lines: %q", sv.Lines)
	}

	eth0, _ := h.LinkByName("eth0")
	mac, _ := net.ParseMAC("02:00:5e:00:53:01")
	must(t, h.NeighAdd(&netlink.Neigh{LinkIndex: eth0.Attrs().Index, IP: net.ParseIP("198.51.100.1"), HardwareAddr: mac, State: netlink.NUD_PERMANENT}))
	nv := ProbeNeighbours(ctx, tg, []NeighQuery{{netip.MustParseAddr("198.51.100.1"), "eth0"}, {netip.MustParseAddr("198.51.100.77"), "eth1"}}, []string{"eth0"})
	if !nv.OK() || len(nv.Entries) != 2 {
		t.Fatalf("neighbours: %s %+v", nv.Reason, nv.Entries)
	}
	if e := nv.Entries[0]; e.State != "PERMANENT" || e.MAC != mac.String() {
		t.Errorf("known neighbour: %+v", e)
	}
	if e := nv.Entries[1]; e.State != "none" {
		t.Errorf("unknown neighbour: %+v", e)
	}
	if len(nv.Links) != 1 || nv.Links[0].MTU != 1500 {
		t.Errorf("links: %+v", nv.Links)
	}
	gws := ProbeGateways(ctx, tg, hv, client)
	if len(gws) != 2 || gws[0].Iface != "eth0" || gws[0].Gateway.String() != "198.51.100.1" {
		t.Errorf("gateway of eth0 from its route: %+v", gws)
	}
	// eth1 has no route of its own; its only neighbour is taken, with a warning in How.
	if gws[1].Iface != "eth1" || gws[1].Gateway.IsValid() {
		t.Errorf("eth1 has no neighbour yet: %+v", gws[1])
	}
}

func TestCollectorServerSide(t *testing.T) {
	tg, _, host := twoNICs(t)
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/all/rp_filter", "1")
	f, _ := flow.ParseString("tcp 203.0.113.9:40000 198.51.100.11:8080")
	c := NewCollector(tg, f, "")
	ctx := context.Background()
	// Running a later probe first runs what it needs.
	if r := c.Run(ctx, evidence.ProbeReply).Rep(); !r.OK() {
		t.Fatalf("reply: %s", r.Reason)
	}
	ev := c.Evidence()
	if ev.Host == nil || ev.Request == nil {
		t.Fatal("reply must have run host and request first")
	}
	req, rep := ev.Request, ev.Reply
	if req.Ingress != "eth1" || !req.Decision.RPFReject() || req.RPFilter.Effective != 1 || req.ReversePath == nil || req.ReversePath.Dev != "eth0" {
		t.Fatalf("request: %+v", req)
	}
	if rep.Egress != "eth0" || rep.Input() {
		t.Fatalf("reply: %+v", rep)
	}
	if !strings.Contains(req.Command, "ip -n "+host.Name+" route get 198.51.100.11 from 203.0.113.9 iif eth1 ipproto tcp sport 40000 dport 8080") {
		t.Errorf("command %q", req.Command)
	}
	for _, id := range []evidence.ProbeID{evidence.ProbeRules, evidence.ProbeTables, evidence.ProbeSysctls, evidence.ProbeNeighbours} {
		if r := c.Run(ctx, id).Rep(); !r.OK() {
			t.Errorf("%s: %s %s", id, r.Status, r.Reason)
		}
	}
	if r := c.Run(ctx, "nonsense").Rep(); r.Status != evidence.StatusFailed {
		t.Error("unknown probe id must fail, not panic")
	}
}

func TestRuleMatches(t *testing.T) {
	p := evidence.Packet{Src: ip11, Dst: client, Iif: "lo", Mark: 0x10, Proto: 6, Sport: 40000, Dport: 443}
	cases := []struct {
		r    evidence.Rule
		want bool
	}{
		{evidence.Rule{}, true},
		{evidence.Rule{Src: netip.MustParsePrefix("198.51.100.0/24")}, true},
		{evidence.Rule{Src: netip.MustParsePrefix("198.51.100.10/32")}, false},
		{evidence.Rule{Src: netip.MustParsePrefix("198.51.100.10/32"), Invert: true}, true},
		{evidence.Rule{Dst: netip.MustParsePrefix("203.0.113.0/24")}, true},
		{evidence.Rule{Iif: "lo"}, true},
		{evidence.Rule{Iif: "eth1"}, false},
		{evidence.Rule{Oif: "eth1"}, false},
		{evidence.Rule{Mark: 0x10}, true},
		{evidence.Rule{Mark: 0x1, Mask: 0x1}, false},
		{evidence.Rule{Mark: 0x10, Mask: 0xf0}, true},
		{evidence.Rule{IPProto: 17}, false},
		{evidence.Rule{Dport: [2]uint16{400, 500}}, true},
		{evidence.Rule{Sport: [2]uint16{1, 1024}}, false},
		{evidence.Rule{HasUID: true, UID: [2]uint32{0, 0}}, false},
	}
	for i, c := range cases {
		if got := c.r.Matches(p); got != c.want {
			t.Errorf("case %d %+v: got %v", i, c.r, got)
		}
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"eth0": "eth0", "": "''", "a b": "'a b'", "e$x": "'e$x'", "it's": `'it'\''s'`, "x;(`)": "'x;(`)'", "198.51.100.0/24": "198.51.100.0/24",
	} {
		if got := evidence.Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
	if sysctlPath("net.ipv4.conf.eth0.100.rp_filter") != "sys/net/ipv4/conf/eth0.100/rp_filter" || displayName("net.ipv4.conf.eth0.100.rp_filter") != "net.ipv4.conf.eth0/100.rp_filter" {
		t.Error("VLAN interface names keep their dot in /proc and become a slash for sysctl(8)")
	}
}

// TestIPv6Flow runs every probe on an IPv6 server flow: a host with one
// NIC on 2001:db8:1::/64 and a default route, answering a client elsewhere.
func TestIPv6Flow(t *testing.T) {
	host, peer := probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{host, peer} {
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/all/disable_ipv6", "0")
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/default/accept_dad", "0")
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/default/accept_ra", "0")
	}
	l, _ := probetest.Veth(t, host, probetest.Link{Name: "eth0", Addrs: []string{"2001:db8:1::10/64"}}, peer, probetest.Link{Name: "peth0"})
	must(t, probetest.Netlink(t, host.Handle).RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: mustNet("::/0"), Gw: net.ParseIP("2001:db8:1::1")}))
	tg := openTarget(t, host.Name)
	// IPv6 installs the address's local route when the link comes up,
	// asynchronously: wait for it rather than race it.
	var d evidence.RouteDecision
	var err error
	if !probetest.Poll(3*time.Second, func() bool {
		d, err = tg.RouteGet(context.Background(), evidence.RouteQuery{Dst: netip.MustParseAddr("2001:db8:1::10"), Src: netip.MustParseAddr("2001:db8:2::9"), Iif: "eth0"})
		return err == nil && d.Local()
	}) {
		t.Fatalf("the IPv6 address never became local: %+v %v", d, err)
	}

	f, err := flow.ParseString("tcp [2001:db8:2::9]:40000 [2001:db8:1::10]:443")
	must(t, err)
	c := NewCollector(tg, f, "")
	ctx := context.Background()
	for _, id := range []evidence.ProbeID{evidence.ProbeHost, evidence.ProbeRequest, evidence.ProbeReply, evidence.ProbeRules, evidence.ProbeTables, evidence.ProbeSysctls, evidence.ProbeNeighbours, evidence.ProbeCounters, evidence.ProbeFirewall, evidence.ProbeConntrack} {
		if r := c.Run(ctx, id).Rep(); !r.OK() {
			t.Errorf("%s: %s: %s", id, r.Status, r.Reason)
		}
	}
	ev := c.Evidence()
	if ev.Host.Role != evidence.RoleServer || ev.Host.LocalIface != "eth0" {
		t.Fatalf("host: %+v", ev.Host)
	}
	if !ev.Request.Decision.Local() || ev.Request.RPFilter != nil {
		t.Fatalf("request: IPv6 has no rp_filter sysctl; the input lookup must deliver locally: %+v", ev.Request)
	}
	if ev.Reply.Egress != "eth0" || ev.Reply.Decision.Gateway.String() != "2001:db8:1::1" {
		t.Fatalf("reply: %+v", ev.Reply.Decision)
	}
	if !strings.Contains(ev.Rules.Command, "-6 rule show") || len(ev.Rules.Rules) < 2 {
		t.Fatalf("IPv6 rules: %s %+v", ev.Rules.Command, ev.Rules.Rules)
	}
}

package probes_test

// The scale issue's required test: a small-scale run of the production
// scenarios (10,000 routes in main, 200 policy rules over 50 small tables,
// 10,000 conntrack entries) in which a whole check — every probe of every
// step, as `asym check` runs them — must not dump main or the conntrack
// table. It counts what the kernel sent back (Target.Received). The
// timings at full scale are cmd/asym-bench's job, not a test's.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/probetest"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

const (
	scaleRoutes    = 10_000
	scaleRules     = 200
	scaleTables    = 50 // 5 routes each
	scaleConntrack = 10_000
	// A full dump of main would send more than scaleRoutes; the route
	// decisions, fibmatch lookups and the one policy table in play send a
	// few dozen.
	scaleMaxRoutes    = 300
	scaleMaxConntrack = 10
)

// scaleFamily is what differs between the IPv4 and the IPv6 run.
type scaleFamily struct {
	flow           string
	eth0, eth1, gw string // host addresses and the gateway, with prefix length for the first two
	bulk           func(i int) netip.Prefix
	tableRoute     func(table, j int) netip.Prefix
	ruleSrc        func(i int) netip.Prefix // what scaleRule's source and destination rules select
	ruleDst        func(i int) netip.Prefix
	ctPair         func(i int) (netip.Addr, netip.Addr)
	findings       []string // the check must find at least these
}

var scaleV4 = scaleFamily{
	flow: "tcp 203.0.113.10:40000 198.51.100.11:8080",
	eth0: "198.51.100.10/24", eth1: "198.51.100.11/24", gw: "198.51.100.1",
	// /32s from 198.18.0.0 on (the benchmarking range, RFC 2544).
	bulk: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 32)
	},
	tableRoute: func(table, j int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(table), byte(j * 16)}), 28)
	},
	ruleSrc: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i), 0}), 24)
	},
	ruleDst: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(i), 0}), 24)
	},
	ctPair: func(i int) (netip.Addr, netip.Addr) {
		return netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), netip.MustParseAddr("203.0.113.53")
	},
	// Strict rp_filter, the request arriving on eth1 and the way back by
	// eth0: two-nics-strict's first-step findings.
	findings: []string{"rp_filter_strict_drop", "reply_wrong_egress"},
}

var scaleV6 = scaleFamily{
	flow: "tcp [2001:db8:203::10]:40000 [2001:db8:100::11]:8080",
	eth0: "2001:db8:100::10/64", eth1: "2001:db8:100::11/64", gw: "2001:db8:100::1",
	// /56s in 2001:db8:8000::/33.
	bulk: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x80 | byte(i>>16), byte(i >> 8), byte(i)}), 56)
	},
	tableRoute: func(table, j int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xfa, byte(table), 0, byte(j)}), 64)
	},
	ruleSrc: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xf0, 0, 0, byte(i)}), 64)
	},
	ruleDst: func(i int) netip.Prefix {
		return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xf1, 0, 0, byte(i)}), 64)
	},
	ctPair: func(i int) (netip.Addr, netip.Addr) {
		return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xf2, 0, 14: byte(i >> 8), 15: byte(i)}), netip.MustParseAddr("2001:db8:203::53")
	},
	findings: []string{"reply_wrong_egress"},
}

// scaleRule is the i-th of the unrelated rules, selectors only (the caller
// sets priority and table): by source, destination, mark and UDP
// destination port in turn.
func scaleRule(fam scaleFamily, i int) *netlink.Rule {
	r := netlink.NewRule()
	switch i % 4 {
	case 0:
		r.Src = scaleIPNet(fam.ruleSrc(i))
	case 1:
		r.Dst = scaleIPNet(fam.ruleDst(i))
	case 2:
		r.Mark = uint32(0x100 + i)
	case 3:
		r.IPProto = unix.IPPROTO_UDP
		r.Dport = netlink.NewRulePortRange(uint16(5000+i), uint16(5000+i))
	}
	return r
}

func TestScaleNoFullDumpIPv4(t *testing.T) { scaleRun(t, scaleV4) }
func TestScaleNoFullDumpIPv6(t *testing.T) { scaleRun(t, scaleV6) }

func scaleRun(t *testing.T, fam scaleFamily) {
	f, err := flow.ParseString(fam.flow)
	if err != nil {
		t.Fatal(err)
	}
	host := scaleBuildHost(t, fam)
	nlh := probetest.Netlink(t, host.Handle)
	eth0, err := nlh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	gw := netip.MustParseAddr(fam.gw)

	start := time.Now()
	var msgs []mdnetlink.Message
	for i := range scaleRoutes {
		msgs = append(msgs, scaleRouteMsg(fam.bulk(i), gw, eth0.Attrs().Index, unix.RT_TABLE_MAIN))
	}
	for tb := range scaleTables {
		for j := range 5 {
			msgs = append(msgs, scaleRouteMsg(fam.tableRoute(tb, j), gw, eth0.Attrs().Index, uint32(1001+tb)))
		}
	}
	scaleSend(t, host, msgs)
	built := time.Since(start)

	// 200 rules over the 50 tables, none of which matches the flow; the
	// first sends eth0's own address to table 1001 (half-done source
	// routing), so one small table is in play and read.
	for i := range scaleRules {
		r := scaleRule(fam, i)
		if i == 0 {
			r = netlink.NewRule()
			a := netip.MustParsePrefix(fam.eth0).Addr()
			r.Src = scaleIPNet(netip.PrefixFrom(a, a.BitLen()))
		}
		r.Family = unix.AF_INET
		if f.Is6() {
			r.Family = unix.AF_INET6
		}
		r.Priority, r.Table = 1000+i, 1001+i%scaleTables
		if err := nlh.RuleAdd(r); err != nil {
			t.Fatalf("add rule %d: %v", i, err)
		}
	}

	// Conntrack: the flow's own entry among 10,000 unrelated UDP entries,
	// once a ct rule makes the namespace track connections.
	probetest.TrackConntrack(t, host)
	cc, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(host.Handle)})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Create(conntrack.NewFlow(uint8(f.Proto), 0, f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port(), 600, 0)); err != nil {
		t.Fatalf("create the flow's conntrack entry: %v", err)
	}
	for i := range scaleConntrack {
		src, dst := fam.ctPair(i)
		if err := cc.Create(conntrack.NewFlow(unix.IPPROTO_UDP, 0, src, dst, uint16(20000+i%8), 53, 600, 0)); err != nil {
			t.Fatalf("create conntrack entry %d: %v", i, err)
		}
	}
	t.Logf("built %d routes in main and %d in %d tables in %s; %d rules; %d conntrack entries in %s",
		scaleRoutes, 5*scaleTables, scaleTables, built.Round(time.Millisecond), scaleRules, scaleConntrack+1, time.Since(start).Round(time.Millisecond))

	// The tables probe counts routes in its dump callback, after the netlink
	// library has dropped those of other tables; the counter sees a dump of
	// main only if the kernel filters the dump itself. It does when asked
	// as the library asks (strict checking, RTA_TABLE): check that here.
	if n := scaleStrictDump(t, host, f.Is6(), 1001); n != 5 {
		t.Errorf("a strict dump of table 1001 sent %d routes, want its 5: the kernel no longer filters table dumps", n)
	}

	// A full check, as `asym check` runs it.
	tg, err := probes.OpenTarget(host.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	c := probes.NewCollector(tg, f, "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	checkStart := time.Now()
	for _, s := range playbook.Steps {
		for _, id := range s.Probes {
			r := c.Run(ctx, id).Rep()
			if !r.OK() {
				t.Errorf("probe %s: %s: %s", id, r.Status, r.Reason)
			}
		}
	}
	ev := c.Evidence()
	findings := playbook.Analyze(&ev, len(playbook.Steps)-1)
	elapsed := time.Since(checkStart)
	routes, rules, cts := tg.Received()
	var ids []string
	for _, fd := range findings {
		ids = append(ids, string(fd.ID))
	}
	t.Logf("check in %s: received %d route messages, %d rules, %d conntrack entries; findings %v",
		elapsed.Round(time.Microsecond), routes, rules, cts, ids)

	if routes >= scaleMaxRoutes {
		t.Errorf("asym received %d route messages for one flow, want fewer than %d: something dumps main (%d routes)", routes, scaleMaxRoutes, scaleRoutes)
	}
	if routes == 0 {
		t.Errorf("asym received no route message: the counter is not wired")
	}
	if cts >= scaleMaxConntrack {
		t.Errorf("asym received %d conntrack entries, want fewer than %d: something dumps the conntrack table (%d entries)", cts, scaleMaxConntrack, scaleConntrack+1)
	}
	if rules < scaleRules {
		t.Errorf("asym received %d rules, want at least the %d added: the rule counter is not wired", rules, scaleRules)
	}
	// The counters agree with the evidence: the flow's entry was found,
	// in a table that holds them all, and the table in play was read whole.
	if ev.Conntrack == nil || len(ev.Conntrack.Entries) != 1 || ev.Conntrack.Count < scaleConntrack {
		t.Errorf("conntrack evidence: want the flow's entry in a table of at least %d, got %+v", scaleConntrack, ev.Conntrack)
	}
	if tb := ev.Tables.Table(1001); tb == nil || len(tb.Routes) != 5 {
		t.Errorf("table 1001 (eth0's source rule) should be read with its 5 routes: %+v", ev.Tables)
	}
	for _, want := range fam.findings {
		if !slices.Contains(ids, want) {
			t.Errorf("finding %s missing: got %v", want, ids)
		}
	}
}

// scaleBuildHost builds the lab's server host: eth0 and eth1 on one subnet
// (veths whose peers share a bridge with the gateway in a second
// namespace), the default route by eth0 and strict rp_filter.
func scaleBuildHost(t *testing.T, fam scaleFamily) probetest.NS {
	t.Helper()
	host, fab := probetest.NewNS(t), probetest.NewNS(t)
	probetest.Sysctl(t, host.Handle, "net/ipv4/conf/all/rp_filter", "1")
	fh := probetest.Netlink(t, fab.Handle)
	if err := fh.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		t.Fatalf("add the fabric's bridge: %v", err)
	}
	br := probetest.SetUp(t, fh, probetest.Link{Name: "br0", Addrs: []string{fam.gw + "/" + fmt.Sprint(netip.MustParsePrefix(fam.eth0).Bits())}})
	var eth0 netlink.Link
	for i, addr := range []string{fam.eth0, fam.eth1} {
		name, peer := fmt.Sprintf("eth%d", i), fmt.Sprintf("p%d", i)
		l, p := probetest.Veth(t, host, probetest.Link{Name: name, Addrs: []string{addr}}, fab, probetest.Link{Name: peer})
		if err := fh.LinkSetMasterByIndex(p, br.Attrs().Index); err != nil {
			t.Fatalf("attach %s to the bridge: %v", peer, err)
		}
		if i == 0 {
			eth0 = l
		}
	}
	gw := netip.MustParseAddr(fam.gw)
	def := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}
	if gw.Is6() {
		def.Dst = scaleIPNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
	}
	if err := probetest.Netlink(t, host.Handle).RouteAdd(def); err != nil {
		t.Fatalf("add the default route via %s: %v", gw, err)
	}
	return host
}

// scaleRouteMsg is one RTM_NEWROUTE: dst via gw out of oif, in table,
// marked as learnt by BGP like a border router's routes.
func scaleRouteMsg(dst netip.Prefix, gw netip.Addr, oif int, table uint32) mdnetlink.Message {
	family := byte(unix.AF_INET)
	if dst.Addr().Is6() {
		family = unix.AF_INET6
	}
	rtm := []byte{family, byte(dst.Bits()), 0, 0, unix.RT_TABLE_UNSPEC, 186 /* RTPROT_BGP */, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNICAST, 0, 0, 0, 0}
	ae := mdnetlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, dst.Addr().AsSlice())
	ae.Bytes(unix.RTA_GATEWAY, gw.AsSlice())
	ae.Uint32(unix.RTA_OIF, uint32(oif))
	ae.Uint32(unix.RTA_TABLE, table)
	attrs, err := ae.Encode()
	if err != nil {
		panic(err) // fixed-size attributes: cannot fail
	}
	return mdnetlink.Message{
		Header: mdnetlink.Header{Type: unix.RTM_NEWROUTE, Flags: mdnetlink.Request | mdnetlink.Create | mdnetlink.Excl},
		Data:   append(rtm, attrs...),
	}
}

// scaleSend sends route messages 500 to a sendmsg, asking for an ACK on
// the last of each batch only (the kernel answers errors anyway): per-route
// round trips would make the test slow.
func scaleSend(t *testing.T, ns probetest.NS, msgs []mdnetlink.Message) {
	t.Helper()
	c, err := mdnetlink.Dial(unix.NETLINK_ROUTE, &mdnetlink.Config{NetNS: int(ns.Handle)})
	if err != nil {
		t.Fatalf("route socket in %s: %v", ns.Name, err)
	}
	defer c.Close()
	seq := uint32(0)
	for len(msgs) > 0 {
		batch := msgs[:min(500, len(msgs))]
		msgs = msgs[len(batch):]
		for i := range batch {
			seq++
			batch[i].Header.Sequence = seq
		}
		batch[len(batch)-1].Header.Flags |= mdnetlink.Acknowledge
		if _, err := c.SendMessages(batch); err != nil {
			t.Fatalf("send routes: %v", err)
		}
		for acked := false; !acked; {
			got, err := c.Receive()
			if err != nil {
				t.Fatalf("add routes (batch ending at %d): %v", seq, err)
			}
			for _, m := range got {
				acked = acked || (m.Header.Type == mdnetlink.Error && m.Header.Sequence == seq)
			}
		}
	}
}

// scaleStrictDump dumps one table on a strict-checking route socket the way
// vishvananda/netlink builds the request (table ids from 256 up go in
// RTA_TABLE) and counts every route message the kernel sends.
func scaleStrictDump(t *testing.T, ns probetest.NS, v6 bool, table uint32) int {
	t.Helper()
	c, err := mdnetlink.Dial(unix.NETLINK_ROUTE, &mdnetlink.Config{NetNS: int(ns.Handle)})
	if err != nil {
		t.Fatalf("route socket in %s: %v", ns.Name, err)
	}
	defer c.Close()
	if err := c.SetOption(mdnetlink.GetStrictCheck, true); err != nil {
		t.Fatalf("strict checking: %v", err)
	}
	family := byte(unix.AF_INET)
	if v6 {
		family = unix.AF_INET6
	}
	ae := mdnetlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_TABLE, table)
	attrs, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Execute(mdnetlink.Message{
		Header: mdnetlink.Header{Type: unix.RTM_GETROUTE, Flags: mdnetlink.Request | mdnetlink.Dump},
		Data:   append([]byte{family, 0, 0, 0, unix.RT_TABLE_UNSPEC, 0, 0, 0, 0, 0, 0, 0}, attrs...),
	})
	if err != nil {
		t.Fatalf("dump table %d: %v", table, err)
	}
	return len(msgs)
}

func scaleIPNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

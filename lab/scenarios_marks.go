package lab

// Scenarios for incident classes asym was silent on (issue #13): policy
// routing by marks that loses its mark on the way back, or whose marks the
// reverse-path check ignores; a stateful firewall written by iptables-nft
// that only the reply crosses; and, for contrast, a busy firewall whose
// INVALID counter climbs for everything but the flow.

import "net/netip"

// Addresses of the two-uplink server (the multi-homed article's host, as
// in two-isps, but ISP A is the primary link and the flow comes in by B).
const (
	upHostA  = "192.0.2.2"
	upHostB  = "198.51.100.2"
	upISPA   = "192.0.2.1"
	upISPB   = "198.51.100.1"
	upClient = "203.0.113.10"
)

// uplinks builds a server with two ISP links:
//
//	host eth0 192.0.2.2/24    -- isp-a 192.0.2.1    | 203.0.113.1/30 -- inet 203.0.113.2
//	host eth1 198.51.100.2/24 -- isp-b 198.51.100.1 | 203.0.113.5/30 -- inet 203.0.113.6
//	inet 203.0.113.9/29 -- client 203.0.113.10/29
//
// The host's default route goes to ISP A. Both ISPs filter foreign sources
// coming from the host (BCP38), so a reply that leaves by the other ISP's
// link dies there. hostSysctls are written when the host's namespace is made.
func uplinks(b *builder, hostSysctls ...kv) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"host", hostSysctls}, {"isp-a", []kv{forwarding}}, {"isp-b", []kv{forwarding}}, {"inet", []kv{forwarding}}, {"client", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"host", "eth0", "isp-a", "eth0"},
		{"host", "eth1", "isp-b", "eth0"},
		{"isp-a", "eth1", "inet", "eth0"},
		{"isp-b", "eth1", "inet", "eth1"},
		{"client", "eth0", "inet", "eth2"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"host", "eth0", upHostA + "/24"},
		{"host", "eth1", upHostB + "/24"},
		{"isp-a", "eth0", upISPA + "/24"},
		{"isp-a", "eth1", "203.0.113.1/30"},
		{"isp-b", "eth0", upISPB + "/24"},
		{"isp-b", "eth1", "203.0.113.5/30"},
		{"inet", "eth0", "203.0.113.2/30"},
		{"inet", "eth1", "203.0.113.6/30"},
		{"inet", "eth2", "203.0.113.9/29"},
		{"client", "eth0", upClient + "/29"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"host":   {{via: upISPA, dev: "eth0"}},
		"isp-a":  {{via: "203.0.113.2", dev: "eth1"}},
		"isp-b":  {{via: "203.0.113.6", dev: "eth1"}},
		"inet":   {{dst: "192.0.2.0/24", via: "203.0.113.1", dev: "eth0"}, {dst: "198.51.100.0/24", via: "203.0.113.5", dev: "eth1"}},
		"client": {{via: "203.0.113.9", dev: "eth0"}},
	}
	for _, role := range []string{"host", "isp-a", "isp-b", "inet", "client"} {
		if err := b.route(role, routes[role]...); err != nil {
			return err
		}
	}
	if err := b.ingressFilter("isp-a", "eth0", "192.0.2.0/24"); err != nil {
		return err
	}
	return b.ingressFilter("isp-b", "eth0", "198.51.100.0/24")
}

// Marks and tables of the mark-routing scenarios: mark N is looked up in
// table 100+N, as such setups are usually numbered.
const (
	connmarkB     = 0x2
	connmarkTable = 102
	pktmarkB      = 0x1
	pktmarkTable  = 101
)

// connmarkNoRestore: connections that arrive by ISP B get ct mark 0x2 and
// `fwmark 0x2 lookup 102` sends marked packets out of eth1, but nothing
// copies the ct mark back onto the replies (the `--restore-mark` half of
// the recipe is missing), so they carry mark 0, follow main out of eth0,
// and ISP A's ingress filter drops the foreign source.
func connmarkNoRestore(b *builder) error {
	if err := uplinks(b); err != nil {
		return err
	}
	if err := b.route("host", route{via: upISPB, dev: "eth1", table: connmarkTable}); err != nil {
		return err
	}
	if err := b.markRule("host", connmarkB, connmarkTable, 1000); err != nil {
		return err
	}
	if err := b.markNewConnections("host", "eth1", connmarkB); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp " + upClient + ":40000 " + upHostB + ":8080",
		// The host holds the whole story. Its ruleset sets the mark on
		// connections (`iif eth1 ct state new ct mark set 0x2` in a
		// prerouting chain) and has no `meta mark set ct mark` in any
		// output chain (none of type route, where a changed mark
		// re-routes), while `fwmark 0x2 lookup 102` sends marked packets
		// by eth1. The flow's conntrack entry carries mark 0x2 (state
		// SYN_RECV: the SYN-ACK left). The reply's route lookup without a
		// mark takes main out of eth0; with mark 0x2 it would take table
		// 102 out of eth1, where the request came in. So the reply leaves
		// by the wrong link (reply_wrong_egress) because its mark is not
		// restored (mark_not_restored). Not missing_source_rule: a rule
		// for eth1 exists, it keys on the mark; a source rule is
		// mark_not_restored's alternative fix, the one asym can apply,
		// and once it is in, the reply leaves by eth1 and both findings
		// must go. With --watch: the SYN in on eth1 and the SYN-ACK out
		// on eth0, again and again (the entry exists, so no conntrack
		// events after the first try).
		Expect: []string{"mark_not_restored", "reply_wrong_egress"},
	}}
	return nil
}

// srcValidMark: packets that arrive by ISP B are marked 0x1 before
// routing and their connection keeps the mark, which an output route chain
// puts back on the replies, so `fwmark 0x1 lookup 101` sends them out of
// eth1: the policy routing is right. But eth1 has strict rp_filter and
// src_valid_mark is 0, so the reverse-path check ignores the mark, looks
// up main, finds eth0 and drops the request.
func srcValidMark(b *builder) error {
	if err := uplinks(b, kv{"net/ipv4/conf/all/src_valid_mark", "0"}, kv{"net/ipv4/conf/default/src_valid_mark", "0"}); err != nil {
		return err
	}
	if err := b.sysctl("host", kv{"net/ipv4/conf/eth1/rp_filter", "1"}, kv{"net/ipv4/conf/eth1/src_valid_mark", "0"}); err != nil {
		return err
	}
	if err := b.route("host", route{via: upISPB, dev: "eth1", table: pktmarkTable}); err != nil {
		return err
	}
	if err := b.markRule("host", pktmarkB, pktmarkTable, 1000); err != nil {
		return err
	}
	if err := b.markPackets("host", "eth1", pktmarkB); err != nil {
		return err
	}
	if err := b.restoreMark("host"); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp " + upClient + ":40000 " + upHostB + ":8080",
		// TcpExt IPReversePathFilter climbs and the flow has no conntrack
		// entry (the SYN dies in the routing step, before conntrack
		// confirms it). eth1's rp_filter is strict (max(all=0, eth1=1)),
		// src_valid_mark is 0 on all and eth1, and the ruleset marks
		// every packet in on eth1 (`iif eth1 meta mark set 0x1` in
		// prerouting) for `fwmark 0x1 lookup 101`, whose table leaves by
		// eth1. The request lookup `route get 198.51.100.2 from
		// 203.0.113.10 iif eth1 mark 0x1` is refused (EINVAL) although
		// the way back with that mark (`route get 203.0.113.10 from
		// 198.51.100.2 mark 0x1`) leaves by eth1: the check would pass if
		// it counted the mark. So: rp_filter_strict_drop, caused by
		// src_valid_mark_off, fixed by src_valid_mark=1. Not
		// reply_wrong_egress nor missing_source_rule: replies get their
		// mark back (`meta mark set ct mark` in a route chain on output)
		// and leave by eth1. With --watch: SYNs in on eth1, nothing out.
		Expect: []string{"rp_filter_strict_drop", "src_valid_mark_off"},
	}}
	return nil
}

// firewallOneWay is a stateful firewall that only the reply crosses:
//
//	client 192.0.2.10 -- r1 ----(198.51.100.0/30, the bypass)---- r2 -- server 203.0.113.10
//	                        \-(.4/30)-- fw --(198.51.100.8/30)--/
//
// r1 sends requests straight to r2 (a static route that predates the
// firewall); r2 sends replies back through fw. fw never sees the SYN, so
// the SYN-ACK is INVALID there and dropInvalid's rule drops it.
// dropInvalid writes that rule in one of the ways firewalls are written
// (iptables-nft here; iptables-legacy would be another).
func firewallOneWay(dropInvalid func(*builder, string) error) func(*builder) error {
	return func(b *builder) error {
		for _, ns := range []struct {
			role  string
			extra []kv
		}{{"client", nil}, {"r1", []kv{forwarding}}, {"fw", []kv{forwarding}}, {"r2", []kv{forwarding}}, {"server", nil}} {
			if err := b.ns(ns.role, ns.extra...); err != nil {
				return err
			}
		}
		for _, l := range [][4]string{
			{"client", "eth0", "r1", "eth0"},
			{"r1", "eth1", "r2", "eth1"},
			{"r1", "eth2", "fw", "eth0"},
			{"fw", "eth1", "r2", "eth2"},
			{"server", "eth0", "r2", "eth0"},
		} {
			if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
				return err
			}
		}
		for _, a := range [][3]string{
			{"client", "eth0", "192.0.2.10/24"},
			{"r1", "eth0", "192.0.2.1/24"},
			{"r1", "eth1", "198.51.100.1/30"},
			{"r2", "eth1", "198.51.100.2/30"},
			{"r1", "eth2", "198.51.100.5/30"},
			{"fw", "eth0", "198.51.100.6/30"},
			{"fw", "eth1", "198.51.100.9/30"},
			{"r2", "eth2", "198.51.100.10/30"},
			{"r2", "eth0", "203.0.113.1/24"},
			{"server", "eth0", "203.0.113.10/24"},
		} {
			if err := b.addr(a[0], a[1], a[2]); err != nil {
				return err
			}
		}
		routes := map[string][]route{
			"client": {{via: "192.0.2.1", dev: "eth0"}},
			"r1":     {{dst: "203.0.113.0/24", via: "198.51.100.2", dev: "eth1"}},
			"fw":     {{dst: "192.0.2.0/24", via: "198.51.100.5", dev: "eth0"}, {dst: "203.0.113.0/24", via: "198.51.100.10", dev: "eth1"}},
			"r2":     {{dst: "192.0.2.0/24", via: "198.51.100.9", dev: "eth2"}},
			"server": {{via: "203.0.113.1", dev: "eth0"}},
		}
		for _, role := range []string{"client", "r1", "fw", "r2", "server"} {
			if err := b.route(role, routes[role]...); err != nil {
				return err
			}
		}
		if err := dropInvalid(b, "fw"); err != nil {
			return err
		}
		b.env.client, b.env.server = "client", "server"
		b.env.Checks = []Check{{
			Target: b.name("fw"),
			Flow:   "tcp 192.0.2.10:40000 203.0.113.10:8080",
			// fw's ruleset drops conntrack-INVALID packets in its forward
			// hook: table ip filter, chain FORWARD, an xt `conntrack`
			// match (revision 3, state flag, state mask INVALID), a
			// counter that climbs with every try, verdict drop. The flow
			// has no conntrack entry on fw (it never saw the SYN) and
			// conntrack's invalid statistic climbs with the counter.
			// fw's routes take the reply from eth1 to eth0 (where the
			// request would have come from), so the flow's reply is
			// what arrives and dies. With --watch: the SYN-ACK in on
			// eth1, no conntrack event, nothing out, the counter and
			// invalid climbing.
			Expect: []string{"ct_invalid_drop"},
		}}
		return nil
	}
}

// Busy firewall addresses. The strays come from other servers on the
// server's subnet, and from the server itself to other client ports: all
// differ from the flow in an address or a port.
const (
	busyClient = "192.0.2.10"
	busyServer = "203.0.113.10"
)

// busyFirewall: client -- fw -- server, both directions of the flow cross
// fw, which tracks connections and drops INVALID ones:
//
//	client 192.0.2.10/24 -- fw 192.0.2.1 | 203.0.113.1 -- server 203.0.113.10/24
//
// Its `ct state invalid counter drop` counter climbs all the time: the
// server's namespace sends stray SYN-ACKs and FIN-ACKs of connections fw
// never saw (other servers' replies, late segments of expired entries),
// 20 a second, through fw. The flow itself works.
func busyFirewall(b *builder) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"fw", []kv{forwarding}}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{{"client", "eth0", "fw", "eth0"}, {"fw", "eth1", "server", "eth0"}} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", busyClient + "/24"},
		{"fw", "eth0", "192.0.2.1/24"},
		{"fw", "eth1", "203.0.113.1/24"},
		{"server", "eth0", busyServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	if err := b.route("client", route{via: "192.0.2.1", dev: "eth0"}); err != nil {
		return err
	}
	if err := b.route("server", route{via: "203.0.113.1", dev: "eth0"}); err != nil {
		return err
	}
	if err := b.invalidDrop("fw"); err != nil {
		return err
	}
	// Bare ACKs would not do: conntrack picks a mid-stream ACK up as a
	// new ESTABLISHED entry (nf_conntrack_tcp_loose=1, notes K7), while a
	// SYN-ACK or a FIN from no state is INVALID whatever loose says.
	if err := b.strays("server",
		stray{src: netip.MustParseAddr("203.0.113.20"), dst: netip.MustParseAddr(busyClient), sport: 443, dport: 50000, ports: 1000, flags: tcpSYN | tcpACK},
		// The flow's own hosts and server port, other client ports: only
		// the port tells these from the flow.
		stray{src: netip.MustParseAddr(busyServer), dst: netip.MustParseAddr(busyClient), sport: 8080, dport: 41000, ports: 1000, flags: tcpSYN | tcpACK},
		stray{src: netip.MustParseAddr("203.0.113.21"), dst: netip.MustParseAddr("192.0.2.11"), sport: 80, dport: 52000, ports: 1000, flags: tcpFIN | tcpACK},
	); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "server"
	b.env.Checks = []Check{{
		Target: b.name("fw"),
		Flow:   "tcp " + busyClient + ":40000 " + busyServer + ":8080",
		// fw's `ct state invalid counter drop` counter and conntrack's
		// invalid statistic climb about 20 a second, but after a try the
		// flow has a conntrack entry that saw its reply (ASSURED; after
		// the client's RST close, state CLOSE for 10 s). Before any try
		// it has no entry at all while the counter climbs: absence plus
		// a climbing counter proves nothing about this flow. With
		// --watch its packets cross fw both ways (in on eth0, out on
		// eth1, and back) with NEW, ESTABLISHED and CLOSE events, while
		// the counter climbs by the strays alone: nothing the flow sends
		// is dropped. A counter that climbs for other flows is not a
		// finding.
		Expect: []string{},
	}}
	return nil
}

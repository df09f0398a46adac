package lab

// The scenarios: the cases of the three seed articles (cloud two-NICs,
// multi-homed source routing and its comments, the SRE playbook's firewall
// pair and its "smells like MTU" case), each as namespaces, plus one
// healthy network for contrast.

import (
	"fmt"
	"net/netip"
)

var catalog = []Scenario{
	{
		Name:    "two-nics-strict",
		Story:   "A cloud VM gets a second NIC on the same subnet; pings to the new address go unanswered.",
		Wrong:   "No source rules: the reply to eth1's address would leave by eth0, so strict rp_filter drops the request arriving on eth1.",
		Fixable: true,
		build:   twoNicsStrict,
	},
	{
		Name:    "two-nics-fabric",
		Story:   "The same two-NIC VM with loose rp_filter; the VPC's source/destination check still kills the connection.",
		Wrong:   "No source rules: the reply from eth1's address leaves by eth0 and the fabric drops a frame whose source is not that NIC's address.",
		Fixable: true,
		build:   twoNicsFabric,
	},
	{
		Name:    "two-isps",
		Story:   "A server with two ISP links answers only on the link its default route uses.",
		Wrong:   "No source rules: a reply from ISP A's address leaves by ISP B, whose ingress filter (BCP38) drops the foreign source.",
		Fixable: true,
		build:   twoISPs,
	},
	{
		Name:    "rule-typo",
		Story:   "The cloud article's own fix, copied with a typo: the eth0 rule names an address no interface has.",
		Wrong:   "`from 198.51.100.12 lookup 100` matches nothing; replies from eth0's address .10 use main, leave by eth1, and the fabric drops them.",
		Fixable: true,
		build:   ruleTypo,
	},
	{
		Name:    "missing-link-route",
		Story:   "Source routing done by the article's recipe; a neighbour on the same subnet cannot connect to the second address.",
		Wrong:   "Table 200 holds only a default route: replies to an on-link neighbour hairpin through the stateful gateway, which drops them as INVALID.",
		Fixable: true,
		build:   missingLinkRoute,
	},
	{
		Name:    "firewall-ecmp",
		Story:   "Two firewalls behind ECMP routers without state sync; some connections hang at SYN_SENT.",
		Wrong:   "The SYN hashes to fw1 and the SYN-ACK back through fw2, which never saw the SYN and drops it as INVALID.",
		Fixable: false,
		build:   firewallECMP,
	},
	{
		Name:  "mtu-blackhole",
		Story: "Connections open and small requests work, but a download stalls: an 8 KiB answer never arrives.",
		Wrong: "A 1280-byte link between two routers and a router that filters the ICMP frag-needed it sends: full-sized segments vanish. Only the server's packets prove it (check --watch).",
		// The fix is on the router: allow the ICMP, or clamp the MSS.
		Fixable: false,
		Answer:  mtuAnswer,
		build:   mtuBlackhole,
	},
	{
		Name:    "healthy",
		Story:   "Two NICs on one subnet done right: a source rule and a full table per NIC, ARP flux tamed.",
		Wrong:   "Nothing: replies leave by the NIC that owns their source address.",
		Fixable: false,
		build:   healthy,
	},
	{
		Name:    "connmark-no-restore",
		Story:   "A server with two ISP links routes by connection marks, yet nothing that arrives by ISP B gets an answer.",
		Wrong:   "Connections in on eth1 get ct mark 0x2 for `fwmark 0x2 lookup 102`, but nothing restores the mark on replies: they leave by eth0 and ISP A drops the foreign source.",
		Fixable: true,
		build:   connmarkNoRestore,
	},
	{
		Name:    "src-valid-mark",
		Story:   "The same server with the mark routing done right and strict rp_filter on ISP B's link: requests by ISP B vanish on arrival.",
		Wrong:   "src_valid_mark=0: the reverse-path check ignores the mark that routes eth1's replies, looks up main, finds eth0 and drops the request.",
		Fixable: true,
		build:   srcValidMark,
	},
	{
		Name:  "firewall-one-way-nft",
		Story: "A firewall was put in one path, but a static route still sends requests around it; connections hang at SYN_SENT.",
		Wrong: "Only the reply crosses the firewall; it never saw the SYN, so iptables-nft's `-m conntrack --ctstate INVALID -j DROP` drops the SYN-ACK.",
		// The fix is in the network: route the request through the
		// firewall too.
		Fixable: false,
		build:   firewallOneWay((*builder).xtInvalidDrop),
	},
	{
		Name:  "firewall-one-way-legacy",
		Story: "The same one-way firewall written with iptables-legacy: a host whose firewall lives in x_tables, invisible to nftables.",
		Wrong: "Only the reply crosses the firewall; iptables-legacy's `-m conntrack --ctstate INVALID -j DROP` drops the SYN-ACK, and no nft listing shows the rule.",
		// The fix is in the network, as for the nft variant.
		Fixable: false,
		build:   firewallOneWay((*builder).legacyInvalidDrop),
	},
	{
		Name:    "busy-firewall-ok",
		Story:   "A firewall that both directions cross; its INVALID drop counter climbs all day, and the flow works.",
		Wrong:   "Nothing: the drops are stray segments of other connections, not this flow's.",
		Fixable: false,
		build:   busyFirewall,
	},
	{
		Name:  "nat-gateway-pair",
		Story: "A site behind two NAT gateways configured alike; connections to the public VIP hang at SYN_SENT.",
		Wrong: "gw-a DNATs the VIP to the server, whose default route points at gw-b: gw-b has no state for the SYN-ACK and drops it as INVALID.",
		// The fix is on the server or the gateways (route replies to the
		// translator, SNAT, or shared state), not on either gateway alone.
		Fixable: false,
		build:   natGatewayPair,
	},
	{
		Name:    "route-src-hint",
		Story:   "A client with a production and a management NIC; outgoing connections time out though the route looks right.",
		Wrong:   "The default route by eth0 carries `src` eth1's address: unbound sockets send from it and the gateway's ingress filter (BCP38) drops them.",
		Fixable: true,
		build:   routeSrcHint,
	},
	{
		Name:    "port-selective-rule",
		Story:   "A two-NIC host with correct source routing; one service on the second NIC times out, its other ports work.",
		Wrong:   "A forgotten `ipproto tcp sport 8080 lookup 300` rule outranks the source rules: port 8080's replies leave by eth0 and the fabric drops them.",
		Fixable: true,
		build:   portSelectiveRule,
	},
	{
		Name:    "host-ecmp-two-isps",
		Story:   "A server with two ISPs and a multipath default route; some clients connect, others time out.",
		Wrong:   "No source rules: the ECMP hash sends some replies from ISP A's address out of ISP B, whose ingress filter (BCP38) drops them.",
		Fixable: true,
		build:   hostECMPTwoISPs,
	},
	{
		Name:    "two-isps-shared-lan",
		Story:   "The two-ISP server again, with ISP A's link on a LAN it shares with a VPN box; replies on ISP A's address are lost.",
		Wrong:   "No source rules, no route by eth0 and two routers on its LAN: the fix must learn which one is the gateway from the flow's frames.",
		Fixable: true,
		// The gateway of eth0 comes from the MAC of the frames the flow
		// brings in: asym fix --watch while the flow is retried.
		FixWatch: true,
		build:    twoISPsSharedLAN,
	},
	{
		Name:    "discard-route",
		Story:   "A server answers every network but one: connections from a customer's range hang at SYN_SENT.",
		Wrong:   "A blackhole route for 203.0.113.0/24, left in the server's main table by an old DDoS block, swallows its replies to that range.",
		Fixable: false,
		build:   discardRoute,
	},
	{
		Name:    "stateless-router",
		Story:   "A router that forwards the request by one link and gets the reply back by another.",
		Wrong:   "Nothing: the router keeps no state and rp_filter is off, so asymmetric paths through it work.",
		Fixable: false,
		build:   statelessAsymmetricRouter,
	},
}

// Addresses of the cloud-VPC topology (the cloud article, in documentation
// ranges).
const (
	vpcGW     = "198.51.100.1"
	vpcEth0   = "198.51.100.10"
	vpcEth1   = "198.51.100.11"
	vpcPeer   = "198.51.100.50"
	vpcNet    = "198.51.100.0/24"
	vpcClient = "203.0.113.10"
	vpcOutGW  = "203.0.113.1"
)

// vpc builds the cloud article's network:
//
//	client (203.0.113.10) -- gw (203.0.113.1 | 198.51.100.1) -- fabric br0
//	fabric br0 -- host eth0 198.51.100.10/24, host eth1 198.51.100.11/24
//	fabric br0 -- peer 198.51.100.50/24 (only with peer)
//
// The fabric is a bridge in its own namespace, ports named after what they
// face (host0, host1, gw, peer). The gateway has permanent neighbour entries
// for both host addresses, as a cloud fabric that knows the MACs, so a
// packet to .11 really arrives on eth1 (notes §8). hostSysctls are written
// in the host's namespace before its interfaces exist.
func vpc(b *builder, peer bool, hostSysctls ...kv) error {
	if err := b.ns("host", hostSysctls...); err != nil {
		return err
	}
	if err := b.ns("fabric"); err != nil {
		return err
	}
	if err := b.ns("gw", forwarding); err != nil {
		return err
	}
	if err := b.ns("client"); err != nil {
		return err
	}
	links := [][4]string{
		{"host", "eth0", "fabric", "host0"},
		{"host", "eth1", "fabric", "host1"},
		{"gw", "eth0", "fabric", "gw"},
		{"client", "eth0", "gw", "eth1"},
	}
	ports := []string{"host0", "host1", "gw"}
	if peer {
		if err := b.ns("peer"); err != nil {
			return err
		}
		links = append(links, [4]string{"peer", "eth0", "fabric", "peer"})
		ports = append(ports, "peer")
	}
	for _, l := range links {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	if err := b.bridge("fabric", "br0", ports...); err != nil {
		return err
	}
	addrs := [][3]string{
		{"host", "eth0", vpcEth0 + "/24"},
		{"host", "eth1", vpcEth1 + "/24"},
		{"gw", "eth0", vpcGW + "/24"},
		{"gw", "eth1", vpcOutGW + "/24"},
		{"client", "eth0", vpcClient + "/24"},
	}
	if peer {
		addrs = append(addrs, [3]string{"peer", "eth0", vpcPeer + "/24"})
	}
	for _, a := range addrs {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	if err := b.route("client", route{via: vpcOutGW, dev: "eth0"}); err != nil {
		return err
	}
	if peer {
		if err := b.route("peer", route{via: vpcGW, dev: "eth0"}); err != nil {
			return err
		}
	}
	for _, n := range [][2]string{{"eth0", vpcEth0}, {"eth1", vpcEth1}} {
		mac, err := b.mac("host", n[0])
		if err != nil {
			return err
		}
		if err := b.neigh("gw", "eth0", n[1], mac); err != nil {
			return err
		}
	}
	return nil
}

// bothDefaults is the article's `route -n`: one default per NIC, eth0 first.
func bothDefaults(b *builder) error {
	return b.route("host",
		route{via: vpcGW, dev: "eth0", metric: 100},
		route{via: vpcGW, dev: "eth1", metric: 101},
	)
}

// sourceTable fills a per-NIC table with its link route and default, as the
// article's route-ethX files do.
func sourceTable(b *builder, table int, dev, src string) error {
	return b.route("host",
		route{dst: vpcNet, dev: dev, src: src, link: true, table: table},
		route{via: vpcGW, dev: dev, table: table},
	)
}

var (
	strictRP = kv{"net/ipv4/conf/all/rp_filter", "1"}
	looseRP  = kv{"net/ipv4/conf/all/rp_filter", "2"}
	// arp_ignore=1 answers ARP only on the NIC that owns the address, and
	// arp_announce=2 sources ARP requests from the outgoing NIC's address:
	// together they stop ARP flux between two NICs on one subnet.
	arpIgnore   = kv{"net/ipv4/conf/all/arp_ignore", "1"}
	arpAnnounce = kv{"net/ipv4/conf/all/arp_announce", "2"}
)

func twoNicsStrict(b *builder) error {
	if err := vpc(b, false, strictRP); err != nil {
		return err
	}
	if err := bothDefaults(b); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 203.0.113.10:40000 198.51.100.11:8080",
		Expect: []string{"arp_flux", "missing_source_rule", "reply_wrong_egress", "rp_filter_strict_drop"},
	}}
	return nil
}

func twoNicsFabric(b *builder) error {
	if err := vpc(b, false, looseRP); err != nil {
		return err
	}
	if err := b.sourceCheck("fabric", map[string]string{"host0": vpcEth0, "host1": vpcEth1}); err != nil {
		return err
	}
	if err := bothDefaults(b); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 203.0.113.10:40000 198.51.100.11:8080",
		Expect: []string{"arp_flux", "missing_source_rule", "reply_wrong_egress"},
	}}
	return nil
}

// twoISPs is the reader comment in the multi-homed article:
//
//	host eth0 192.0.2.2/24    -- isp-a 192.0.2.1    | 203.0.113.1/30 -- inet 203.0.113.2
//	host eth1 198.51.100.2/24 -- isp-b 198.51.100.1 | 203.0.113.5/30 -- inet 203.0.113.6
//	inet 203.0.113.9/29 -- client 203.0.113.10/29
//
// The host's only default goes to ISP B, which filters foreign sources.
func twoISPs(b *builder) error {
	for _, ns := range []struct {
		role string
		fwd  bool
	}{{"host", false}, {"isp-a", true}, {"isp-b", true}, {"inet", true}, {"client", false}} {
		var extra []kv
		if ns.fwd {
			extra = append(extra, forwarding)
		}
		if err := b.ns(ns.role, extra...); err != nil {
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
		{"host", "eth0", "192.0.2.2/24"},
		{"host", "eth1", "198.51.100.2/24"},
		{"isp-a", "eth0", "192.0.2.1/24"},
		{"isp-a", "eth1", "203.0.113.1/30"},
		{"isp-b", "eth0", "198.51.100.1/24"},
		{"isp-b", "eth1", "203.0.113.5/30"},
		{"inet", "eth0", "203.0.113.2/30"},
		{"inet", "eth1", "203.0.113.6/30"},
		{"inet", "eth2", "203.0.113.9/29"},
		{"client", "eth0", "203.0.113.10/29"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"host":   {{via: "198.51.100.1", dev: "eth1"}},
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
	if err := b.ingressFilter("isp-b", "eth0", "198.51.100.0/24"); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 203.0.113.10:40000 192.0.2.2:8080",
		Expect: []string{"missing_source_rule", "reply_wrong_egress"},
	}}
	return nil
}

func ruleTypo(b *builder) error {
	if err := vpc(b, false, looseRP); err != nil {
		return err
	}
	if err := b.sourceCheck("fabric", map[string]string{"host0": vpcEth0, "host1": vpcEth1}); err != nil {
		return err
	}
	// eth1 is the primary NIC here, so a reply that misses its rule leaves
	// by eth1.
	if err := b.route("host",
		route{via: vpcGW, dev: "eth1", metric: 100},
		route{via: vpcGW, dev: "eth0", metric: 101},
	); err != nil {
		return err
	}
	if err := sourceTable(b, 100, "eth0", vpcEth0); err != nil {
		return err
	}
	if err := sourceTable(b, 200, "eth1", vpcEth1); err != nil {
		return err
	}
	// Priorities as the article's `ip rule` listing shows them.
	if err := b.rule("host", vpcEth1, 200, 32764); err != nil {
		return err
	}
	if err := b.rule("host", "198.51.100.12", 100, 32765); err != nil { // the typo
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 203.0.113.10:40000 198.51.100.10:8080",
		Expect: []string{"arp_flux", "reply_wrong_egress", "rule_unknown_source"},
	}}
	return nil
}

func missingLinkRoute(b *builder) error {
	if err := vpc(b, true, strictRP, arpIgnore, arpAnnounce); err != nil {
		return err
	}
	// The gateway is stateful: a SYN-ACK whose SYN it never saw is INVALID.
	// send_redirects is already 0 (baseSysctls), so it does not teach the
	// host the on-link path either.
	if err := b.invalidDrop("gw"); err != nil {
		return err
	}
	if err := b.route("host", route{via: vpcGW, dev: "eth0"}); err != nil {
		return err
	}
	if err := sourceTable(b, 100, "eth0", vpcEth0); err != nil {
		return err
	}
	// Only a default in table 200: the article's recipe without Carson
	// Gee's link route.
	if err := b.route("host", route{via: vpcGW, dev: "eth1", table: 200}); err != nil {
		return err
	}
	if err := b.rule("host", vpcEth0, 100, 1000); err != nil {
		return err
	}
	if err := b.rule("host", vpcEth1, 200, 1001); err != nil {
		return err
	}
	b.env.client, b.env.server = "peer", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 198.51.100.50:40000 198.51.100.11:8080",
		Expect: []string{"missing_link_route"},
	}}
	return nil
}

// ECMP addresses: client and server ends, and four /30 transit links carved
// from 198.51.100.0/24.
const (
	ecmpClient = "192.0.2.10"
	ecmpServer = "203.0.113.10"
	ecmpPort   = 8080
	// The seeds pin the multipath hash so the same source port takes the
	// same paths on every run (the port is still chosen by asking the
	// kernel). They must differ: the kernel's flow hash is symmetric (it
	// orders addresses and ports before hashing, __flow_hash_consistentify),
	// so two routers with one seed and the same next-hop order send the
	// SYN-ACK back through the firewall that took the SYN, always.
	ecmpSeedR1 = "1918987637"
	ecmpSeedR2 = "2004318071"
)

// firewallECMP is the playbook's mini-story 1:
//
//	client 192.0.2.10 -- r1 =ECMP=> fw1 (198.51.100.0/30, .8/30) => r2 -- server 203.0.113.10
//	                         \====> fw2 (198.51.100.4/30, .12/30) =/
//
// r1 and r2 hash on addresses and ports (policy 3 with fields 0x37 and
// fixed, different seeds: policy 1 would reuse the client socket's random skb hash
// carried over the veth, and a retransmission could switch paths, notes §8).
// The client port is chosen so the SYN takes fw1 and the SYN-ACK fw2.
func firewallECMP(b *builder) error {
	router := func(seed string) []kv {
		return []kv{forwarding,
			{"net/ipv4/fib_multipath_hash_policy", "3"},
			{"net/ipv4/fib_multipath_hash_fields", "55"}, // 0x37: src/dst address, protocol, src/dst port
			{"net/ipv4/fib_multipath_hash_seed", seed},
		}
	}
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"r1", router(ecmpSeedR1)}, {"fw1", []kv{forwarding}}, {"fw2", []kv{forwarding}}, {"r2", router(ecmpSeedR2)}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"client", "eth0", "r1", "eth0"},
		{"r1", "eth1", "fw1", "eth0"},
		{"r1", "eth2", "fw2", "eth0"},
		{"fw1", "eth1", "r2", "eth1"},
		{"fw2", "eth1", "r2", "eth2"},
		{"server", "eth0", "r2", "eth0"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", ecmpClient + "/24"},
		{"r1", "eth0", "192.0.2.1/24"},
		{"r1", "eth1", "198.51.100.1/30"},
		{"fw1", "eth0", "198.51.100.2/30"},
		{"r1", "eth2", "198.51.100.5/30"},
		{"fw2", "eth0", "198.51.100.6/30"},
		{"fw1", "eth1", "198.51.100.9/30"},
		{"r2", "eth1", "198.51.100.10/30"},
		{"fw2", "eth1", "198.51.100.13/30"},
		{"r2", "eth2", "198.51.100.14/30"},
		{"r2", "eth0", "203.0.113.1/24"},
		{"server", "eth0", ecmpServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"client": {{via: "192.0.2.1", dev: "eth0"}},
		"server": {{via: "203.0.113.1", dev: "eth0"}},
		"fw1":    {{dst: "192.0.2.0/24", via: "198.51.100.1", dev: "eth0"}, {dst: "203.0.113.0/24", via: "198.51.100.10", dev: "eth1"}},
		"fw2":    {{dst: "192.0.2.0/24", via: "198.51.100.5", dev: "eth0"}, {dst: "203.0.113.0/24", via: "198.51.100.14", dev: "eth1"}},
	}
	for _, role := range []string{"client", "server", "fw1", "fw2"} {
		if err := b.route(role, routes[role]...); err != nil {
			return err
		}
	}
	if err := b.multipath("r1", "203.0.113.0/24", hop{"198.51.100.2", "eth1"}, hop{"198.51.100.6", "eth2"}); err != nil {
		return err
	}
	if err := b.multipath("r2", "192.0.2.0/24", hop{"198.51.100.9", "eth1"}, hop{"198.51.100.13", "eth2"}); err != nil {
		return err
	}
	for _, fw := range []string{"fw1", "fw2"} {
		if err := b.invalidDrop(fw); err != nil {
			return err
		}
	}
	port, err := asymmetricPort(b)
	if err != nil {
		return err
	}
	f := fmt.Sprintf("tcp %s:%d %s:%d", ecmpClient, port, ecmpServer, ecmpPort)
	b.env.client, b.env.server = "client", "server"
	b.env.Checks = []Check{
		{Target: b.name("fw2"), Flow: f, Expect: []string{"ct_invalid_drop"}},
		{Target: b.name("fw1"), Flow: f, Expect: []string{"conntrack_unreplied"}},
		{Target: b.name("r2"), Flow: f, Expect: []string{"ecmp_multipath"}},
		// fw1 again without the client's port: the filtered conntrack dump
		// finds the one connection tried, [UNREPLIED].
		{Target: b.name("fw1"), Flow: fmt.Sprintf("tcp %s %s:%d", ecmpClient, ecmpServer, ecmpPort), Expect: []string{"conntrack_unreplied"}},
	}
	return nil
}

// asymmetricPort asks r1 and r2 which firewall each direction of a flow
// hashes to and returns the first client port (from 40000) whose SYN goes
// by fw1 and whose SYN-ACK comes back by fw2. About one port in four fits.
func asymmetricPort(b *builder) (uint16, error) {
	client, server := netip.MustParseAddr(ecmpClient), netip.MustParseAddr(ecmpServer)
	for p := uint16(40000); p < 41000; p++ {
		fwd, err := b.outputIf("r1", "eth0", client, server, p, ecmpPort)
		if err != nil {
			return 0, err
		}
		if fwd != "eth1" { // eth1 faces fw1
			continue
		}
		back, err := b.outputIf("r2", "eth0", server, client, ecmpPort, p)
		if err != nil {
			return 0, err
		}
		if back == "eth2" { // eth2 faces fw2
			return p, nil
		}
	}
	return 0, fmt.Errorf("no client port in 40000-40999 hashes to fw1 forward and fw2 back: is fib_multipath_hash_policy 3 honoured in %s?", b.name("r1"))
}

// MTU black hole addresses and sizes.
const (
	mtuClient = "192.0.2.10"
	mtuServer = "203.0.113.10"
	// mtuLink is the MTU of the link between the routers (a tunnel, a WAN
	// circuit): IPv6's minimum, smaller than the 1500 both ends have.
	mtuLink = 1280
	// mtuAnswer is what the server answers each request with: several
	// full-sized (1500-byte) segments.
	mtuAnswer = 8 << 10
)

// mtuBlackhole is the SRE playbook's "it smells like MTU" case:
//
//	client 192.0.2.10 -- r1 ==(198.51.100.0/30, mtu 1280)== r2 -- server 203.0.113.10
//
// Both ends have 1500-byte links, so each advertises an MSS of 1460 and the
// server sends 1500-byte segments. r2 cannot forward them onto the 1280
// link with DF set; it answers with ICMP fragmentation-needed, and its own
// firewall drops that answer on the way out. The handshake, the 1-byte
// request and the ACKs pass; the answer's segments vanish, the server
// retransmits them at the same size until the client gives up. Nothing on
// the server's own configuration is wrong: only its packets show it.
func mtuBlackhole(b *builder) error {
	// The server's RFC 4821 probing (tcp_mtu_probing) would eventually
	// shrink its segments by itself; it is off by default, and set so here
	// so the lab does not depend on the default.
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"r1", []kv{forwarding}}, {"r2", []kv{forwarding}}, {"server", []kv{{"net/ipv4/tcp_mtu_probing", "0"}}}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"client", "eth0", "r1", "eth0"},
		{"r1", "eth1", "r2", "eth1"},
		{"server", "eth0", "r2", "eth0"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, m := range [][2]string{{"r1", "eth1"}, {"r2", "eth1"}} {
		if err := b.mtu(m[0], m[1], mtuLink); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", mtuClient + "/24"},
		{"r1", "eth0", "192.0.2.1/24"},
		{"r1", "eth1", "198.51.100.1/30"},
		{"r2", "eth1", "198.51.100.2/30"},
		{"r2", "eth0", "203.0.113.1/24"},
		{"server", "eth0", mtuServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"client": {{via: "192.0.2.1", dev: "eth0"}},
		"r1":     {{dst: "203.0.113.0/24", via: "198.51.100.2", dev: "eth1"}},
		"r2":     {{dst: "192.0.2.0/24", via: "198.51.100.1", dev: "eth1"}},
		"server": {{via: "203.0.113.1", dev: "eth0"}},
	}
	for _, role := range []string{"client", "r1", "r2", "server"} {
		if err := b.route(role, routes[role]...); err != nil {
			return err
		}
	}
	if err := b.dropFragNeeded("r2"); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "server"
	b.env.Checks = []Check{{
		Target: b.name("server"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:8080", mtuClient, mtuServer),
		// The server's routes, rules, sysctls and firewall are all fine:
		// the static check honestly finds nothing. The segments it sends
		// and sends again, unanswered, while small packets pass, are the
		// proof, and only --watch sees them.
		Expect: []string{},
		Live:   []string{"mtu_blackhole"},
	}, {
		// asym on r2, the router whose own ruleset eats the ICMP it must
		// send, holds the proof in its own state: the flow's reply
		// arrives on eth0 (mtu 1500) and its route leaves by eth1 (mtu
		// 1280, `route get 192.0.2.10 from 203.0.113.10 iif eth0`); Ip
		// FragFails in /proc/net/snmp climbs (each a forwarded DF packet
		// too big for eth1, for which ip_forward sends frag-needed), and
		// so does Icmp OutDestUnreachs (counted before the output hook);
		// and the output chain's `icmp type destination-unreachable icmp
		// code frag-needed counter drop` counts the same packets, so the
		// sender never learns the path MTU. The counters prove it
		// without packets; with --watch, full-sized segments in on eth0
		// that never leave by eth1 while small ones do.
		//
		// A check here rather than a scenario of its own: the same
		// incident seen from the other host, and no smaller topology
		// shows it (a 1280 link next to either end lowers that end's
		// MSS, and nothing too big is ever sent).
		Target: b.name("r2"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:8080", mtuClient, mtuServer),
		Expect: []string{"mtu_blackhole"},
	}}
	return nil
}

func healthy(b *builder) error {
	if err := vpc(b, false, strictRP, arpIgnore, arpAnnounce); err != nil {
		return err
	}
	if err := bothDefaults(b); err != nil {
		return err
	}
	if err := sourceTable(b, 100, "eth0", vpcEth0); err != nil {
		return err
	}
	if err := sourceTable(b, 200, "eth1", vpcEth1); err != nil {
		return err
	}
	if err := b.rule("host", vpcEth0, 100, 1000); err != nil {
		return err
	}
	if err := b.rule("host", vpcEth1, 200, 1001); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   "tcp 203.0.113.10:40000 198.51.100.11:8080",
		Expect: []string{},
	}}
	return nil
}

package lab

// stateless-router: asymmetric paths through a router that keeps
// no state. The flow works; asym must stay silent.

// statelessAsymmetricRouter routes each direction over its own link:
//
//	client 192.0.2.10 -- router eth0 192.0.2.1
//	router eth1 198.51.100.1/30 -- edge eth0 198.51.100.2/30   (the way in)
//	router eth2 198.51.100.5/30 -- edge eth1 198.51.100.6/30   (the way back)
//	edge eth2 203.0.113.1/24 -- server 203.0.113.10
//
// The router sends 203.0.113.0/24 to the edge by eth1; the edge sends
// 192.0.2.0/24 back by its other link, so the reply enters the router on
// eth2. Neither router has a ruleset (so no conntrack) and rp_filter is 0
// everywhere (baseSysctls; new interfaces take the default's 0): strict
// mode on the router would drop the reply on eth2, since its way back to
// 203.0.113.10 leaves by eth1.
func statelessAsymmetricRouter(b *builder) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"router", []kv{forwarding}}, {"edge", []kv{forwarding}}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"client", "eth0", "router", "eth0"},
		{"router", "eth1", "edge", "eth0"},
		{"router", "eth2", "edge", "eth1"},
		{"server", "eth0", "edge", "eth2"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", "192.0.2.10/24"},
		{"router", "eth0", "192.0.2.1/24"},
		{"router", "eth1", "198.51.100.1/30"},
		{"edge", "eth0", "198.51.100.2/30"},
		{"router", "eth2", "198.51.100.5/30"},
		{"edge", "eth1", "198.51.100.6/30"},
		{"edge", "eth2", "203.0.113.1/24"},
		{"server", "eth0", "203.0.113.10/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"client": {{via: "192.0.2.1", dev: "eth0"}},
		"router": {{dst: "203.0.113.0/24", via: "198.51.100.2", dev: "eth1"}},
		"edge":   {{dst: "192.0.2.0/24", via: "198.51.100.5", dev: "eth1"}},
		"server": {{via: "203.0.113.1", dev: "eth0"}},
	}
	for _, role := range []string{"client", "router", "edge", "server"} {
		if err := b.route(role, routes[role]...); err != nil {
			return err
		}
	}
	b.env.client, b.env.server = "client", "server"
	b.env.Checks = []Check{{
		Target: b.name("router"),
		Flow:   "tcp 192.0.2.10:40000 203.0.113.10:8080",
		// A router in the middle whose paths differ by direction: the
		// request in on eth0 and out on eth1, the reply (whose input
		// lookup with iif eth2 passes: rp_filter 0 on all, default and
		// every interface) in on eth2 and out on eth0. No nftables or
		// iptables ruleset, so conntrack tracks nothing (no entry, count 0,
		// invalid 0); no rule but the defaults; a single next hop each way.
		// Nothing here depends on seeing both directions: no finding.
		// Live: SYN in eth0 out eth1, SYN-ACK in eth2 out eth0, the
		// exchange completes.
		Expect: []string{},
	}}
	return nil
}

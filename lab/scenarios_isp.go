package lab

// host-ecmp-two-isps: a server with two ISP links and one multipath default
// route over them, without source rules.

import (
	"fmt"
	"net/netip"
)

// Addresses of host-ecmp-two-isps (the two-isps topology).
const (
	ispHostA  = "192.0.2.2"    // host eth0, assigned by ISP A
	ispHostB  = "198.51.100.2" // host eth1, assigned by ISP B
	ispGWA    = "192.0.2.1"    // ISP A's router
	ispGWB    = "198.51.100.1" // ISP B's router
	ispClient = "203.0.113.10" // somewhere on the internet
	ispPort   = 8080
	// ispSeed pins the host's multipath hash so one source port takes the
	// same ISP on every run (the port is still chosen by asking the kernel).
	ispSeed = "2654435769"
)

// hostECMPTwoISPs is a server that spreads its traffic over two ISPs:
//
//	host eth0 192.0.2.2/24    -- isp-a 192.0.2.1    | 203.0.113.1/30 -- inet 203.0.113.2
//	host eth1 198.51.100.2/24 -- isp-b 198.51.100.1 | 203.0.113.5/30 -- inet 203.0.113.6
//	inet 203.0.113.9/29 -- client 203.0.113.10/29
//	host: nexthop 1 via 192.0.2.1 dev eth0, nexthop 2 via 198.51.100.1 dev eth1,
//	      nexthop 10 group 1/2, default nhid 10; no rules
//
// Both ISPs filter foreign sources (BCP38). The host hashes addresses and
// ports (fib_multipath_hash_policy 1): a reply from ISP A's address whose
// ports hash to nexthop 2 leaves by ISP B and is dropped there, another
// client port hashes to ISP A and works. The client port of the flow is
// chosen by asking the host's kernel where the reply goes.
func hostECMPTwoISPs(b *builder) error {
	hostSysctls := []kv{
		{"net/ipv4/fib_multipath_hash_policy", "1"},
		{"net/ipv4/fib_multipath_hash_seed", ispSeed},
	}
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
		{"host", "eth0", ispHostA + "/24"},
		{"host", "eth1", ispHostB + "/24"},
		{"isp-a", "eth0", ispGWA + "/24"},
		{"isp-a", "eth1", "203.0.113.1/30"},
		{"isp-b", "eth0", ispGWB + "/24"},
		{"isp-b", "eth1", "203.0.113.5/30"},
		{"inet", "eth0", "203.0.113.2/30"},
		{"inet", "eth1", "203.0.113.6/30"},
		{"inet", "eth2", "203.0.113.9/29"},
		{"client", "eth0", ispClient + "/29"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	routes := map[string][]route{
		"isp-a":  {{via: "203.0.113.2", dev: "eth1"}},
		"isp-b":  {{via: "203.0.113.6", dev: "eth1"}},
		"inet":   {{dst: "192.0.2.0/24", via: "203.0.113.1", dev: "eth0"}, {dst: "198.51.100.0/24", via: "203.0.113.5", dev: "eth1"}},
		"client": {{via: "203.0.113.9", dev: "eth0"}},
	}
	for _, role := range []string{"isp-a", "isp-b", "inet", "client"} {
		if err := b.route(role, routes[role]...); err != nil {
			return err
		}
	}
	if err := b.ecmpRoute("host", "", 10, nexthop{1, ispGWA, "eth0"}, nexthop{2, ispGWB, "eth1"}); err != nil {
		return err
	}
	if err := b.ingressFilter("isp-a", "eth0", "192.0.2.0/24"); err != nil {
		return err
	}
	if err := b.ingressFilter("isp-b", "eth0", "198.51.100.0/24"); err != nil {
		return err
	}
	port, err := ispHashedPort(b, 40000, "eth1")
	if err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   fmt.Sprintf("tcp %s:%d %s:%d", ispClient, port, ispHostA, ispPort),
		// The request arrives on eth0, the interface that holds
		// 192.0.2.2. The reply lookup with the flow's ports, `ip route get
		// 203.0.113.10 from 192.0.2.2 ipproto tcp sport 8080 dport PORT`,
		// answers via 198.51.100.1 dev eth1; fibmatch shows main's default
		// with two next hops (nhid 10: via 192.0.2.1 dev eth0, via
		// 198.51.100.1 dev eth1) and fib_multipath_hash_policy is 1, so
		// the ports choose; another client port answers eth0. No rule
		// selects on 192.0.2.2 (only the three defaults exist). Live: the
		// SYN in on eth0, the SYN-ACK out on eth1.
		Expect: []string{"ecmp_multipath", "missing_source_rule", "reply_wrong_egress"},
	}}
	return nil
}

// ispHashedPort asks the host's kernel where the reply of each client port
// from `from` on leaves, and returns the first whose reply leaves by want.
// About one port in two fits.
func ispHashedPort(b *builder, from uint16, want string) (uint16, error) {
	host, client := netip.MustParseAddr(ispHostA), netip.MustParseAddr(ispClient)
	for p := from; p < from+1000; p++ {
		dev, err := b.egressIf("host", host, client, ispPort, p)
		if err != nil {
			return 0, err
		}
		if dev == want {
			return p, nil
		}
	}
	return 0, fmt.Errorf("no client port in %d-%d hashes the reply out of %s: is fib_multipath_hash_policy 1 honoured in %s?", from, from+999, want, b.name("host"))
}

package lab

// two-isps-shared-lan: the two-ISP server whose first ISP link is a LAN
// with two routers on it, so that nothing the host holds names which one is
// the gateway.

import (
	"fmt"
	"net"
	"time"
)

// The other router on ISP A's LAN (an office VPN box).
const lanVPN = "192.0.2.3"

// twoISPsSharedLAN is twoISPs with ISP A behind a switch:
//
//	lan br0: host eth0 192.0.2.2/24, isp-a 192.0.2.1, vpn 192.0.2.3
//	host eth1 198.51.100.2/24 -- isp-b 198.51.100.1 (the only default)
//	isp-a/isp-b -- inet -- client 203.0.113.10
//
// No route goes by eth0, and the host has talked to both routers on it, so
// its neighbour table holds two candidates: only the frames of the flow
// (their source MAC is ISP A's router) say which is the gateway. The fix
// learns it with `asym fix --watch` while the flow is retried.
func twoISPsSharedLAN(b *builder) error {
	for _, ns := range []struct {
		role string
		fwd  bool
	}{{"host", false}, {"lan", false}, {"isp-a", true}, {"vpn", false}, {"isp-b", true}, {"inet", true}, {"client", false}} {
		var extra []kv
		if ns.fwd {
			extra = append(extra, forwarding)
		}
		if err := b.ns(ns.role, extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"host", "eth0", "lan", "host"},
		{"isp-a", "eth0", "lan", "isp-a"},
		{"vpn", "eth0", "lan", "vpn"},
		{"host", "eth1", "isp-b", "eth0"},
		{"isp-a", "eth1", "inet", "eth0"},
		{"isp-b", "eth1", "inet", "eth1"},
		{"client", "eth0", "inet", "eth2"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	if err := b.bridge("lan", "br0", "host", "isp-a", "vpn"); err != nil {
		return err
	}
	for _, a := range [][3]string{
		{"host", "eth0", ispHostA + "/24"},
		{"host", "eth1", ispHostB + "/24"},
		{"isp-a", "eth0", ispGWA + "/24"},
		{"isp-a", "eth1", "203.0.113.1/30"},
		{"vpn", "eth0", lanVPN + "/24"},
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
		"host":   {{via: ispGWB, dev: "eth1"}},
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
	// Both routers talk to the host, as they would on a real LAN: each
	// ARPs for it, and the host's kernel keeps an entry for each.
	for _, role := range []string{"vpn", "isp-a"} {
		if err := b.env.do(role, func() error { return greet(ispHostA) }); err != nil {
			return fmt.Errorf("%s greets the host: %w", b.name(role), err)
		}
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:%d", ispClient, ispHostA, ispPort),
		// As two-isps: no rule selects on 192.0.2.2, its reply leaves by
		// main's default on eth1. The gateway of eth0 is unknown until the
		// flow's frames arrive from ISP A's router's MAC.
		Expect: []string{"missing_source_rule", "reply_wrong_egress"},
	}}
	return nil
}

// greet sends one UDP datagram to a closed port of addr: the ARP exchange
// before it leaves is what fills the neighbour tables on both sides.
func greet(addr string) error {
	c, err := net.DialTimeout("udp", net.JoinHostPort(addr, "9"), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte("asym lab"))
	return err
}

package lab

// discard-route: the way back does not exist. A blackhole route left on
// the server by an old DDoS block swallows its replies to one customer
// range; every other client is answered. Not an asymmetry, but a path
// problem a check must name instead of calling the host clean.

import (
	"fmt"
	"net"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Addresses of discard-route.
const (
	discardClient  = "203.0.113.10"
	discardBlocked = "203.0.113.0/24" // the range the old block discards
	discardServer  = "198.51.100.11"
)

// discardRoute is a client behind a router, and a server whose main table
// still holds the block:
//
//	client 203.0.113.10 -- gw 203.0.113.1 | 198.51.100.1 -- server 198.51.100.11
//	server: default via 198.51.100.1 dev eth0; blackhole 203.0.113.0/24 proto static
//
// rp_filter is 0 on the server (baseSysctls): the SYN reaches the socket,
// and the SYN-ACK's route lookup ends at the blackhole, so nothing leaves
// (with rp_filter on, even loose, the check would refuse the SYN first: a
// blackhole is no way back).
func discardRoute(b *builder) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"gw", []kv{forwarding}}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{{"client", "eth0", "gw", "eth0"}, {"gw", "eth1", "server", "eth0"}} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", discardClient + "/24"},
		{"gw", "eth0", "203.0.113.1/24"},
		{"gw", "eth1", "198.51.100.1/24"},
		{"server", "eth0", discardServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	if err := b.route("client", route{via: "203.0.113.1", dev: "eth0"}); err != nil {
		return err
	}
	if err := b.route("server", route{via: "198.51.100.1", dev: "eth0"}); err != nil {
		return err
	}
	h, err := b.nl("server")
	if err != nil {
		return err
	}
	_, block, _ := net.ParseCIDR(discardBlocked)
	if err := h.RouteAdd(&netlink.Route{Dst: block, Type: unix.RTN_BLACKHOLE, Protocol: unix.RTPROT_STATIC}); err != nil {
		return fmt.Errorf("add the blackhole route %s in namespace %s: %w", discardBlocked, b.name("server"), err)
	}
	b.env.client, b.env.server = "client", "server"
	b.env.Checks = []Check{{
		Target: b.name("server"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:8080", discardClient, discardServer),
		// The server's kernel answers the reply's lookup (route get
		// 203.0.113.10 from 198.51.100.11) with EINVAL, an output
		// lookup's answer to a blackhole, and the dump of blackhole routes
		// names 203.0.113.0/24 in main. The request's lookup is fine (local,
		// rp_filter 0). Live: SYNs arrive on eth0 and are sent again,
		// nothing leaves.
		Expect: []string{"route_refused"},
		Live:   []string{"route_refused", "syn_unanswered"},
	}}
	return nil
}

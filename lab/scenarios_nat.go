package lab

// nat-gateway-pair: two translating gateways configured alike, and a server
// whose replies go to the one that did not translate the request.

import (
	"fmt"
	"net/netip"
)

// Addresses of the NAT gateway pair. The outside segment holds the client,
// both gateways and the VIP that gw-a holds as the active member (as
// keepalived would add it); 198.18.0.0/24 (the benchmark range) plays the
// private LAN behind them.
const (
	natClient = "203.0.113.10"
	natVIP    = "203.0.113.80"
	natGWAOut = "203.0.113.2"
	natGWBOut = "203.0.113.3"
	natGWAIn  = "198.18.0.2"
	natGWBIn  = "198.18.0.3"
	natServer = "198.18.0.10"
	natPort   = 80
)

// natGatewayPair is the HA pair whose members do not share state:
//
//	client 203.0.113.10 --wan-- gw-a 203.0.113.2 (VIP .80) | 198.18.0.2 --lan-- server 198.18.0.10
//	                        \-- gw-b 203.0.113.3           | 198.18.0.3 --/
//
// wan and lan are two bridges in the namespace "switch". Both gateways
// forward, DNAT 203.0.113.80:80 to 198.18.0.10:80 and drop `ct state
// invalid` in forward, as a pair configured alike does. The client reaches
// the VIP on gw-a (it holds the address, so it answers ARP for it); the
// server's default route points at gw-b. The server's SYN-ACK, from its
// private address, reaches gw-b, which never saw the SYN: conntrack finds no
// connection for a SYN-ACK (sNO to sIV, notes §7 K7), and the rule drops it.
func natGatewayPair(b *builder) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"switch", nil}, {"gw-a", []kv{forwarding}}, {"gw-b", []kv{forwarding}}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"client", "eth0", "switch", "client"},
		{"gw-a", "eth0", "switch", "gwa-out"},
		{"gw-b", "eth0", "switch", "gwb-out"},
		{"gw-a", "eth1", "switch", "gwa-in"},
		{"gw-b", "eth1", "switch", "gwb-in"},
		{"server", "eth0", "switch", "server"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	if err := b.bridge("switch", "wan", "client", "gwa-out", "gwb-out"); err != nil {
		return err
	}
	if err := b.bridge("switch", "lan", "gwa-in", "gwb-in", "server"); err != nil {
		return err
	}
	for _, a := range [][3]string{
		{"client", "eth0", natClient + "/24"},
		{"gw-a", "eth0", natGWAOut + "/24"},
		{"gw-a", "eth0", natVIP + "/32"},
		{"gw-b", "eth0", natGWBOut + "/24"},
		{"gw-a", "eth1", natGWAIn + "/24"},
		{"gw-b", "eth1", natGWBIn + "/24"},
		{"server", "eth0", natServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	// The mistake: the server's default route names the standby gateway.
	if err := b.route("server", route{via: natGWBIn, dev: "eth0"}); err != nil {
		return err
	}
	vip := netip.AddrPortFrom(netip.MustParseAddr(natVIP), natPort)
	target := netip.AddrPortFrom(netip.MustParseAddr(natServer), natPort)
	for _, gw := range []string{"gw-a", "gw-b"} {
		if err := b.dnat(gw, vip, target); err != nil {
			return err
		}
		if err := b.invalidDrop(gw); err != nil {
			return err
		}
	}
	b.env.client, b.env.server = "client", "server"
	b.env.listenOn = target
	f := fmt.Sprintf("tcp %s:40000 %s", natClient, vip)
	b.env.Checks = []Check{
		// gw-b drops the replies. Its forward chain's `ct state invalid
		// counter drop` and conntrack's invalid statistic climb with every
		// SYN-ACK from 198.18.0.10:80 to 203.0.113.10:40000 (arriving on
		// eth1); it holds no conntrack entry for the flow in either
		// direction; and it carries a DNAT rule that maps the flow's
		// destination 203.0.113.80:80 to 198.18.0.10:80, whose counter is
		// 0: the packets it drops are the replies of a translation made by
		// another gateway. Neither address of the typed flow is local here
		// (a router in the middle). Live: the invalid counters rise while
		// the flow is tried and no conntrack event appears; the SYN-ACKs
		// carry the translated source, so a capture must match the DNAT
		// target's reply tuple to show them.
		{Target: b.name("gw-b"), Flow: f, Expect: []string{"ct_invalid_drop", "nat_state_miss"}},
		// gw-a translated the request. Its conntrack entry is the flow
		// (orig 203.0.113.10:40000 -> 203.0.113.80:80) with the reply tuple
		// 198.18.0.10:80 -> 203.0.113.10:40000, DST_NAT, SYN_SENT and
		// [UNREPLIED]; its DNAT rule counted the connection; its invalid
		// drop counted nothing. The VIP is a local address here, yet the
		// flow is forwarded out of eth1: the destination is translated
		// away, so this host is in the middle, not the server. Live: the
		// SYN arrives on eth0 again and again and leaves on eth1 to
		// 198.18.0.10 (translated), and no SYN-ACK comes back, which also
		// makes syn_unanswered.
		{Target: b.name("gw-a"), Flow: f, Expect: []string{"nat_state_miss"}, Live: []string{"nat_state_miss", "syn_unanswered"}},
		// gw-a again, the flow as a person usually knows it: without the
		// client's port. Its entry comes from a dump the kernel filters by
		// the rest of the tuple; the findings are the same.
		{Target: b.name("gw-a"), Flow: fmt.Sprintf("tcp %s %s", natClient, vip), Expect: []string{"nat_state_miss"}, Live: []string{"nat_state_miss", "syn_unanswered"}},
	}
	return nil
}

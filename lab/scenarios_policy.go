package lab

// Policy routing that picks the wrong way on its own: route-src-hint (a
// route's preferred source names another interface's address) and
// port-selective-rule (a forgotten rule on a port outranks correct source
// routing).

import "fmt"

// Addresses of route-src-hint: a client with a production NIC towards the
// gateway and a management NIC on a network of its own.
const (
	hintProd   = "192.0.2.10"    // eth0, towards the gateway
	hintMgmt   = "198.51.100.10" // eth1, the management network
	hintGW     = "192.0.2.1"
	hintServer = "203.0.113.10"
)

// routeSrcHint is a client whose default route keeps the src hint of the
// management NIC it used to leave by:
//
//	client eth0 192.0.2.10/24   -- gw 192.0.2.1 | 203.0.113.1/24 -- server 203.0.113.10
//	client eth1 198.51.100.10/24 -- mgmt 198.51.100.1
//	client: default via 192.0.2.1 dev eth0 src 198.51.100.10
//
// The client's socket binds only the flow's source port (anySource), as an
// application that never binds does: connect() takes the route's preferred
// source, 198.51.100.10, out of eth0, and the gateway's ingress filter
// (BCP38) drops the foreign source. The user types the flow with the
// address they expect, eth0's.
func routeSrcHint(b *builder) error {
	for _, ns := range []struct {
		role  string
		extra []kv
	}{{"client", nil}, {"mgmt", nil}, {"gw", []kv{forwarding}}, {"server", nil}} {
		if err := b.ns(ns.role, ns.extra...); err != nil {
			return err
		}
	}
	for _, l := range [][4]string{
		{"client", "eth0", "gw", "eth0"},
		{"client", "eth1", "mgmt", "eth0"},
		{"gw", "eth1", "server", "eth0"},
	} {
		if err := b.veth(l[0], l[1], l[2], l[3]); err != nil {
			return err
		}
	}
	for _, a := range [][3]string{
		{"client", "eth0", hintProd + "/24"},
		{"client", "eth1", hintMgmt + "/24"},
		{"mgmt", "eth0", "198.51.100.1/24"},
		{"gw", "eth0", hintGW + "/24"},
		{"gw", "eth1", "203.0.113.1/24"},
		{"server", "eth0", hintServer + "/24"},
	} {
		if err := b.addr(a[0], a[1], a[2]); err != nil {
			return err
		}
	}
	if err := b.route("client", route{via: hintGW, dev: "eth0", src: hintMgmt}); err != nil {
		return err
	}
	if err := b.route("server", route{via: "203.0.113.1", dev: "eth0"}); err != nil {
		return err
	}
	if err := b.ingressFilter("gw", "eth0", "192.0.2.0/24"); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "server"
	b.env.anySource = true
	b.env.Checks = []Check{{
		Target: b.name("client"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:8080", hintProd, hintServer),
		// The client's kernel says it: the lookup connect() makes, `ip
		// route get 203.0.113.10` without a source (or with the flow's
		// ports), answers `via 192.0.2.1 dev eth0 src 198.51.100.10`: the
		// preferred source is eth1's address while the route leaves by
		// eth0, whose own address is the flow's 192.0.2.10. The route that
		// matched (fibmatch) is main's default, which carries `src
		// 198.51.100.10`; no rule selects on either address. The lookup
		// with `from 192.0.2.10` is fine, so only unbound sockets fail.
		// Live: SYNs from 198.51.100.10:40000 to 203.0.113.10:8080 leave
		// eth0 and are retransmitted, unanswered (syn_unanswered); none
		// carries the typed source, so a capture keyed on 192.0.2.10 sees
		// nothing and one on the destination and ports shows the wrong
		// source.
		Expect: []string{"wrong_source_address"},
		Live:   []string{"syn_unanswered", "wrong_source_address"},
	}}
	return nil
}

// portSelectiveRule is the healthy two-NIC host (a source rule and a full
// table per NIC, ARP flux tamed) with a rule left from a proxy experiment:
//
//	500:  ipproto tcp sport 8080 lookup 300     table 300: default via 198.51.100.1 dev eth0
//	1000: from 198.51.100.10 lookup 100         table 100: by eth0
//	1001: from 198.51.100.11 lookup 200         table 200: by eth1
//
// Replies from port 8080 consult table 300 first and leave by eth0 whatever
// their source, so the service on eth1's address answers out of eth0 and
// the fabric's source check drops the reply; every other port of .11 keeps
// to eth1. rp_filter is loose: strict mode would see the port rule in the
// reverse-path lookup too (fib_validate_source dissects the ports when a
// rule needs them) and drop the request instead, another scenario's story.
func portSelectiveRule(b *builder) error {
	if err := vpc(b, false, looseRP, arpIgnore, arpAnnounce); err != nil {
		return err
	}
	if err := b.sourceCheck("fabric", map[string]string{"host0": vpcEth0, "host1": vpcEth1}); err != nil {
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
	if err := b.route("host", route{via: vpcGW, dev: "eth0", table: portRuleTable}); err != nil {
		return err
	}
	if err := b.portRule("host", portRulePort, portRuleTable, portRulePrio); err != nil {
		return err
	}
	b.env.client, b.env.server = "client", "host"
	b.env.Checks = []Check{{
		Target: b.name("host"),
		Flow:   fmt.Sprintf("tcp %s:40000 %s:%d", vpcClient, vpcEth1, portRulePort),
		// The request arrives on eth1 (the input lookup with iif eth1
		// passes: loose rp_filter). The reply lookup with the flow's ports,
		// `ip route get 203.0.113.10 from 198.51.100.11 ipproto tcp sport
		// 8080 dport 40000`, answers table 300 via 198.51.100.1 dev eth0;
		// the same lookup with another source port (or none) answers
		// table 200 by eth1. The rules show why: priority 500 `ipproto tcp
		// sport 8080 lookup 300` comes before 1001 `from 198.51.100.11
		// lookup 200`, and table 300 sends by eth0. The source rule exists,
		// so this is not missing_source_rule; rule_port_selective says more
		// than rule_shadowed would about rule 1001 (only this service
		// fails; delete rule 500 or outrank it for 198.51.100.11).
		// Live: the SYN in on eth1, the SYN-ACK out on eth0.
		Expect: []string{"reply_wrong_egress", "rule_port_selective"},
	}}
	return nil
}

// The forgotten rule of port-selective-rule.
const (
	portRulePort  = 8080
	portRuleTable = 300
	portRulePrio  = 500
)

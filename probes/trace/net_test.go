package trace

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"asym/lab/namespace"
	"asym/probes"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// testNet is a network of Linux routers in throwaway namespaces, built for
// the trace tests: routers that answer time-exceeded (as Linux does by
// default) with the ICMP rate limits lifted, so that a test that sends a few
// dozen probes to one router never loses an answer to the token bucket
// (icmp_ratelimit allows one error a second per destination after a burst
// of six).
type testNet struct {
	t  *testing.T
	ns map[string]probetest.NS
}

// hashSeeds pin each router's multipath hash, so that a source port takes
// the same next hop on every run (the tests still ask the kernel which).
// They differ: with policy 1 the kernel hashes a flow's two directions
// alike (__flow_hash_consistentify sorts the addresses and ports), so two
// routers with one seed and their next hops in the same order would send
// the reply back the request's way, which real routers with their own seeds
// do not.
var hashSeeds = []string{"2654435769", "40503", "2246822519", "3266489917"}

func newTestNet(t *testing.T, routers []string, hosts ...string) *testNet {
	t.Helper()
	n := &testNet{t: t, ns: map[string]probetest.NS{}}
	for _, name := range append(append([]string(nil), routers...), hosts...) {
		ns := probetest.NewNS(t)
		probetest.Quiet(t, ns)
		for _, s := range [][2]string{
			{"net/ipv4/icmp_ratelimit", "0"},
			{"net/ipv4/icmp_msgs_per_sec", "100000"},
			{"net/ipv4/icmp_msgs_burst", "100000"},
		} {
			probetest.Sysctl(t, ns.Handle, s[0], s[1])
		}
		n.ns[name] = ns
	}
	for i, r := range routers {
		for _, s := range [][2]string{
			{"net/ipv4/ip_forward", "1"},
			// Addresses, protocol and ports: each source port of one flow
			// may take another next hop.
			{"net/ipv4/fib_multipath_hash_policy", "1"},
			{"net/ipv4/fib_multipath_hash_seed", hashSeeds[i%len(hashSeeds)]},
		} {
			probetest.Sysctl(t, n.ns[r].Handle, s[0], s[1])
		}
	}
	return n
}

// link joins a's aIf (address aAddr) and b's bIf (bAddr) with a veth pair.
func (n *testNet) link(a, aIf, aAddr, b, bIf, bAddr string) {
	n.t.Helper()
	probetest.Veth(n.t, n.ns[a], probetest.Link{Name: aIf, Addrs: []string{aAddr}}, n.ns[b], probetest.Link{Name: bIf, Addrs: []string{bAddr}})
}

// route adds `dst via gw` in role ("default" for 0.0.0.0/0).
func (n *testNet) route(role, dst, via string) {
	n.t.Helper()
	h := probetest.Netlink(n.t, n.ns[role].Handle)
	if dst == "default" {
		dst = "0.0.0.0/0"
	}
	p := netip.MustParsePrefix(dst)
	r := &netlink.Route{Dst: ipNet(p), Gw: netip.MustParseAddr(via).AsSlice()}
	if err := h.RouteAdd(r); err != nil {
		n.t.Fatalf("%s: route %s via %s: %v", role, dst, via, err)
	}
}

// ecmp adds `dst nhid group` over nexthop objects via each gateway.
func (n *testNet) ecmp(role, dst string, group uint32, hops ...namespace.Nexthop) {
	n.t.Helper()
	if err := namespace.ECMPRoute(n.ns[role], netip.MustParsePrefix(dst), group, hops...); err != nil {
		n.t.Fatal(err)
	}
}

// stateful makes role a firewall that drops what conntrack cannot place:
// `ct state invalid drop` in its forward chain.
func (n *testNet) stateful(role string) {
	n.t.Helper()
	probetest.FilterRule(n.t, n.ns[role], "forward", nftables.ChainHookForward, probetest.CtInvalidDrop()...)
}

// target opens role's namespace as asym does (--netns).
func (n *testNet) target(role string) *probes.Target {
	n.t.Helper()
	tg, err := probes.OpenTarget(n.ns[role].Name, 0)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(tg.Close)
	return tg
}

func nh(id uint32, via, dev string) namespace.Nexthop {
	return namespace.Nexthop{ID: id, Via: netip.MustParseAddr(via), Dev: dev}
}

// Addresses of the pair network: a client and a server with two paths
// between r1 and r2, through a and b.
const (
	pairClient = "192.0.2.10"
	pairServer = "203.0.113.10"
	pairPort   = 8080
	// The routers' addresses, by the link they face.
	r1Client, r1A, r1B = "192.0.2.1", "198.51.100.1", "198.51.100.5"
	aR1, aR2           = "198.51.100.2", "198.51.100.9"
	bR1, bR2           = "198.51.100.6", "198.51.100.13"
	r2A, r2B, r2Server = "198.51.100.10", "198.51.100.14", "203.0.113.1"
)

// pairNet builds
//
//	client 192.0.2.10 -- r1 ==(a | b)== r2 -- server 203.0.113.10
//
// r1 reaches the server's subnet and r2 the client's through a nexthop
// group over a and b, hashing addresses, protocol and ports
// (fib_multipath_hash_policy 1). With stateful, a and b are a firewall pair
// without state sync.
func pairNet(t *testing.T, stateful bool) *testNet {
	t.Helper()
	n := newTestNet(t, []string{"r1", "a", "b", "r2"}, "client", "server")
	n.link("client", "eth0", pairClient+"/24", "r1", "eth0", r1Client+"/24")
	n.link("r1", "eth1", r1A+"/30", "a", "eth0", aR1+"/30")
	n.link("r1", "eth2", r1B+"/30", "b", "eth0", bR1+"/30")
	n.link("a", "eth1", aR2+"/30", "r2", "eth1", r2A+"/30")
	n.link("b", "eth1", bR2+"/30", "r2", "eth2", r2B+"/30")
	n.link("r2", "eth0", r2Server+"/24", "server", "eth0", pairServer+"/24")
	n.route("client", "default", r1Client)
	n.route("server", "default", r2Server)
	for _, fw := range []struct{ role, toR1, toR2 string }{{"a", r1A, r2A}, {"b", r1B, r2B}} {
		n.route(fw.role, "192.0.2.0/24", fw.toR1)
		n.route(fw.role, "203.0.113.0/24", fw.toR2)
	}
	n.ecmp("r1", "203.0.113.0/24", 10, nh(1, aR1, "eth1"), nh(2, bR1, "eth2"))
	n.ecmp("r2", "192.0.2.0/24", 10, nh(1, aR2, "eth1"), nh(2, bR2, "eth2"))
	if stateful {
		n.stateful("a")
		n.stateful("b")
	}
	return n
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// dnat installs `table ip nat { chain prerouting { type nat hook
// prerouting priority dstnat; ip daddr VIP tcp dport PORT dnat to TO } }`.
func (n *testNet) dnat(role string, vip, to netip.AddrPort) {
	n.t.Helper()
	c := probetest.Nft(n.t, n.ns[role])
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "nat"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: tb, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	vip4, to4 := vip.Addr().As4(), to.Addr().As4()
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip4[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, vip.Port())},
		&expr.Immediate{Register: 1, Data: to4[:]},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		n.t.Fatalf("%s: dnat %s to %s: %v", role, vip, to, err)
	}
}

// silent makes role drop everything that arrives from src before routing
// (a prerouting filter chain): it neither forwards nor answers for the TTL.
func (n *testNet) silent(role, src string) {
	n.t.Helper()
	a := netip.MustParseAddr(src).As4()
	c := probetest.Nft(n.t, n.ns[role])
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "silent"})
	ch := probetest.BaseChain(c, tb, "prerouting", nftables.ChainHookPrerouting, 0)
	c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: a[:]},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		n.t.Fatalf("%s: drop everything from %s: %v", role, src, err)
	}
}

// rewrite installs a stateless translation on role: `ip daddr VIP ip daddr
// set TO` on the way in (prerouting) and `ip saddr TO ip saddr set VIP`
// on the way out (postrouting), checksums fixed, no conntrack: unlike
// Linux's NAT it never translates an ICMP error back.
func (n *testNet) rewrite(role string, vip, to netip.Addr) {
	n.t.Helper()
	c := probetest.Nft(n.t, n.ns[role])
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "rewrite"})
	for _, r := range []struct {
		hook          *nftables.ChainHook
		offset        uint32
		match, become netip.Addr
	}{{nftables.ChainHookPrerouting, 16, vip, to}, {nftables.ChainHookPostrouting, 12, to, vip}} {
		ch := probetest.BaseChain(c, tb, "rewrite"+fmt.Sprint(r.offset), r.hook, -300)
		m, b := r.match.As4(), r.become.As4()
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: r.offset, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: m[:]},
			&expr.Immediate{Register: 1, Data: b[:]},
			&expr.Payload{OperationType: expr.PayloadWrite, SourceRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: r.offset, Len: 4,
				CsumType: expr.CsumTypeInet, CsumOffset: 10, CsumFlags: unix.NFT_PAYLOAD_L4CSUM_PSEUDOHDR},
		}})
	}
	if err := c.Flush(); err != nil {
		n.t.Fatalf("%s: rewrite %s to %s: %v", role, vip, to, err)
	}
}

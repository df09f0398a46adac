package lab

// Building blocks: namespaces, links, addresses, routes, rules, neighbours,
// bridges, sysctls and nftables rulesets. Every block takes a role ("host",
// "gw" ...) and works inside that role's namespace through a netlink or
// nftables socket opened there, or on a locked thread that entered it; the
// caller's thread and the host's own namespace are never touched.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"

	"asym/lab/namespace"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// kv is one sysctl: a path below /proc/sys and its value.
type kv struct{ path, value string }

// baseSysctls make a fresh namespace deterministic before anything else is
// set (notes §8): no reverse-path filtering, no ICMP redirects either way
// (a redirect would quietly "fix" a hairpin the scenario depends on), IPv6
// off so no DAD, router advertisement or MLD noise appears, and short TCP
// handshake retries so half-open leftovers of a failing try do not linger
// into the next one.
var baseSysctls = []kv{
	{"net/ipv4/conf/all/rp_filter", "0"},
	{"net/ipv4/conf/default/rp_filter", "0"},
	{"net/ipv4/conf/all/accept_redirects", "0"},
	{"net/ipv4/conf/default/accept_redirects", "0"},
	{"net/ipv4/conf/all/send_redirects", "0"},
	{"net/ipv4/conf/default/send_redirects", "0"},
	{"net/ipv6/conf/all/disable_ipv6", "1"},
	{"net/ipv6/conf/default/disable_ipv6", "1"},
	{"net/ipv6/conf/all/accept_dad", "0"},
	{"net/ipv6/conf/default/accept_dad", "0"},
	{"net/ipv6/conf/all/accept_ra", "0"},
	{"net/ipv6/conf/default/accept_ra", "0"},
	{"net/ipv4/tcp_syn_retries", "2"},
	{"net/ipv4/tcp_synack_retries", "0"},
}

// forwarding turns a namespace into a router. It must be written before
// baseSysctls: writing ip_forward resets all/accept_redirects
// (inet_forward_change in net/ipv4/devinet.c).
var forwarding = kv{"net/ipv4/ip_forward", "1"}

// builder carries the environment being built and reports errors as
// sentences naming the namespace.
type builder struct {
	env *Env
	ctx context.Context // Up's context: building stops when it ends
}

// name is the full namespace name of a role.
func (b *builder) name(role string) string { return b.env.Prefix + role }

// ns creates the namespace of a role, writes the deterministic sysctls, the
// extra ones, and brings up lo. Extra sysctls are written after the base
// ones, except ip_forward, which goes first (see forwarding).
func (b *builder) ns(role string, extra ...kv) error {
	name := b.name(role)
	if err := b.ctx.Err(); err != nil {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	if len(name) >= 32 {
		return fmt.Errorf("namespace name %q is too long (keep prefix+role under 32 characters)", name)
	}
	var first, rest []kv
	for _, s := range extra {
		if s == forwarding {
			first = append(first, s)
		} else {
			rest = append(rest, s)
		}
	}
	var sysctls []namespace.Sysctl
	for _, s := range slices.Concat(first, baseSysctls, rest) {
		sysctls = append(sysctls, s.sysctl())
	}
	ns, err := namespace.Create(name, sysctls...)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("namespace %s already exists (a leftover of an earlier run? lab.Cleanup(%q) removes it)", name, b.env.Prefix)
	}
	if err != nil {
		return err
	}
	b.env.handles[role] = ns.Handle
	b.env.Namespaces = append(b.env.Namespaces, name)
	return nil
}

// nl returns the netlink handle of a role, opened inside its namespace.
func (b *builder) nl(role string) (*netlink.Handle, error) {
	return b.env.netlink(role)
}

// sysctl is s as the namespace package writes it. A missing IPv6 tree
// (kernel booted with ipv6.disable=1) and a kernel without
// fib_multipath_hash_seed (before 6.11) are no error: the first means no
// IPv6 noise anyway, the second only makes the ECMP hash differ from run to
// run, and the port is chosen by asking the kernel.
func (s kv) sysctl() namespace.Sysctl {
	return namespace.Sysctl{Path: s.path, Value: s.value,
		Optional: strings.HasPrefix(s.path, "net/ipv6/") || s.path == "net/ipv4/fib_multipath_hash_seed"}
}

// writeSysctls writes sysctls through /proc/sys, which follows the calling
// thread's namespace (notes §6); the caller is a locked thread inside it
// (Env.do).
func writeSysctls(ns string, sysctls []kv) error {
	for _, s := range sysctls {
		if err := s.sysctl().Write(); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
	}
	return nil
}

// veth joins two namespaces with a veth pair named aName in aRole and bName
// in bRole, both brought up. The peer is created directly in its namespace,
// so neither end ever exists in the host's namespace.
func (b *builder) veth(aRole, aName, bRole, bName string) error {
	a, err := b.env.named(aRole)
	if err != nil {
		return err
	}
	nsb, err := b.env.named(bRole)
	if err != nil {
		return err
	}
	if err := namespace.Veth(a, aName, nsb, bName); err != nil {
		return err
	}
	if err := b.up(aRole, aName); err != nil {
		return err
	}
	return b.up(bRole, bName)
}

// link finds an interface by name in a role's namespace.
func (b *builder) link(role, ifname string) (netlink.Link, error) {
	h, err := b.nl(role)
	if err != nil {
		return nil, err
	}
	l, err := h.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("find interface %s in namespace %s: %w", ifname, b.name(role), err)
	}
	return l, nil
}

// up sets an interface up.
func (b *builder) up(role, ifname string) error {
	l, err := b.link(role, ifname)
	if err != nil {
		return err
	}
	h, _ := b.nl(role)
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("bring up %s in namespace %s: %w", ifname, b.name(role), err)
	}
	return nil
}

// addr adds an address ("198.51.100.10/24") to an interface; the kernel adds
// the connected route to main with it.
func (b *builder) addr(role, ifname, cidr string) error {
	l, err := b.link(role, ifname)
	if err != nil {
		return err
	}
	a, err := netlink.ParseAddr(cidr)
	if err != nil {
		return fmt.Errorf("parse address %s: %w", cidr, err)
	}
	h, _ := b.nl(role)
	if err := h.AddrAdd(l, a); err != nil {
		return fmt.Errorf("add %s to %s in namespace %s: %w", cidr, ifname, b.name(role), err)
	}
	return nil
}

// mac reads an interface's hardware address.
func (b *builder) mac(role, ifname string) (net.HardwareAddr, error) {
	l, err := b.link(role, ifname)
	if err != nil {
		return nil, err
	}
	return l.Attrs().HardwareAddr, nil
}

// route describes one route to add; zero fields are left out.
type route struct {
	dst    string // "0.0.0.0/0" or "" for default
	via    string
	dev    string
	src    string // preferred source
	metric int
	table  int  // 0 = main
	link   bool // scope link (a connected route without gateway)
}

func (r route) String() string {
	var s []string
	if r.dst == "" {
		s = append(s, "default")
	} else {
		s = append(s, r.dst)
	}
	if r.via != "" {
		s = append(s, "via "+r.via)
	}
	if r.dev != "" {
		s = append(s, "dev "+r.dev)
	}
	if r.link {
		s = append(s, "scope link")
	}
	if r.src != "" {
		s = append(s, "src "+r.src)
	}
	if r.metric != 0 {
		s = append(s, fmt.Sprintf("metric %d", r.metric))
	}
	if r.table != 0 {
		s = append(s, fmt.Sprintf("table %d", r.table))
	}
	return strings.Join(s, " ")
}

// route adds routes in a role's namespace.
func (b *builder) route(role string, rs ...route) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	for _, r := range rs {
		nr, err := b.toNetlink(role, r)
		if err == nil {
			err = h.RouteAdd(nr)
		}
		if err != nil {
			return fmt.Errorf("add route %q in namespace %s: %w", r, b.name(role), err)
		}
	}
	return nil
}

func (b *builder) toNetlink(role string, r route) (*netlink.Route, error) {
	nr := &netlink.Route{Table: r.table, Priority: r.metric}
	dst := r.dst
	if dst == "" {
		dst = "0.0.0.0/0"
	}
	_, n, err := net.ParseCIDR(dst)
	if err != nil {
		return nil, err
	}
	nr.Dst = n
	if r.via != "" {
		nr.Gw = net.ParseIP(r.via).To4()
	}
	if r.src != "" {
		nr.Src = net.ParseIP(r.src).To4()
	}
	if r.dev != "" {
		l, err := b.link(role, r.dev)
		if err != nil {
			return nil, err
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if r.link {
		nr.Scope = netlink.SCOPE_LINK
	}
	return nr, nil
}

// hop is one next hop of a multipath route.
type hop struct{ via, dev string }

// multipath adds an ECMP route with equal weights.
func (b *builder) multipath(role, dst string, hops ...hop) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	_, n, err := net.ParseCIDR(dst)
	if err != nil {
		return fmt.Errorf("parse %s: %w", dst, err)
	}
	r := &netlink.Route{Dst: n}
	var desc []string
	for _, p := range hops {
		l, err := b.link(role, p.dev)
		if err != nil {
			return err
		}
		r.MultiPath = append(r.MultiPath, &netlink.NexthopInfo{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(p.via).To4()})
		desc = append(desc, "nexthop via "+p.via+" dev "+p.dev)
	}
	if err := h.RouteAdd(r); err != nil {
		return fmt.Errorf("add route %s %s in namespace %s: %w", dst, strings.Join(desc, " "), b.name(role), err)
	}
	return nil
}

// rule adds `from <src> lookup <table> priority <prio>`.
func (b *builder) rule(role, src string, table, prio int) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	if err := h.RuleAdd(newRule(src, table, prio)); err != nil {
		return fmt.Errorf("add rule %d: from %s lookup %d in namespace %s: %w", prio, src, table, b.name(role), err)
	}
	return nil
}

// newRule builds `from <src>/32 lookup <table> priority <prio>`. It must
// start from netlink.NewRule: a zero Rule gets EINVAL (notes §1c).
func newRule(src string, table, prio int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V4
	r.Priority = prio
	r.Table = table
	r.Src = &net.IPNet{IP: net.ParseIP(src).To4(), Mask: net.CIDRMask(32, 32)}
	return r
}

// neigh adds a permanent neighbour entry, as a cloud fabric that knows every
// MAC would: the gateway then never asks ARP, so a strict rp_filter on the
// host shows as an IP drop and not as an ARP failure (notes §8).
func (b *builder) neigh(role, ifname, ip string, mac net.HardwareAddr) error {
	l, err := b.link(role, ifname)
	if err != nil {
		return err
	}
	h, _ := b.nl(role)
	n := &netlink.Neigh{
		LinkIndex:    l.Attrs().Index,
		Family:       netlink.FAMILY_V4,
		State:        netlink.NUD_PERMANENT,
		IP:           net.ParseIP(ip).To4(),
		HardwareAddr: mac,
	}
	if err := h.NeighAdd(n); err != nil {
		return fmt.Errorf("add neighbour %s lladdr %s dev %s in namespace %s: %w", ip, mac, ifname, b.name(role), err)
	}
	return nil
}

// bridge creates a bridge and enslaves ports to it. Without STP the ports
// forward at once.
func (b *builder) bridge(role, name string, ports ...string) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := h.LinkAdd(br); err != nil {
		return fmt.Errorf("create bridge %s in namespace %s: %w", name, b.name(role), err)
	}
	brl, err := b.link(role, name)
	if err != nil {
		return err
	}
	for _, p := range ports {
		l, err := b.link(role, p)
		if err != nil {
			return err
		}
		if err := h.LinkSetMaster(l, brl); err != nil {
			return fmt.Errorf("add %s to bridge %s in namespace %s: %w", p, name, b.name(role), err)
		}
	}
	return b.up(role, name)
}

// nft opens an nftables connection inside a role's namespace.
func (b *builder) nft(role string) (*nftables.Conn, error) {
	ns, err := b.env.named(role)
	if err != nil {
		return nil, err
	}
	return namespace.Nft(ns)
}

// ifname pads an interface name to IFNAMSIZ for a meta iifname compare, as
// nft itself does.
func ifname(s string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, s)
	return b
}

// invalidDrop installs `table inet filter { chain forward { type filter hook
// forward priority 0; policy accept; ct state invalid counter drop } }`: a
// stateful middlebox. The ct expression is also what makes the namespace
// track connections at all (notes §2).
func (b *builder) invalidDrop(role string) error {
	ns, err := b.env.named(role)
	if err != nil {
		return err
	}
	return namespace.FilterRule(ns, "forward", nftables.ChainHookForward, namespace.CtInvalidDrop()...)
}

// nativeU32 encodes a ct state mask in host order: the kernel ANDs the
// register as a host-endian u32 (notes §3).
func nativeU32(v uint32) []byte {
	out := make([]byte, 4)
	binary.NativeEndian.PutUint32(out, v)
	return out
}

// sourceCheck models a cloud fabric's source/destination check on a bridge:
// `table bridge fabric { chain forward { type filter hook forward priority 0;
// policy accept; iifname "<port>" meta protocol ip ip saddr != <addr>
// counter drop ... } }`, one rule per host port. ARP is left alone.
func (b *builder) sourceCheck(role string, ports map[string]string) error {
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyBridge, Name: "fabric"})
	ch := namespace.BaseChain(c, t, "forward", nftables.ChainHookForward, 0)
	for _, port := range slices.Sorted(maps.Keys(ports)) {
		a, err := netip.ParseAddr(ports[port])
		if err != nil {
			return fmt.Errorf("parse %s: %w", ports[port], err)
		}
		a4 := a.As4()
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(port)},
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0x08, 0x00}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a4[:]},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install the source check on bridge ports in namespace %s: %w", b.name(role), err)
	}
	return nil
}

// ingressFilter is BCP38 on an ISP router: `table ip filter { chain forward
// { type filter hook forward priority 0; policy accept; iifname "<iif>" ip
// saddr != <prefix>/24 counter drop } }`.
func (b *builder) ingressFilter(role, iif string, prefix24 string) error {
	p, err := netip.ParsePrefix(prefix24)
	if err != nil || p.Bits() != 24 || !p.Addr().Is4() {
		return fmt.Errorf("ingress filter prefix %q: want an IPv4 /24", prefix24)
	}
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	a4 := p.Addr().As4()
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	ch := namespace.BaseChain(c, t, "forward", nftables.ChainHookForward, 0)
	// nft compiles `ip saddr != 198.51.100.0/24` to a 3-byte payload compare.
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifname(iif)},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 3},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: a4[:3]},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install the ingress filter (BCP38) in namespace %s: %w", b.name(role), err)
	}
	return nil
}

// outputIf asks the kernel which interface a forwarded packet with these
// ports leaves by: an input lookup (iif), as `ip route get <dst> from <src>
// iif <iif> ipproto tcp sport <sp> dport <dp>` does. vishvananda/netlink's
// RouteGetWithOptions has no port options, so the request is built by hand
// (notes §1g); the kernel builds a synthetic skb with these ports and hashes
// it as it hashes a forwarded packet, so ECMP picks the same next hop.
func (b *builder) outputIf(role, iif string, src, dst netip.Addr, sport, dport uint16) (string, error) {
	h, ok := b.env.handles[role]
	if !ok {
		return "", fmt.Errorf("route lookup in %s: namespace was not created", b.name(role))
	}
	in, err := b.link(role, iif)
	if err != nil {
		return "", err
	}
	s, err := nl.GetNetlinkSocketAt(h, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("open a route socket in namespace %s: %w", b.name(role), err)
	}
	defer s.Close()
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETROUTE, Flags: unix.NLM_F_REQUEST},
		Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}},
	}
	// A bare rtmsg, as iproute2 sends: nl.NewRtMsg would fill in table,
	// protocol and type, which a GET does not mean.
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Dst_len: 32, Src_len: 32}})
	s4, d4 := src.As4(), dst.As4()
	req.AddData(nl.NewRtAttr(unix.RTA_DST, d4[:]))
	req.AddData(nl.NewRtAttr(unix.RTA_SRC, s4[:]))
	req.AddData(nl.NewRtAttr(unix.RTA_IIF, nl.Uint32Attr(uint32(in.Attrs().Index))))
	req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{unix.IPPROTO_TCP}))
	req.AddData(nl.NewRtAttr(unix.RTA_SPORT, binary.BigEndian.AppendUint16(nil, sport)))
	req.AddData(nl.NewRtAttr(unix.RTA_DPORT, binary.BigEndian.AppendUint16(nil, dport)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	if err != nil {
		return "", fmt.Errorf("route get %s from %s iif %s sport %d dport %d in namespace %s: %w", dst, src, iif, sport, dport, b.name(role), err)
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofRtMsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
		if err != nil {
			return "", fmt.Errorf("parse the route lookup answer in namespace %s: %w", b.name(role), err)
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.RTA_OIF && len(a.Value) >= 4 {
				idx := int(binary.NativeEndian.Uint32(a.Value))
				hl, _ := b.nl(role)
				l, err := hl.LinkByIndex(idx)
				if err != nil {
					return "", fmt.Errorf("interface %d in namespace %s: %w", idx, b.name(role), err)
				}
				return l.Attrs().Name, nil
			}
		}
	}
	return "", fmt.Errorf("route get %s from %s iif %s in namespace %s: the answer names no output interface", dst, src, iif, b.name(role))
}

// mtu sets an interface's MTU.
func (b *builder) mtu(role, ifname string, mtu int) error {
	l, err := b.link(role, ifname)
	if err != nil {
		return err
	}
	h, _ := b.nl(role)
	if err := h.LinkSetMTU(l, mtu); err != nil {
		return fmt.Errorf("set mtu %d on %s in namespace %s: %w", mtu, ifname, b.name(role), err)
	}
	return nil
}

// dropFragNeeded installs `table ip filter { chain output { type filter hook
// output priority 0; policy accept; icmp type destination-unreachable icmp
// code frag-needed counter drop } }`: a router that filters the ICMP errors
// it sends itself, so path MTU discovery through it never learns. The
// errors a router generates leave through its output hook, not forward.
func (b *builder) dropFragNeeded(role string) error {
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	ch := namespace.BaseChain(c, t, "output", nftables.ChainHookOutput, 0)
	// nft compiles `icmp type ... icmp code ...` to its l4proto dependency
	// and one-byte compares of the transport header's first two bytes.
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{3}}, // destination unreachable
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 1, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{4}}, // fragmentation needed and DF set
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `icmp type destination-unreachable icmp code frag-needed counter drop` in namespace %s: %w", b.name(role), err)
	}
	return nil
}

package lab

// Building blocks for mark-based policy routing and for firewalls written
// the way iptables-nft writes them: fwmark rules, the mangle chains that
// set and restore packet and connection marks, sysctls that need their
// interface to exist first, and `-m conntrack --ctstate INVALID -j DROP` as
// an xt compat match. Like net.go, every block works inside a role's
// namespace through a socket opened there.

import (
	labxt "asym/lab/xtables"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink"
)

// sysctl writes sysctls in a role's namespace once its interfaces exist:
// a per-interface value (net/ipv4/conf/eth1/rp_filter) has no file before
// its interface does, so it cannot go with the namespace's creation.
func (b *builder) sysctl(role string, sysctls ...kv) error {
	return b.env.do(role, func() error { return writeSysctls(b.name(role), sysctls) })
}

// markRule adds `fwmark <mark> lookup <table> priority <prio>`.
func (b *builder) markRule(role string, mark uint32, table, prio int) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	if err := h.RuleAdd(newMarkRule(mark, table, prio)); err != nil {
		return fmt.Errorf("add rule %d: fwmark %#x lookup %d in namespace %s: %w", prio, mark, table, b.name(role), err)
	}
	return nil
}

// newMarkRule builds `fwmark <mark> lookup <table> priority <prio>`; the
// library sends the mask 0xffffffff with a mark, as ip rule does.
func newMarkRule(mark uint32, table, prio int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V4
	r.Priority = prio
	r.Table = table
	r.Mark = mark
	return r
}

// mangle adds `table ip mangle`, where marks are set as iptables' mangle
// table sets them.
func mangle(c *nftables.Conn) *nftables.Table {
	return c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "mangle"})
}

// manglePrerouting adds `table ip mangle { chain prerouting { type filter
// hook prerouting priority mangle; policy accept; } }`: before the routing
// decision, so a mark set here steers both the route lookup and the
// reverse-path check.
func manglePrerouting(c *nftables.Conn) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return c.AddChain(&nftables.Chain{Name: "prerouting", Table: mangle(c), Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityMangle, Policy: &accept})
}

// iifIs is `iif "<name>"`: nft compares the interface index, host order.
func (b *builder) iifIs(role, name string) ([]expr.Any, error) {
	l, err := b.link(role, name)
	if err != nil {
		return nil, err
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: nativeU32(uint32(l.Attrs().Index))},
	}, nil
}

// markNewConnections installs `table ip mangle { chain prerouting { ...;
// iif "<iif>" ct state new ct mark set <mark> } }`: the first half of
// CONNMARK routing, which labels a connection by the link it came in on.
// The packets themselves stay unmarked; only what copies the ct mark back
// (restoreMark) gives a reply the mark its fwmark rule wants.
func (b *builder) markNewConnections(role, iif string, mark uint32) error {
	match, err := b.iifIs(role, iif)
	if err != nil {
		return err
	}
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	ch := manglePrerouting(c)
	c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: append(match,
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: nativeU32(expr.CtStateBitNEW), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Immediate{Register: 1, Data: nativeU32(mark)},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true},
	)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `iif %s ct state new ct mark set %#x` in namespace %s: %w", iif, mark, b.name(role), err)
	}
	return nil
}

// markPackets installs `table ip mangle { chain prerouting { ...; iif
// "<iif>" meta mark set <mark> ct mark set meta mark } }`: every packet in
// on that link carries the mark into the routing decision (and into the
// reverse-path check, where src_valid_mark lets it count), and the
// connection keeps it for the replies.
func (b *builder) markPackets(role, iif string, mark uint32) error {
	match, err := b.iifIs(role, iif)
	if err != nil {
		return err
	}
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	ch := manglePrerouting(c)
	c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: append(match,
		&expr.Immediate{Register: 1, Data: nativeU32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK, SourceRegister: true},
	)})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `iif %s meta mark set %#x ct mark set meta mark` in namespace %s: %w", iif, mark, b.name(role), err)
	}
	return nil
}

// restoreMark installs `table ip mangle { chain output { type route hook
// output priority mangle; policy accept; meta mark set ct mark } }`, nft's
// `-j CONNMARK --restore-mark`. The chain must be of type route: only there
// does a changed mark make the kernel route the packet again
// (nf_route_table_hook in net/ipv4/netfilter/nft_chain_route_ipv4.c calls
// ip_route_me_harder); in a filter chain the reply keeps the route it got.
func (b *builder) restoreMark(role string) error {
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "output", Table: mangle(c), Type: nftables.ChainTypeRoute,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityMangle, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: ch.Table, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeyMARK},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `meta mark set ct mark` in a route chain on output in namespace %s: %w", b.name(role), err)
	}
	return nil
}

// xtStateInvalid is the info of `-m conntrack --ctstate INVALID` as
// iptables-nft 1.8 hands it to the kernel: revision 3 of xt_conntrack, only
// the state flag set, the state bit for INVALID (XT_CONNTRACK_STATE_INVALID,
// 1 << 0, in include/uapi/linux/netfilter/xt_conntrack.h; the same value
// as nft's ct state bit). Addresses, masks and ports stay zero.
func xtStateInvalid() *xt.ConntrackMtinfo3 {
	return &xt.ConntrackMtinfo3{ConntrackMtinfo2: xt.ConntrackMtinfo2{
		ConntrackMtinfoBase: xt.ConntrackMtinfoBase{MatchFlags: uint16(xt.ConntrackState)},
		StateMask:           uint16(expr.CtStateBitINVALID),
	}}
}

// xtInvalidDrop installs what `iptables-nft -A FORWARD -m conntrack
// --ctstate INVALID -j DROP` writes: `table ip filter`, its built-in base
// chain FORWARD (type filter hook forward priority 0, policy accept), and a
// rule of an xt compat match, the counter iptables-nft puts in every rule,
// and a native drop verdict. nft lists it as `ct state invalid counter
// drop`, but a reader that only knows the native Ct expression misses it
// (notes §3). The match needs xt_conntrack, which also makes the namespace
// track connections. (iptables-nft also sends NFTA_RULE_COMPAT with
// protocol 0, which google/nftables only writes for protocol matches; the
// kernel uses it to validate a match and never lists it back.)
//
// An iptables-legacy variant of the same rule (x_tables, written with
// setsockopt IPT_SO_SET_REPLACE, invisible to nftables) would be a sibling
// of this function with the same signature, passed to firewallOneWay in its
// own catalog entry (see scenarios_marks.go).
func (b *builder) xtInvalidDrop(role string) error {
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "FORWARD", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Match{Name: "conntrack", Rev: 3, Info: xtStateInvalid()},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `-A FORWARD -m conntrack --ctstate INVALID -j DROP` (iptables-nft) in namespace %s: %w", b.name(role), err)
	}
	return nil
}

// legacyInvalidDrop writes the same rule as iptables-legacy does: an
// x_tables filter table with `-A FORWARD -m conntrack --ctstate INVALID -j
// DROP`, installed with setsockopt IPT_SO_SET_REPLACE (lab/xtables).
// nftables does not see it; only a reader of x_tables does.
func (b *builder) legacyInvalidDrop(role string) error {
	err := b.env.do(role, func() error {
		return labxt.Table{Name: "filter", Chains: []labxt.Chain{
			{Name: "FORWARD", Rules: []labxt.Rule{{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateInvalid, false)}, Target: labxt.Drop}}},
		}}.Install()
	})
	if err != nil {
		return fmt.Errorf("install `-A FORWARD -m conntrack --ctstate INVALID -j DROP` (iptables-legacy) in namespace %s: %w", b.name(role), err)
	}
	return nil
}

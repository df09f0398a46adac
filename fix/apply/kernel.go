package apply

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"asym/evidence"
	"asym/fix"
	"asym/probes"
)

// kernel is fix.Kernel for one target namespace: netlink through the
// target's handle, sysctls through /proc/sys on a thread inside it. Never
// a shell.
type kernel struct{ t *probes.Target }

func family(v6 bool) int {
	if v6 {
		return netlink.FAMILY_V6
	}
	return netlink.FAMILY_V4
}

func (k kernel) Describe() string { return k.t.String() }

func (k kernel) Rules(_ context.Context, v6 bool) ([]fix.RuleSpec, error) {
	rules, err := k.t.Netlink().RuleList(family(v6))
	if err != nil {
		return nil, err
	}
	out := make([]fix.RuleSpec, len(rules))
	for i, r := range rules {
		out[i] = specOf(r, v6)
	}
	return out, nil
}

func (k kernel) AddRule(_ context.Context, r fix.RuleSpec) error {
	return k.t.Netlink().RuleAdd(nativeRule(r))
}

func (k kernel) DelRule(_ context.Context, r fix.RuleSpec) error {
	return k.t.Netlink().RuleDel(nativeRule(r))
}

func (k kernel) CountRoutes(ctx context.Context, v6 bool, table, limit int) (int, error) {
	return k.t.CountRoutes(ctx, v6, table, limit)
}

func (k kernel) AddRoute(_ context.Context, r fix.RouteSpec) error {
	nr, err := k.nativeRoute(r)
	if err != nil {
		return err
	}
	return k.t.Netlink().RouteAdd(nr)
}

func (k kernel) DelRoute(_ context.Context, r fix.RouteSpec) error {
	nr, err := k.nativeRoute(r)
	if err != nil {
		return err
	}
	return k.t.Netlink().RouteDel(nr)
}

func (k kernel) ReplaceRoute(_ context.Context, r fix.RouteSpec) error {
	nr, err := k.nativeRoute(r)
	if err != nil {
		return err
	}
	return k.t.Netlink().RouteReplace(nr)
}

// Routes reads the table with the kernel filtering it by table and
// interface (strict checking), and keeps the routes of r's prefix: a fix
// reads the one route it changes, when it changes it.
func (k kernel) Routes(ctx context.Context, r fix.RouteSpec) ([]fix.RouteSpec, error) {
	var out []fix.RouteSpec
	if !k.HasLink(ctx, r.Dev) {
		return nil, nil // the interface went away, and its routes with it
	}
	err := k.t.EachRoute(ctx, r.Is6(), r.Table, r.Dev, func(nr netlink.Route) bool {
		if prefixOf(nr.Dst) != r.Dst && !(nr.Dst == nil && r.Dst.Bits() == 0) {
			return true
		}
		found := fix.RouteSpec{Table: r.Table, Dst: r.Dst, Dev: r.Dev, Metric: nr.Priority, Protocol: uint8(nr.Protocol)}
		if gw, ok := netip.AddrFromSlice(nr.Gw); ok {
			found.Gateway = gw.Unmap()
		}
		if src, ok := netip.AddrFromSlice(nr.Src); ok {
			found.PrefSrc = src.Unmap()
		}
		if nr.Scope == netlink.SCOPE_LINK {
			found.Scope = "link"
		}
		out = append(out, found)
		return true
	})
	return out, err
}

func (k kernel) HasLink(_ context.Context, name string) bool {
	_, err := k.t.Netlink().LinkByName(name)
	return err == nil
}

func (k kernel) ReadSysctl(ctx context.Context, name string) (string, bool, error) {
	path := evidence.SysctlPath(name)
	got, err := k.t.ReadProc(ctx, path)
	if err != nil {
		return "", false, err
	}
	v, ok := got[path]
	return v, ok, nil
}

func (k kernel) WriteSysctl(ctx context.Context, name, value string) error {
	path := filepath.Join("/proc", evidence.SysctlPath(name))
	return k.t.InNS(ctx, func() error { return os.WriteFile(path, []byte(value), 0) })
}

func (k kernel) nativeRoute(rs fix.RouteSpec) (*netlink.Route, error) {
	l, err := k.t.Netlink().LinkByName(rs.Dev)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", rs.Dev, err)
	}
	r := &netlink.Route{LinkIndex: l.Attrs().Index, Table: rs.Table, Family: family(rs.Is6()), Dst: ipNet(rs.Dst),
		Priority: rs.Metric, Protocol: netlink.RouteProtocol(rs.Protocol)}
	if rs.Gateway.IsValid() {
		r.Gw = rs.Gateway.AsSlice()
	}
	if rs.PrefSrc.IsValid() {
		r.Src = rs.PrefSrc.AsSlice()
	}
	if rs.Scope == "link" {
		r.Scope = netlink.SCOPE_LINK
	}
	return r, nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	if !p.IsValid() {
		return nil
	}
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

// optional maps the library's -1 ("not set") to nil.
func optional(v int) *int {
	if v < 0 {
		return nil
	}
	return &v
}

func orUnset(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

// specOf keeps every selector of a rule the kernel holds.
func specOf(r netlink.Rule, v6 bool) fix.RuleSpec {
	s := fix.RuleSpec{IPv6: v6, Priority: r.Priority, Table: r.Table, Mark: r.Mark, Mask: r.Mask, Tos: r.Tos, TunID: r.TunID,
		Goto: optional(r.Goto), Flow: optional(r.Flow), SuppressIfgroup: optional(r.SuppressIfgroup), SuppressPrefixlen: optional(r.SuppressPrefixlen),
		Src: prefixOf(r.Src), Dst: prefixOf(r.Dst), Iif: r.IifName, Oif: r.OifName, Invert: r.Invert, IPProto: r.IPProto,
		Protocol: r.Protocol, Type: r.Type}
	if r.Sport != nil {
		s.Sport = &[2]uint16{r.Sport.Start, r.Sport.End}
	}
	if r.Dport != nil {
		s.Dport = &[2]uint16{r.Dport.Start, r.Dport.End}
	}
	if r.UIDRange != nil {
		s.UIDRange = &[2]uint32{r.UIDRange.Start, r.UIDRange.End}
	}
	return s
}

// nativeRule is the library's rule for a spec: every field set, the rest
// as NewRule leaves them (a zero Rule{} is rejected by the kernel).
func nativeRule(s fix.RuleSpec) *netlink.Rule {
	r := netlink.NewRule()
	r.Family, r.Priority, r.Table, r.Mark, r.Mask, r.Tos, r.TunID = family(s.Is6()), s.Priority, s.Table, s.Mark, s.Mask, s.Tos, s.TunID
	r.Goto, r.Flow, r.SuppressIfgroup, r.SuppressPrefixlen = orUnset(s.Goto), orUnset(s.Flow), orUnset(s.SuppressIfgroup), orUnset(s.SuppressPrefixlen)
	r.Src, r.Dst, r.IifName, r.OifName, r.Invert, r.IPProto, r.Protocol, r.Type = ipNet(s.Src), ipNet(s.Dst), s.Iif, s.Oif, s.Invert, s.IPProto, s.Protocol, s.Type
	if s.Sport != nil {
		r.Sport = netlink.NewRulePortRange(s.Sport[0], s.Sport[1])
	}
	if s.Dport != nil {
		r.Dport = netlink.NewRulePortRange(s.Dport[0], s.Dport[1])
	}
	if s.UIDRange != nil {
		r.UIDRange = netlink.NewRuleUIDRange(s.UIDRange[0], s.UIDRange[1])
	}
	return r
}

package lab

// Building block for nexthop objects (`ip nexthop`): the messages are built
// by lab/namespace (ECMPRoute says why nexthop objects and not a plain
// multipath route), which the trace tests share.

import (
	"fmt"
	"net/netip"

	"asym/lab/namespace"
)

// nexthop is one nexthop object: `ip nexthop add id <id> via <via> dev <dev>`.
type nexthop struct {
	id  uint32
	via string
	dev string
}

// ecmpRoute adds the nexthop objects, a multipath group of them with equal
// weights (`ip nexthop add id <group> group <id1>/<id2>...`) and `<dst> nhid
// <group>` in the main table; dst "" is the default route.
func (b *builder) ecmpRoute(role, dst string, group uint32, hops ...nexthop) error {
	ns, err := b.env.named(role)
	if err != nil {
		return err
	}
	if dst == "" {
		dst = "0.0.0.0/0"
	}
	p, err := netip.ParsePrefix(dst)
	if err != nil || !p.Addr().Is4() {
		return fmt.Errorf("route %q nhid %d: want an IPv4 prefix", dst, group)
	}
	var nhs []namespace.Nexthop
	for _, h := range hops {
		gw, err := netip.ParseAddr(h.via)
		if err != nil || !gw.Is4() {
			return fmt.Errorf("nexthop id %d: gateway %q is not an IPv4 address", h.id, h.via)
		}
		nhs = append(nhs, namespace.Nexthop{ID: h.id, Via: gw, Dev: h.dev})
	}
	return namespace.ECMPRoute(ns, p, group, nhs...)
}

package probes

import (
	"context"
	"net/netip"
	"sort"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"asym/evidence"
)

// maxRefusers bounds the routes of one refusing kind asym reads: a host
// may hold thousands of discard routes (a routing daemon's, a block list);
// only those that hold the destination are kept.
const maxRefusers = 4096

var refusalTypes = map[string]int{"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE, "prohibit": unix.RTN_PROHIBIT}

// refusers finds the routes of one refusing kind whose prefix holds dst, in
// every table, the longest first. The kernel filters the dump by route
// type (strict checking), so it sends those routes and no other; it still
// walks the tables to find them, which is why asym asks only after the
// kernel refused a decision.
func (t *Target) refusers(ctx context.Context, dst netip.Addr, kind string) ([]evidence.Refuser, error) {
	typ, ok := refusalTypes[kind]
	if !ok {
		return nil, nil
	}
	family := netlink.FAMILY_V4
	if dst.Is6() {
		family = netlink.FAMILY_V6
	}
	var out []evidence.Refuser
	seen := 0
	err := t.withTimeout(ctx, func() error {
		filter := &netlink.Route{Table: unix.RT_TABLE_UNSPEC, Type: typ}
		return t.strict.RouteListFilteredIter(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_TYPE, func(nr netlink.Route) bool {
			t.gotRoutes.Add(1)
			seen++
			r := t.convertRoute(nr, dst.Is6())
			if r.Dst.Contains(dst) {
				out = append(out, evidence.Refuser{Table: nr.Table, Route: r})
			}
			return seen < maxRefusers
		})
	})
	if isDumpInterrupted(err) {
		err = nil
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Route.Dst.Bits() > out[j].Route.Dst.Bits() })
	return out, err
}

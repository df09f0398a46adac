package fix

import (
	"errors"
	"strings"
)

// Protocol marks the routes and rules asym adds (RTA_PROTOCOL on routes,
// FRA_PROTOCOL on rules), so that its undo can tell them from anyone
// else's and the kernel itself refuses to delete another's: a delete that
// names a protocol matches only objects of that protocol (fib_table_delete
// in net/ipv4/fib_trie.c, ip6_route_del in net/ipv6/route.c, rule_find in
// net/core/fib_rules.c), while every field a delete leaves out is a
// wildcard. The kernel passes values above RTPROT_STATIC through without
// reading them (include/uapi/linux/rtnetlink.h). 245 is none of the
// kernel's own (up to 192), FRR's (193–198), Calico's (80) or iproute2's
// rt_protos: `ip route show table all proto 245` and `ip rule show proto
// 245` list what asym added.
const Protocol uint8 = 245

// Drift is an undo that found the object it would change no longer as asym
// left it: someone changed it since. asym leaves it alone and says so.
type Drift struct{ What string }

func (d *Drift) Error() string { return d.What }

// IsDrift says whether err is a Drift.
func IsDrift(err error) bool {
	var d *Drift
	return errors.As(err, &d)
}

// errGone says the object a step would change is not there (undone
// already, or removed by someone): the revert counts it as done.
type errGone struct{ msg string }

func (e errGone) Error() string { return e.msg }

// IsGone says whether err means the object a step would remove is already
// gone, or the one it would add already there.
func IsGone(err error) bool {
	var g errGone
	return errors.As(err, &g)
}

// SameRule says whether two rules are the same rule: every selector, the
// action and the protocol, in the forms the kernel reads back (a fwmark
// without a mask has the mask 0xffffffff; a lookup has action 0 or 1).
func SameRule(a, b RuleSpec) bool {
	return a.Is6() == b.Is6() && a.Priority == b.Priority && a.Src == b.Src && a.Dst == b.Dst &&
		a.Table == b.Table && a.Iif == b.Iif && a.Oif == b.Oif && a.Mark == b.Mark && markMask(a) == markMask(b) &&
		a.Tos == b.Tos && a.TunID == b.TunID && eqInt(a.Goto, b.Goto) && eqInt(a.Flow, b.Flow) &&
		eqInt(a.SuppressIfgroup, b.SuppressIfgroup) && eqInt(a.SuppressPrefixlen, b.SuppressPrefixlen) &&
		a.Invert == b.Invert && eqPtr(a.Sport, b.Sport) && eqPtr(a.Dport, b.Dport) && a.IPProto == b.IPProto &&
		eqPtr(a.UIDRange, b.UIDRange) && a.Protocol == b.Protocol && action(a) == action(b)
}

// SameRoute says whether two routes of one table are the same route:
// prefix, interface, gateway, source hint, scope, metric and protocol.
// IPv6 stores a route added without a metric with 1024
// (IP6_RT_PRIO_USER, include/net/ip6_route.h).
func SameRoute(a, b RouteSpec) bool {
	return a.Table == b.Table && a.Dst == b.Dst && a.Dev == b.Dev && a.Gateway == b.Gateway &&
		a.PrefSrc == b.PrefSrc && a.Scope == b.Scope && metric(a) == metric(b) && a.Protocol == b.Protocol
}

func metric(r RouteSpec) int {
	if r.Metric == 0 && r.Is6() {
		return 1024
	}
	return r.Metric
}

func markMask(r RuleSpec) uint32 {
	switch {
	case r.Mask != nil:
		return *r.Mask
	case r.Mark != 0:
		return 0xffffffff
	}
	return 0
}

func action(r RuleSpec) uint8 {
	if r.Type == 0 {
		return 1 // FR_ACT_TO_TBL: what the kernel makes of a rule added without one
	}
	return r.Type
}

func eqInt(a, b *int) bool {
	norm := func(p *int) int {
		if p == nil || *p < 0 {
			return -1
		}
		return *p
	}
	return norm(a) == norm(b)
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// describeRule renders a rule as `ip rule` would, for messages.
func describeRule(r RuleSpec) string { return strings.Join(r.words(), " ") }

// describeRoute renders a route as `ip route` would, for messages.
func describeRoute(r RouteSpec) string {
	w := routeWords("show", r, false)
	for i, word := range w {
		if word == "show" {
			w = w[i+1:]
			break
		}
	}
	return strings.Join(w, " ")
}

package fix

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
)

// Kinds of route steps.
const (
	KindRouteAdd     Kind = "route.add"
	KindRouteDel     Kind = "route.del"
	KindRouteReplace Kind = "route.replace"
)

// RouteSpec is a route asym adds: simple enough to store and to delete
// exactly.
type RouteSpec struct {
	Table   int          `json:"table"`
	Dst     netip.Prefix `json:"dst"`
	Gateway netip.Addr   `json:"via,omitzero"`
	Dev     string       `json:"dev"`
	PrefSrc netip.Addr   `json:"prefsrc,omitzero"`
	Scope   string       `json:"scope,omitempty"` // "link" or ""
	// Metric and Protocol are kept when asym captures a route it changes,
	// so that its undo puts back the same route (the kernel tells routes
	// of one prefix apart by metric).
	Metric   int   `json:"metric,omitempty"`
	Protocol uint8 `json:"protocol,omitempty"`
}

// Is6 says whether the route is IPv6.
func (r RouteSpec) Is6() bool { return r.Dst.Addr().Is6() }

func routeWords(verb string, r RouteSpec, unknownGateway bool) []string {
	w := []string{"ip"}
	if r.Is6() {
		w = append(w, "-6")
	}
	w = append(w, "route", verb)
	if r.Dst.Bits() == 0 {
		w = append(w, "default")
	} else {
		w = append(w, r.Dst.String())
	}
	if r.Gateway.IsValid() {
		w = append(w, "via", r.Gateway.String())
	} else if unknownGateway {
		w = append(w, "via", "GATEWAY")
	}
	w = append(w, "dev", r.Dev)
	if r.Scope != "" {
		w = append(w, "scope", r.Scope)
	}
	if r.PrefSrc.IsValid() {
		w = append(w, "src", r.PrefSrc.String())
	}
	if r.Metric != 0 {
		w = append(w, "metric", strconv.Itoa(r.Metric))
	}
	if r.Protocol != 0 {
		// The route asym added (its protocol), or the one it captured to
		// put back: the pasted command names that route and no other.
		w = append(w, "proto", strconv.Itoa(int(r.Protocol)))
	}
	return append(w, "table", strconv.Itoa(r.Table))
}

// RouteAdd adds a route to a policy table.
type RouteAdd struct {
	RouteSpec
	// Unknown names what asym could not find out (the gateway); the
	// command then shows GATEWAY and the step cannot be applied as is.
	Unknown string `json:"unknown,omitempty"`
	// GatewayFrom says where the gateway came from (a route, a DHCP
	// lease, the frames of the flow, the person), for people to check.
	GatewayFrom string `json:"gateway_from,omitempty"`
}

func (s *RouteAdd) Kind() Kind      { return KindRouteAdd }
func (s *RouteAdd) Words() []string { return routeWords("add", s.RouteSpec, s.Unknown != "") }
func (s *RouteAdd) Missing() string { return s.Unknown }

// Prepare refuses to mix routes into a table that is not empty and that no
// rule uses (a table asym does not know), and a route by a vanished
// interface. The route asym adds carries asym's protocol, so that its undo
// deletes that route and no other.
func (s *RouteAdd) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	n, err := k.CountRoutes(ctx, s.Is6(), s.Table, 1)
	if err != nil {
		return nil, nil, fmt.Errorf("read table %d: %w", s.Table, err)
	}
	if n > 0 && !prep.filled[s.Table] {
		used := false
		if rules, err := k.Rules(ctx, s.Is6()); err == nil {
			for _, r := range rules {
				used = used || r.Table == s.Table
			}
		}
		if !used {
			return nil, nil, fmt.Errorf("table %d is not empty now, and no rule uses it: asym will not mix its routes into a table it does not know; run the check again", s.Table)
		}
	}
	if !k.HasLink(ctx, s.Dev) {
		return nil, nil, fmt.Errorf("interface %q is gone from %s", s.Dev, k.Describe())
	}
	prep.fill(s.Table)
	do := *s
	do.Protocol = Protocol
	return &do, &RouteDel{RouteSpec: do.RouteSpec}, nil
}

// Apply adds the route unless it is there already (IsGone), or another
// route of its prefix and metric holds its place now (a Drift: as the undo
// of a RouteDel, the route asym deleted is put back only where nobody has
// put another since).
func (s *RouteAdd) Apply(ctx context.Context, k Kernel) error {
	routes, err := k.Routes(ctx, s.RouteSpec)
	if err != nil {
		return fmt.Errorf("read table %d: %w", s.Table, err)
	}
	for _, r := range routes {
		if SameRoute(r, s.RouteSpec) {
			return errGone{"the route " + describeRoute(s.RouteSpec) + " is already there"}
		}
	}
	for _, r := range routes {
		if metric(r) == metric(s.RouteSpec) {
			return &Drift{fmt.Sprintf("table %d holds another route for %s now (%s), not %s: someone changed it since; asym leaves it alone",
				s.Table, s.Dst, describeRoute(r), describeRoute(s.RouteSpec))}
		}
	}
	return k.AddRoute(ctx, s.RouteSpec)
}

// RouteDel deletes a route: the undo of RouteAdd, with every attribute
// the route was added with (asym's protocol among them).
type RouteDel struct {
	RouteSpec
}

func (s *RouteDel) Kind() Kind      { return KindRouteDel }
func (s *RouteDel) Words() []string { return routeWords("del", s.RouteSpec, false) }
func (s *RouteDel) Missing() string { return "" }

// Prepare captures the route as the kernel holds it (the first of its
// table, prefix and interface that agrees with what the step names), so
// that its undo puts back exactly that route.
func (s *RouteDel) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	routes, err := k.Routes(ctx, s.RouteSpec)
	if err != nil {
		return nil, nil, fmt.Errorf("read table %d: %w", s.Table, err)
	}
	for _, r := range routes {
		if (!s.Gateway.IsValid() || r.Gateway == s.Gateway) && (!s.PrefSrc.IsValid() || r.PrefSrc == s.PrefSrc) &&
			(s.Metric == 0 || r.Metric == s.Metric) && (s.Protocol == 0 || r.Protocol == s.Protocol) {
			return &RouteDel{RouteSpec: r}, &RouteAdd{RouteSpec: r}, nil
		}
	}
	return nil, nil, fmt.Errorf("the route %s in table %d is no longer there: the host changed since it was probed; run the check again", describeRoute(s.RouteSpec), s.Table)
}

// Apply deletes the route that is exactly this one: the kernel treats
// what a delete leaves out (a metric of 0 among them) as a wildcard, so a
// route that differs only there would otherwise go in its place.
func (s *RouteDel) Apply(ctx context.Context, k Kernel) error {
	routes, err := k.Routes(ctx, s.RouteSpec)
	if err != nil {
		return fmt.Errorf("read table %d: %w", s.Table, err)
	}
	for _, r := range routes {
		if SameRoute(r, s.RouteSpec) {
			return k.DelRoute(ctx, r)
		}
	}
	if len(routes) > 0 {
		return &Drift{fmt.Sprintf("the route %s in table %d is not there any more; %s is, which asym did not add: asym leaves it alone",
			describeRoute(s.RouteSpec), s.Table, describeRoute(routes[0]))}
	}
	return errGone{"the route " + describeRoute(s.RouteSpec) + " is not there"}
}

// RouteReplace changes a route that exists: the one of its table, prefix
// and interface (and metric) is replaced by Route, e.g. to correct the
// source address hint (src) the kernel gives sockets that do not bind one.
// Prepared, it captures the route as the kernel holds it, so that its undo
// puts exactly that back.
type RouteReplace struct {
	Route RouteSpec `json:"route"`
	// Expect is the route that must be there for the replace to happen
	// (set when prepared): the one captured for the fix, and for the undo
	// the one asym put in its place. A route someone changed since is
	// theirs, and left alone.
	Expect *RouteSpec `json:"expect,omitempty"`
}

func (s *RouteReplace) Kind() Kind      { return KindRouteReplace }
func (s *RouteReplace) Words() []string { return routeWords("replace", s.Route, false) }
func (s *RouteReplace) Missing() string { return "" }

func (s *RouteReplace) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	routes, err := k.Routes(ctx, s.Route)
	if err != nil {
		return nil, nil, fmt.Errorf("read table %d: %w", s.Route.Table, err)
	}
	if len(routes) == 0 {
		return nil, nil, fmt.Errorf("the route %s by %s in table %d is no longer there: the host changed since it was probed; run the check again", s.Route.Dst, s.Route.Dev, s.Route.Table)
	}
	if !k.HasLink(ctx, s.Route.Dev) {
		return nil, nil, fmt.Errorf("interface %q is gone from %s", s.Route.Dev, k.Describe())
	}
	old := routes[0]
	for _, r := range routes {
		if s.Route.Metric != 0 && r.Metric == s.Route.Metric {
			old = r
		}
	}
	do := RouteReplace{Route: s.Route, Expect: &old}
	do.Route.Metric, do.Route.Protocol = old.Metric, old.Protocol
	return &do, &RouteReplace{Route: old, Expect: &do.Route}, nil
}

// Apply replaces the route when it is still the expected one; when the
// route is already Route it is done (IsGone), and when it is neither, it
// is someone else's now (a Drift).
func (s *RouteReplace) Apply(ctx context.Context, k Kernel) error {
	if s.Expect != nil {
		routes, err := k.Routes(ctx, s.Route)
		if err != nil {
			return fmt.Errorf("read table %d: %w", s.Route.Table, err)
		}
		expected := false
		for _, r := range routes {
			if SameRoute(r, s.Route) {
				return errGone{"the route " + describeRoute(s.Route) + " is already there"}
			}
			expected = expected || SameRoute(r, *s.Expect)
		}
		switch {
		case len(routes) == 0:
			return errGone{"no route for " + s.Route.Dst.String() + " by " + s.Route.Dev + " is in table " + strconv.Itoa(s.Route.Table)}
		case !expected:
			return &Drift{fmt.Sprintf("the route %s in table %d is %s now, not %s as asym left it: someone changed it since; asym leaves it alone",
				s.Route.Dst, s.Route.Table, describeRoute(routes[0]), describeRoute(*s.Expect))}
		}
	}
	return k.ReplaceRoute(ctx, s.Route)
}

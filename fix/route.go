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
// interface.
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
	return s, &RouteDel{RouteSpec: s.RouteSpec}, nil
}

func (s *RouteAdd) Apply(ctx context.Context, k Kernel) error { return k.AddRoute(ctx, s.RouteSpec) }

// RouteDel deletes a route asym added (the undo of RouteAdd).
type RouteDel struct {
	RouteSpec
}

func (s *RouteDel) Kind() Kind      { return KindRouteDel }
func (s *RouteDel) Words() []string { return routeWords("del", s.RouteSpec, false) }
func (s *RouteDel) Missing() string { return "" }

func (s *RouteDel) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	return s, &RouteAdd{RouteSpec: s.RouteSpec}, nil
}

func (s *RouteDel) Apply(ctx context.Context, k Kernel) error { return k.DelRoute(ctx, s.RouteSpec) }

// RouteReplace changes a route that exists: the one of its table, prefix
// and interface (and metric) is replaced by Route, e.g. to correct the
// source address hint (src) the kernel gives sockets that do not bind one.
// Prepared, it captures the route as the kernel holds it, so that its undo
// puts exactly that back.
type RouteReplace struct {
	Route RouteSpec `json:"route"`
}

func (s *RouteReplace) Kind() Kind      { return KindRouteReplace }
func (s *RouteReplace) Words() []string { return routeWords("replace", s.Route, false) }
func (s *RouteReplace) Missing() string { return "" }

func (s *RouteReplace) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	old, ok, err := k.FindRoute(ctx, s.Route)
	if err != nil {
		return nil, nil, fmt.Errorf("read table %d: %w", s.Route.Table, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("the route %s by %s in table %d is no longer there: the host changed since it was probed; run the check again", s.Route.Dst, s.Route.Dev, s.Route.Table)
	}
	if !k.HasLink(ctx, s.Route.Dev) {
		return nil, nil, fmt.Errorf("interface %q is gone from %s", s.Route.Dev, k.Describe())
	}
	do := *s
	do.Route.Metric, do.Route.Protocol = old.Metric, old.Protocol
	return &do, &RouteReplace{Route: old}, nil
}

func (s *RouteReplace) Apply(ctx context.Context, k Kernel) error {
	return k.ReplaceRoute(ctx, s.Route)
}

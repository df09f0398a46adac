package playbook

import (
	"fmt"
	"net/netip"

	"asym/evidence"
	"asym/fix"
)

// unboundSource: the kernel would send the flow's direction from another
// address than the flow's own when the socket does not bind one — a route's
// src hint, or the order of the interface's addresses, picks it. A client
// (and a UDP server on a wildcard socket) then sends from an address the
// far end, a cloud fabric or an ISP ingress filter associates with another
// interface, or answers to an address nobody asked. Its fix is the route's
// src hint, not policy routing: the packets leave by the right interface
// and only their source is wrong.
func unboundSource(e *evidence.Evidence) []Finding {
	sp := sender(e)
	h := e.Host
	if sp == nil || sp.Unbound == nil || !sp.Unbound.PrefSrc.IsValid() || !h.Local.IsValid() || sp.Unbound.PrefSrc == h.Local {
		return nil
	}
	if role(e) == evidence.RoleServer && e.Flow.Proto != 17 {
		return nil // a TCP reply leaves from the address the request was sent to, whatever the route says
	}
	u := sp.Unbound
	picked := h.Owner(u.PrefSrc)
	ev := []Line{
		{Probe: sp.Probe, Text: fmt.Sprintf("%s is on %s", h.Local, h.LocalIface)},
		{Probe: sp.Probe, Text: "without a bound source the kernel answers: " + u.Text + "   ← from " + u.PrefSrc.String()},
	}
	if picked != nil {
		ev = append(ev, Line{Probe: "host", Text: fmt.Sprintf("%s belongs to %s", u.PrefSrc, picked.Name)})
	}
	if sp.UnboundFIB != nil {
		ev = append(ev, Line{Probe: sp.Probe, Text: "the route that decides it: " + sp.UnboundFIB.Text})
	}
	return []Finding{{
		ID: "wrong_source_address",
		Title: fmt.Sprintf("A socket that does not bind its address sends to %s from %s, not from %s: the route's source hint picks the wrong address",
			farAddr(e), u.PrefSrc, h.Local),
		Evidence: ev,
		Fix:      srcHintFix(e, sp),
	}}
}

// srcHintFix corrects the source hint of the route the flow uses, when the
// flow's own address belongs to that route's interface (otherwise the route
// is not this address's way out, and binding the application or source
// routing is the fix).
func srcHintFix(e *evidence.Evidence, sp *evidence.PathView) *fix.Fix {
	h, u, fib := e.Host, sp.Unbound, sp.UnboundFIB
	if fib == nil || !fib.Dst.IsValid() || fib.Dev == "" || h.LocalIface != fib.Dev || len(fib.Nexthops) > 0 {
		return &fix.Fix{Summary: "Send from " + h.Local.String() + " on purpose",
			Advice: fmt.Sprintf("The route to %s leaves by %s, which does not hold %s: bind the application to %s, and give %s's address its own table and source rule (source-based routing) so that its traffic leaves by %s.",
				farAddr(e), u.Dev, h.Local, h.Local, h.LocalIface, h.LocalIface)}
	}
	table := fib.Table
	if table == 0 {
		table = evidence.TableMain
	}
	route := fix.RouteSpec{Table: table, Dst: netip.PrefixFrom(fib.Dst.Addr(), fib.Dst.Bits()), Gateway: fib.Gateway, Dev: fib.Dev, PrefSrc: h.Local}
	return &fix.Fix{
		Summary: fmt.Sprintf("Give the route to %s the source hint %s (%s's own address)", fib.Dst, h.Local, fib.Dev),
		Steps:   fix.Steps{&fix.RouteReplace{Route: route}},
		Caveat:  "Connections already open keep their source. Make it permanent where the route is configured (the network manager, DHCP's or cloud-init's route settings), or it comes back with the old hint.",
	}
}

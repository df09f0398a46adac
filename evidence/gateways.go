package evidence

import (
	"maps"
	"net/netip"
	"slices"
)

// NameGateways puts the gateways the person named (or confirmed in a fix
// they were shown) into the evidence, in place of what the gateway probe
// found for those interfaces, saying so.
func (e *Evidence) NameGateways(given map[string]netip.Addr) {
	if len(given) == 0 {
		return
	}
	// A copy: the view is shared with the prober that keeps the evidence.
	// Without the probe's view, one that holds only the named gateways and
	// says the rest is unknown: no analyzer may read its empty lists as
	// "no neighbour, no link".
	nv := NeighView{Report: Report{Probe: ProbeNeighbours, Status: StatusUnavailable, Reason: "the neighbour probe has not run: only the gateways you named are known"}}
	if e.Neighbours != nil {
		nv = *e.Neighbours
	}
	nv.Gateways = slices.Clone(nv.Gateways)
	e.Neighbours = &nv
	for _, dev := range slices.Sorted(maps.Keys(given)) {
		g := Gateway{Iface: dev, Gateway: given[dev], How: "named by you"}
		i := slices.IndexFunc(e.Neighbours.Gateways, func(x Gateway) bool { return x.Iface == dev })
		if i < 0 {
			e.Neighbours.Gateways = append(e.Neighbours.Gateways, g)
			continue
		}
		old := e.Neighbours.Gateways[i]
		switch {
		case old.Gateway == g.Gateway:
			continue // the person confirmed what the probe found: it keeps its source
		case old.Gateway.IsValid():
			g.How += " (the probe found " + old.Gateway.String() + ": " + old.How + ")"
		}
		g.Addr = old.Addr
		e.Neighbours.Gateways[i] = g
	}
}

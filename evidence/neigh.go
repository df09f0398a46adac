package evidence

import "net/netip"

// Neighbour is the kernel's ARP/NDP entry for a next hop.
type Neighbour struct {
	Addr  netip.Addr `json:"addr"`
	Dev   string     `json:"dev"`
	MAC   string     `json:"lladdr,omitempty"`
	State string     `json:"state"` // REACHABLE, STALE, FAILED, …, or "none" when the kernel has no entry
	Text  string     `json:"text"`
}

// NeighView holds the neighbours of the next hops and the MTUs of the
// interfaces in play.
type NeighView struct {
	Report
	Entries []Neighbour `json:"neighbours"`
	Links   []Iface     `json:"links"`
	// Gateways per interface towards the flow's peer, for fixes that give
	// each interface its own table.
	Gateways []Gateway `json:"gateways,omitempty"`
	// Candidates are the resolved neighbours of an interface whose gateway
	// no route names, on its subnet (bounded): the frames of the flow that
	// arrive on it carry one of their MACs, which names the gateway.
	Candidates []Neighbour `json:"gateway_candidates,omitempty"`
}

// Gateway is the router an interface would use to reach the flow's peer.
type Gateway struct {
	Iface   string     `json:"iface"`
	Addr    netip.Addr `json:"addr"`    // the interface's address used as source
	Gateway netip.Addr `json:"gateway"` // invalid when unknown
	How     string     `json:"how"`
	// Source is the file the gateway was read from (a DHCP lease, the
	// network manager's configuration), when it came from one.
	Source string `json:"source,omitempty"`
}

package probes

import (
	"context"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"asym/evidence"
)

// maxCandidates bounds the neighbours kept per interface: a gateway is one
// of a few routers, and a LAN of hundreds says nothing more.
const maxCandidates = 16

// ProbeGatewayCandidates lists, for each interface whose gateway is still
// unknown, its resolved neighbours on its subnet other than the peer. The
// gateway probe gives up when there is more than one; the MAC of the
// frames the flow brings in on that interface picks the right one later
// (playbook's gatewayFor), and the fix pane offers them when nothing does.
func ProbeGatewayCandidates(ctx context.Context, t *Target, h *evidence.HostView, gws []evidence.Gateway, peer netip.Addr) []evidence.Neighbour {
	var out []evidence.Neighbour
	for _, g := range gws {
		ifc := h.Iface(g.Iface)
		if g.Gateway.IsValid() || ifc == nil {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Addr() != g.Addr || p.Masked().Contains(peer) {
				continue
			}
			out = append(out, resolvedNeighbours(ctx, t, ifc, p, peer)...)
		}
	}
	return out
}

func resolvedNeighbours(ctx context.Context, t *Target, ifc *evidence.Iface, subnet netip.Prefix, peer netip.Addr) []evidence.Neighbour {
	family := netlink.FAMILY_V4
	if subnet.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	var ns []netlink.Neigh
	if err := t.withTimeout(ctx, func() (err error) { ns, err = t.nl.NeighList(ifc.Index, family); return }); err != nil {
		return nil
	}
	var out []evidence.Neighbour
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != ifc.Index || len(n.HardwareAddr) == 0 || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
			continue
		}
		if a = a.Unmap(); a == peer || a == subnet.Addr() || !subnet.Masked().Contains(a) {
			continue
		}
		var states []string
		for _, s := range nudNames {
			if uint16(n.State)&s.bit != 0 {
				states = append(states, s.name)
			}
		}
		e := evidence.Neighbour{Addr: a, Dev: ifc.Name, MAC: n.HardwareAddr.String(), State: strings.Join(states, ",")}
		e.Text = a.String() + " dev " + ifc.Name + " lladdr " + e.MAC + " " + e.State
		out = append(out, e)
	}
	// The most recently confirmed first: a REACHABLE router is talking to
	// this host now.
	slices.SortStableFunc(out, func(a, b evidence.Neighbour) int {
		ra, rb := strings.Contains(a.State, "REACHABLE"), strings.Contains(b.State, "REACHABLE")
		switch {
		case ra && !rb:
			return -1
		case rb && !ra:
			return 1
		}
		return a.Addr.Compare(b.Addr)
	})
	if len(out) > maxCandidates {
		out = out[:maxCandidates]
	}
	return out
}

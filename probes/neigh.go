package probes

import (
	"asym/evidence"
	"context"
	"errors"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// NeighQuery is one next hop to look up.
type NeighQuery struct {
	Addr netip.Addr
	Dev  string
}

// ProbeNeighbours looks up each next hop with a targeted RTM_GETNEIGH (no
// dump of the neighbour table) and reads the interfaces' MTU and state.
func ProbeNeighbours(ctx context.Context, t *Target, hops []NeighQuery, ifaces []string) *evidence.NeighView {
	r, start := evidence.Begin("neighbours", "Neighbours of the next hops, MTUs")
	v := &evidence.NeighView{Report: r}
	defer v.Finish(start)
	var cmds []string
	seen := map[NeighQuery]bool{}
	for _, q := range hops {
		if !q.Addr.IsValid() || q.Dev == "" || seen[q] {
			continue
		}
		seen[q] = true
		cmds = append(cmds, t.IPCmd("neigh", "get", q.Addr.String(), "dev", q.Dev))
		n, err := t.neighGet(ctx, q)
		if err != nil {
			v.Fail(err)
			return v
		}
		v.Entries = append(v.Entries, n)
		v.Add("%s", n.Text)
	}
	seenIf := map[string]bool{}
	for _, name := range ifaces {
		if name == "" || seenIf[name] {
			continue
		}
		seenIf[name] = true
		var l netlink.Link
		err := t.withTimeout(ctx, func() (err error) { l, err = t.nl.LinkByName(name); return })
		if err != nil {
			continue
		}
		at := l.Attrs()
		ifc := evidence.Iface{Name: at.Name, Index: at.Index, MTU: at.MTU, Up: at.Flags&unix.IFF_UP != 0, Kind: l.Type()}
		if len(at.HardwareAddr) > 0 {
			ifc.MAC = at.HardwareAddr.String()
		}
		v.Links = append(v.Links, ifc)
		state := "DOWN"
		if ifc.Up {
			state = "UP"
		}
		link := "link/none"
		if ifc.MAC != "" {
			link = "link/ether " + ifc.MAC
		}
		v.Add("%d: %s: mtu %d state %s %s", ifc.Index, ifc.Name, ifc.MTU, state, link)
		cmds = append(cmds, t.IPCmd("link", "show", "dev", name))
	}
	v.Command = strings.Join(cmds, "; ")
	if len(v.Lines) == 0 {
		v.Add("no next hop to look up")
	}
	return v
}

var nudNames = []struct {
	bit  uint16
	name string
}{{netlink.NUD_INCOMPLETE, "INCOMPLETE"}, {netlink.NUD_REACHABLE, "REACHABLE"}, {netlink.NUD_STALE, "STALE"},
	{netlink.NUD_DELAY, "DELAY"}, {netlink.NUD_PROBE, "PROBE"}, {netlink.NUD_FAILED, "FAILED"},
	{netlink.NUD_NOARP, "NOARP"}, {netlink.NUD_PERMANENT, "PERMANENT"}}

func (t *Target) neighGet(ctx context.Context, q NeighQuery) (evidence.Neighbour, error) {
	n := evidence.Neighbour{Addr: q.Addr, Dev: q.Dev, State: "none"}
	l, err := t.nl.LinkByName(q.Dev)
	if err != nil {
		n.Text = q.Addr.String() + " dev " + q.Dev + ": no such interface"
		return n, nil
	}
	family := unix.AF_INET
	if q.Addr.Is6() {
		family = unix.AF_INET6
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETNEIGH, unix.NLM_F_REQUEST)
	req.AddData(&netlink.Ndmsg{Family: uint8(family), Index: uint32(l.Attrs().Index)})
	req.AddData(nl.NewRtAttr(unix.NDA_DST, q.Addr.AsSlice()))
	s, err := t.routeSocket()
	if err != nil {
		return n, err
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s}
	var msgs [][]byte
	err = t.withTimeout(ctx, func() (err error) { msgs, err = req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNEIGH); return })
	switch {
	case errors.Is(err, unix.ENOENT):
		n.Text = q.Addr.String() + " dev " + q.Dev + " (no entry: the kernel has not resolved this next hop)"
		return n, nil
	case err != nil:
		return n, err
	case len(msgs) == 0:
		return n, errors.New("the kernel sent no answer to a neighbour lookup")
	}
	ne, err := netlink.NeighDeserialize(msgs[0])
	if err != nil {
		return n, err
	}
	var states []string
	for _, s := range nudNames {
		if uint16(ne.State)&s.bit != 0 {
			states = append(states, s.name)
		}
	}
	if len(states) > 0 {
		n.State = strings.Join(states, ",")
	}
	if len(ne.HardwareAddr) > 0 {
		n.MAC = ne.HardwareAddr.String()
	}
	n.Text = q.Addr.String() + " dev " + q.Dev
	if n.MAC != "" {
		n.Text += " lladdr " + n.MAC
	}
	n.Text += " " + n.State
	return n, nil
}

// ProbeGateways finds, for each interface, the gateway it would use towards
// peer: a route lookup forced out of that interface (`ip route get PEER from
// ADDR oif IFACE`) names it when any table has a route by that interface;
// otherwise what configured the interface says (its DHCP lease, its network
// manager's files: a second ISP link often has no route at all); otherwise,
// when the interface has exactly one resolved neighbour in its subnet other
// than the peer, that neighbour (its router has likely ARPed for us).
func ProbeGateways(ctx context.Context, t *Target, h *evidence.HostView, peer netip.Addr) []evidence.Gateway {
	var out []evidence.Gateway
	for _, ifc := range h.Ifaces {
		if ifc.Name == "lo" {
			continue
		}
		for _, p := range ifc.Addrs {
			if p.Addr().Is4() != peer.Is4() || p.Addr().IsLinkLocalUnicast() || p.Bits() == p.Addr().BitLen() {
				continue
			}
			g := evidence.Gateway{Iface: ifc.Name, Addr: p.Addr()}
			if p.Masked().Contains(peer) {
				g.How = "the peer is on this interface's subnet: no gateway needed"
				out = append(out, g)
				break
			}
			d, err := t.RouteGet(ctx, evidence.RouteQuery{Dst: peer, Src: p.Addr(), Oif: ifc.Name})
			if err == nil && !d.Failed() && d.Gateway.IsValid() {
				g.Gateway, g.How = d.Gateway, "route by "+ifc.Name+" in table "+evidence.TableName(d.Table)
				out = append(out, g)
				break
			}
			c := configuredGateway(ctx, t, ifc, p)
			if c.gateway.IsValid() {
				g.Gateway, g.How, g.Source = c.gateway, c.how, c.source
			} else if n := soleNeighbour(ctx, t, ifc.Index, p, peer); n.IsValid() {
				g.Gateway, g.How = n, "the only neighbour "+ifc.Name+" has in "+p.Masked().String()+": check that it is the gateway"
			} else {
				g.How = c.unknown(ifc.Name)
			}
			out = append(out, g)
			break
		}
	}
	return out
}

func soleNeighbour(ctx context.Context, t *Target, idx int, subnet netip.Prefix, peer netip.Addr) netip.Addr {
	family := netlink.FAMILY_V4
	if subnet.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	var ns []netlink.Neigh
	if err := t.withTimeout(ctx, func() (err error) { ns, err = t.nl.NeighList(idx, family); return }); err != nil {
		return netip.Addr{}
	}
	var found netip.Addr
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || n.LinkIndex != idx || a.Unmap() == peer || !subnet.Masked().Contains(a.Unmap()) || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 || len(n.HardwareAddr) == 0 {
			continue
		}
		if found.IsValid() {
			return netip.Addr{} // more than one: do not guess
		}
		found = a.Unmap()
	}
	return found
}

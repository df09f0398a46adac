package namespace

// Nexthop objects (`ip nexthop`): vishvananda/netlink v1.3.1 has no nexthop
// API and does not know RTA_NH_ID, so the RTM_NEWNEXTHOP and RTM_NEWROUTE
// messages are built here with its nl package and sent on a route socket
// opened inside the namespace.
//
// Why nexthop objects: on this kernel a plain `nexthop via A nexthop via B`
// route prefers the next hop whose interface owns the packet's source
// address (fib_select_multipath, since "ipv4: prefer multipath nexthop that
// matches source address"), which hides a multihomed host's ECMP failure.
// A route that points at a nexthop group (nexthop_path_fib_result) hashes
// every flow, whatever its source (notes §9).

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// rtaNHID is RTA_NH_ID (include/uapi/linux/rtnetlink.h): a route's nexthop
// object. golang.org/x/sys/unix v0.49.0 does not define it.
const rtaNHID = 30

// nexthopGrpTypeMpath is NEXTHOP_GRP_TYPE_MPATH (include/uapi/linux/nexthop.h):
// a group that hashes flows over its members.
const nexthopGrpTypeMpath = 0

// Nexthop is one gateway nexthop object: `ip nexthop add id ID via Via dev Dev`.
type Nexthop struct {
	ID  uint32
	Via netip.Addr // IPv4
	Dev string
}

// nhMsg is struct nhmsg (include/uapi/linux/nexthop.h), the header of
// RTM_NEWNEXTHOP.
type nhMsg struct{ unix.Nhmsg }

func (m *nhMsg) Len() int { return unix.SizeofNhmsg }

func (m *nhMsg) Serialize() []byte {
	b := []byte{m.Family, m.Scope, m.Protocol, m.Resvd}
	return binary.NativeEndian.AppendUint32(b, m.Flags)
}

// ECMPRoute adds the nexthop objects, a multipath group of them with equal
// weights (`ip nexthop add id <group> group <id1>/<id2>...`) and `<dst>
// nhid <group>` in the main table: `ip route show` then prints the route
// with every next hop (nexthop_compat_mode=1), as an operator would see it.
func ECMPRoute(ns NS, dst netip.Prefix, group uint32, hops ...Nexthop) error {
	var members []byte
	var ids []string
	for _, h := range hops {
		if err := addNexthop(ns, h); err != nil {
			return err
		}
		// struct nexthop_grp: id, weight-1, two reserved fields.
		members = binary.NativeEndian.AppendUint32(members, h.ID)
		members = append(members, 0, 0, 0, 0)
		ids = append(ids, fmt.Sprint(h.ID))
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nhMsg{unix.Nhmsg{Family: unix.AF_UNSPEC}})
	req.AddData(nl.NewRtAttr(unix.NHA_ID, nl.Uint32Attr(group)))
	req.AddData(nl.NewRtAttr(unix.NHA_GROUP, members))
	req.AddData(nl.NewRtAttr(unix.NHA_GROUP_TYPE, nl.Uint16Attr(nexthopGrpTypeMpath)))
	if err := rtnl(ns, req); err != nil {
		return fmt.Errorf("add nexthop id %d group %s in namespace %s: %w", group, strings.Join(ids, "/"), ns.Name, err)
	}
	return routeNH(ns, dst, group)
}

// addNexthop adds one gateway nexthop object.
func addNexthop(ns NS, h Nexthop) error {
	if !h.Via.Is4() {
		return fmt.Errorf("nexthop id %d: gateway %s is not an IPv4 address", h.ID, h.Via)
	}
	nh, err := netlink.NewHandleAt(ns.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink in namespace %s: %w", ns.Name, err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(h.Dev)
	if err != nil {
		return fmt.Errorf("nexthop id %d: no interface %s in namespace %s: %w", h.ID, h.Dev, ns.Name, err)
	}
	gw4 := h.Via.As4()
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nhMsg{unix.Nhmsg{Family: unix.AF_INET, Protocol: unix.RTPROT_BOOT}})
	req.AddData(nl.NewRtAttr(unix.NHA_ID, nl.Uint32Attr(h.ID)))
	req.AddData(nl.NewRtAttr(unix.NHA_OIF, nl.Uint32Attr(uint32(l.Attrs().Index))))
	req.AddData(nl.NewRtAttr(unix.NHA_GATEWAY, gw4[:]))
	if err := rtnl(ns, req); err != nil {
		return fmt.Errorf("add nexthop id %d via %s dev %s in namespace %s: %w", h.ID, h.Via, h.Dev, ns.Name, err)
	}
	return nil
}

// routeNH adds `<dst> nhid <id>` to the main table.
func routeNH(ns NS, dst netip.Prefix, id uint32) error {
	if !dst.IsValid() || !dst.Addr().Is4() {
		return fmt.Errorf("route %s nhid %d: want an IPv4 prefix", dst, id)
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Dst_len: uint8(dst.Bits()), Table: unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT, Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}})
	if dst.Bits() > 0 {
		a := dst.Masked().Addr().As4()
		req.AddData(nl.NewRtAttr(unix.RTA_DST, a[:]))
	}
	req.AddData(nl.NewRtAttr(rtaNHID, nl.Uint32Attr(id)))
	if err := rtnl(ns, req); err != nil {
		return fmt.Errorf("add route %s nhid %d in namespace %s: %w", dst, id, ns.Name, err)
	}
	return nil
}

// rtnl sends one request that wants an acknowledgement on a route socket
// opened inside the namespace.
func rtnl(ns NS, req *nl.NetlinkRequest) error {
	s, err := nl.GetNetlinkSocketAt(ns.Handle, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open a route socket: %w", err)
	}
	defer s.Close()
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

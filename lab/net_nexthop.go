package lab

// Building blocks for nexthop objects (`ip nexthop`): vishvananda/netlink
// v1.3.1 has no nexthop API and does not know RTA_NH_ID, so the
// RTM_NEWNEXTHOP and RTM_NEWROUTE messages are built here with its nl
// package and sent on a route socket opened inside the role's namespace.
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
	"net"
	"net/netip"
	"strings"

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

// nexthop is one nexthop object: `ip nexthop add id <id> via <via> dev <dev>`.
type nexthop struct {
	id  uint32
	via string
	dev string
}

// nhMsg is struct nhmsg (include/uapi/linux/nexthop.h), the header of
// RTM_NEWNEXTHOP.
type nhMsg struct{ unix.Nhmsg }

func (m *nhMsg) Len() int { return unix.SizeofNhmsg }

func (m *nhMsg) Serialize() []byte {
	b := []byte{m.Family, m.Scope, m.Protocol, m.Resvd}
	return binary.NativeEndian.AppendUint32(b, m.Flags)
}

// ecmpRoute adds the nexthop objects, a multipath group of them with equal
// weights (`ip nexthop add id <group> group <id1>/<id2>...`) and `<dst> nhid
// <group>` in the main table: `ip route show` then prints the route with
// both next hops (nexthop_compat_mode=1), as an operator would see it.
func (b *builder) ecmpRoute(role, dst string, group uint32, hops ...nexthop) error {
	var members []byte
	var ids []string
	for _, h := range hops {
		if err := b.nexthop(role, h); err != nil {
			return err
		}
		// struct nexthop_grp: id, weight-1, two reserved fields.
		members = binary.NativeEndian.AppendUint32(members, h.id)
		members = append(members, 0, 0, 0, 0)
		ids = append(ids, fmt.Sprint(h.id))
	}
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nhMsg{unix.Nhmsg{Family: unix.AF_UNSPEC}})
	req.AddData(nl.NewRtAttr(unix.NHA_ID, nl.Uint32Attr(group)))
	req.AddData(nl.NewRtAttr(unix.NHA_GROUP, members))
	req.AddData(nl.NewRtAttr(unix.NHA_GROUP_TYPE, nl.Uint16Attr(nexthopGrpTypeMpath)))
	if err := b.rtnl(role, req); err != nil {
		return fmt.Errorf("add nexthop id %d group %s in namespace %s: %w", group, strings.Join(ids, "/"), b.name(role), err)
	}
	return b.routeNH(role, dst, group)
}

// nexthop adds one gateway nexthop object.
func (b *builder) nexthop(role string, h nexthop) error {
	l, err := b.link(role, h.dev)
	if err != nil {
		return err
	}
	gw, err := netip.ParseAddr(h.via)
	if err != nil || !gw.Is4() {
		return fmt.Errorf("nexthop id %d: gateway %q is not an IPv4 address", h.id, h.via)
	}
	gw4 := gw.As4()
	req := nl.NewNetlinkRequest(unix.RTM_NEWNEXTHOP, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nhMsg{unix.Nhmsg{Family: unix.AF_INET, Protocol: unix.RTPROT_BOOT}})
	req.AddData(nl.NewRtAttr(unix.NHA_ID, nl.Uint32Attr(h.id)))
	req.AddData(nl.NewRtAttr(unix.NHA_OIF, nl.Uint32Attr(uint32(l.Attrs().Index))))
	req.AddData(nl.NewRtAttr(unix.NHA_GATEWAY, gw4[:]))
	if err := b.rtnl(role, req); err != nil {
		return fmt.Errorf("add nexthop id %d via %s dev %s in namespace %s: %w", h.id, h.via, h.dev, b.name(role), err)
	}
	return nil
}

// routeNH adds `<dst> nhid <id>` to the main table.
func (b *builder) routeNH(role, dst string, id uint32) error {
	if dst == "" {
		dst = "0.0.0.0/0"
	}
	_, n, err := net.ParseCIDR(dst)
	if err != nil || n.IP.To4() == nil {
		return fmt.Errorf("route %q nhid %d: want an IPv4 prefix", dst, id)
	}
	bits, _ := n.Mask.Size()
	req := nl.NewNetlinkRequest(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Dst_len: uint8(bits), Table: unix.RT_TABLE_MAIN,
		Protocol: unix.RTPROT_BOOT, Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST}})
	if bits > 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_DST, n.IP.To4()))
	}
	req.AddData(nl.NewRtAttr(rtaNHID, nl.Uint32Attr(id)))
	if err := b.rtnl(role, req); err != nil {
		return fmt.Errorf("add route %s nhid %d in namespace %s: %w", dst, id, b.name(role), err)
	}
	return nil
}

// rtnl sends one request that wants an acknowledgement on a route socket
// opened inside a role's namespace.
func (b *builder) rtnl(role string, req *nl.NetlinkRequest) error {
	h, ok := b.env.handles[role]
	if !ok {
		return fmt.Errorf("namespace %s was not created", b.name(role))
	}
	s, err := nl.GetNetlinkSocketAt(h, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open a route socket: %w", err)
	}
	defer s.Close()
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}}
	_, err = req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

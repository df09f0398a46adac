package lab

// Building blocks for policy routing that sees ports: a rule that selects
// on the protocol and source port, and an output route lookup that carries
// ports (which such rules and a port-hashing ECMP route both answer to).

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// portRule adds `ipproto tcp sport <sport> lookup <table> priority <prio>`.
func (b *builder) portRule(role string, sport uint16, table, prio int) error {
	h, err := b.nl(role)
	if err != nil {
		return err
	}
	if err := h.RuleAdd(newPortRule(sport, table, prio)); err != nil {
		return fmt.Errorf("add rule %d: ipproto tcp sport %d lookup %d in namespace %s: %w", prio, sport, table, b.name(role), err)
	}
	return nil
}

// newPortRule builds `ipproto tcp sport <sport> lookup <table> priority
// <prio>` (from netlink.NewRule: a zero Rule gets EINVAL, notes §1c).
func newPortRule(sport uint16, table, prio int) *netlink.Rule {
	r := netlink.NewRule()
	r.Family = netlink.FAMILY_V4
	r.Priority = prio
	r.Table = table
	r.IPProto = unix.IPPROTO_TCP
	r.Sport = netlink.NewRulePortRange(sport, sport)
	return r
}

// egressIf asks the kernel which interface a TCP packet this namespace
// sends with these addresses and ports leaves by: an output lookup, as `ip
// route get <dst> from <src> ipproto tcp sport <sp> dport <dp>` does.
// vishvananda/netlink's RouteGetWithOptions has no port options, so the
// request is built by hand (notes §1g). The kernel builds a synthetic skb
// with these ports (inet_rtm_getroute_build_skb): rules that select on ports
// see them, and a multipath route with fib_multipath_hash_policy 1 hashes
// the same fields it hashes for the socket's own packets.
func (b *builder) egressIf(role string, src, dst netip.Addr, sport, dport uint16) (string, error) {
	h, ok := b.env.handles[role]
	if !ok {
		return "", fmt.Errorf("route lookup in %s: namespace was not created", b.name(role))
	}
	s, err := nl.GetNetlinkSocketAt(h, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return "", fmt.Errorf("open a route socket in namespace %s: %w", b.name(role), err)
	}
	defer s.Close()
	req := &nl.NetlinkRequest{
		NlMsghdr: unix.NlMsghdr{Len: unix.SizeofNlMsghdr, Type: unix.RTM_GETROUTE, Flags: unix.NLM_F_REQUEST},
		Sockets:  map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: {Socket: s}},
	}
	// A bare rtmsg, as iproute2 sends (see outputIf).
	req.AddData(&nl.RtMsg{RtMsg: unix.RtMsg{Family: unix.AF_INET, Dst_len: 32, Src_len: 32}})
	s4, d4 := src.As4(), dst.As4()
	req.AddData(nl.NewRtAttr(unix.RTA_DST, d4[:]))
	req.AddData(nl.NewRtAttr(unix.RTA_SRC, s4[:]))
	req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{unix.IPPROTO_TCP}))
	req.AddData(nl.NewRtAttr(unix.RTA_SPORT, binary.BigEndian.AppendUint16(nil, sport)))
	req.AddData(nl.NewRtAttr(unix.RTA_DPORT, binary.BigEndian.AppendUint16(nil, dport)))
	msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
	if err != nil {
		return "", fmt.Errorf("route get %s from %s sport %d dport %d in namespace %s: %w", dst, src, sport, dport, b.name(role), err)
	}
	for _, m := range msgs {
		if len(m) < unix.SizeofRtMsg {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[unix.SizeofRtMsg:])
		if err != nil {
			return "", fmt.Errorf("parse the route lookup answer in namespace %s: %w", b.name(role), err)
		}
		for _, a := range attrs {
			if a.Attr.Type != unix.RTA_OIF || len(a.Value) < 4 {
				continue
			}
			idx := int(binary.NativeEndian.Uint32(a.Value))
			hl, err := b.nl(role)
			if err != nil {
				return "", err
			}
			l, err := hl.LinkByIndex(idx)
			if err != nil {
				return "", fmt.Errorf("interface %d in namespace %s: %w", idx, b.name(role), err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", fmt.Errorf("route get %s from %s in namespace %s: the answer names no output interface", dst, src, b.name(role))
}

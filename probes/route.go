package probes

import (
	"asym/evidence"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

var routeTypes = map[uint8]string{
	unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast",
	unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole",
	unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw",
	unix.RTN_NAT: "nat",
}

// RouteGet asks the kernel one routing question inside the target. It never
// fails the run: a refusal is recorded in the decision.
func (t *Target) RouteGet(ctx context.Context, q evidence.RouteQuery) (evidence.RouteDecision, error) {
	d := evidence.RouteDecision{Query: q}
	family := unix.AF_INET
	alen := 4
	if q.Dst.Is6() {
		family, alen = unix.AF_INET6, 16
	}
	req := nl.NewNetlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST)
	msg := &nl.RtMsg{RtMsg: unix.RtMsg{Family: uint8(family), Dst_len: uint8(alen * 8)}}
	if q.FIBMatch {
		msg.Flags |= unix.RTM_F_FIB_MATCH
	}
	msg.Flags |= unix.RTM_F_LOOKUP_TABLE
	req.AddData(msg)
	req.AddData(nl.NewRtAttr(unix.RTA_DST, q.Dst.AsSlice()))
	if q.Src.IsValid() {
		msg.Src_len = uint8(alen * 8)
		req.AddData(nl.NewRtAttr(unix.RTA_SRC, q.Src.AsSlice()))
	}
	for _, ifc := range []struct {
		name string
		attr int
	}{{q.Iif, unix.RTA_IIF}, {q.Oif, unix.RTA_OIF}} {
		if ifc.name == "" {
			continue
		}
		l, err := t.nl.LinkByName(ifc.name)
		if err != nil {
			return d, fmt.Errorf("interface %q is not in %s: %w", ifc.name, t, err)
		}
		req.AddData(nl.NewRtAttr(ifc.attr, nl.Uint32Attr(uint32(l.Attrs().Index))))
	}
	if q.Mark != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_MARK, nl.Uint32Attr(q.Mark)))
	}
	// Protocol and ports let rules that match ipproto/sport/dport (and the
	// L4 multipath hash) see the flow: the kernel builds a synthetic skb from
	// them (inet_rtm_getroute_build_skb). The library has no option for these.
	if q.Proto != 0 {
		req.AddData(nl.NewRtAttr(unix.RTA_IP_PROTO, []byte{q.Proto}))
		if q.Sport != 0 {
			req.AddData(nl.NewRtAttr(unix.RTA_SPORT, be16(q.Sport)))
		}
		if q.Dport != 0 {
			req.AddData(nl.NewRtAttr(unix.RTA_DPORT, be16(q.Dport)))
		}
	}
	s, err := t.routeSocket()
	if err != nil {
		return d, err
	}
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_ROUTE: s}
	type answer struct {
		msgs [][]byte
		err  error
	}
	c := make(chan answer, 1)
	go func() {
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWROUTE)
		c <- answer{msgs, err}
	}()
	var a answer
	select {
	case a = <-c:
	case <-ctx.Done():
		return d, ctx.Err()
	}
	if a.err != nil {
		var errno syscall.Errno
		if errors.As(a.err, &errno) {
			// A route lookup needs no privilege: EACCES is the kernel's
			// answer for a prohibit route or rule, not a refusal to ask.
			if errno == unix.EPERM {
				return d, a.err
			}
			d.Errno, d.Error = errno, errnoText(errno)
			d.Text = "RTNETLINK answers: " + capitalize(errno.Error())
			return d, nil
		}
		return d, a.err
	}
	if len(a.msgs) == 0 {
		return d, errors.New("the kernel sent no answer to a route lookup")
	}
	t.gotRoutes.Add(int64(len(a.msgs)))
	if err := t.parseRoute(a.msgs[0], &d); err != nil {
		return d, err
	}
	d.Text = d.Render()
	return d, nil
}

func (t *Target) parseRoute(m []byte, d *evidence.RouteDecision) error {
	msg := nl.DeserializeRtMsg(m)
	attrs, err := nl.ParseRouteAttr(m[msg.Len():])
	if err != nil {
		return fmt.Errorf("parse route answer: %w", err)
	}
	d.Type = routeTypes[msg.Type]
	d.Table = int(msg.Table)
	for _, a := range attrs {
		switch a.Attr.Type {
		case unix.RTA_TABLE:
			d.Table = int(native.Uint32(a.Value))
		case unix.RTA_OIF:
			d.DevIdx = int(native.Uint32(a.Value))
			d.Dev = t.ifName(d.DevIdx)
		case unix.RTA_IIF:
			d.Iif = t.ifName(int(native.Uint32(a.Value)))
		case unix.RTA_GATEWAY:
			d.Gateway, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_PREFSRC:
			d.PrefSrc, _ = netip.AddrFromSlice(a.Value)
		case unix.RTA_DST:
			if ip, ok := netip.AddrFromSlice(a.Value); ok {
				d.Dst = netip.PrefixFrom(ip, int(msg.Dst_len))
			}
		case unix.RTA_METRICS:
			metrics, err := nl.ParseRouteAttr(a.Value)
			if err == nil {
				for _, mt := range metrics {
					if mt.Attr.Type == unix.RTAX_MTU && len(mt.Value) >= 4 {
						d.MTU = native.Uint32(mt.Value)
					}
				}
			}
		case unix.RTA_MULTIPATH:
			d.Nexthops = t.parseMultipath(a.Value)
		}
	}
	if d.Gateway.IsValid() {
		d.Gateway = d.Gateway.Unmap()
	}
	if d.Dst.IsValid() && msg.Dst_len == 0 && !d.Query.FIBMatch {
		d.Dst = netip.Prefix{}
	}
	// A default route has no RTA_DST: fibmatch answers it with Dst_len 0,
	// which is the prefix ::/0 or 0.0.0.0/0 (ip route get fibmatch prints
	// "default").
	if d.Query.FIBMatch && !d.Dst.IsValid() && msg.Dst_len == 0 && d.Query.Dst.IsValid() {
		d.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		if d.Query.Dst.Is4() {
			d.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	return nil
}

// parseMultipath reads a list of struct rtnexthop, each followed by its attributes.
func (t *Target) parseMultipath(b []byte) []evidence.Nexthop {
	var out []evidence.Nexthop
	for len(b) >= unix.SizeofRtNexthop {
		nh := nl.DeserializeRtNexthop(b)
		l := int(nh.RtNexthop.Len)
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		h := evidence.Nexthop{Dev: t.ifName(int(nh.Ifindex)), Weight: int(nh.Hops) + 1, Dead: nh.Flags&unix.RTNH_F_DEAD != 0}
		if attrs, err := nl.ParseRouteAttr(b[unix.SizeofRtNexthop:l]); err == nil {
			for _, a := range attrs {
				if a.Attr.Type == unix.RTA_GATEWAY {
					h.Gateway, _ = netip.AddrFromSlice(a.Value)
					h.Gateway = h.Gateway.Unmap()
				}
			}
		}
		out = append(out, h)
		b = b[(l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1):]
	}
	return out
}

func (t *Target) routeSocket() (*nl.SocketHandle, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.raw != nil {
		return t.raw, nil
	}
	ns := t.ns
	if t.Kind == "host" {
		ns = netns.None() // open in the current namespace without setns (no root needed)
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open a route socket in %s: %w", t, err)
	}
	// Bound every answer: a lookup never blocks longer than this.
	tv := unix.NsecToTimeval(probeSocketTimeout.Nanoseconds())
	s.SetReceiveTimeout(&tv)
	s.SetSendTimeout(&tv)
	t.raw = &nl.SocketHandle{Socket: s}
	return t.raw, nil
}

// ifName maps an index to a name inside the target (not the caller's namespace).
func (t *Target) ifName(idx int) string {
	if idx == 0 {
		return ""
	}
	t.mu.Lock()
	name, ok := t.names[idx]
	t.mu.Unlock()
	if ok {
		return name
	}
	l, err := t.nl.LinkByIndex(idx)
	if err != nil {
		return "if" + strconv.Itoa(idx)
	}
	name = l.Attrs().Name
	t.mu.Lock()
	if t.names == nil {
		t.names = map[int]string{}
	}
	t.names[idx] = name
	t.mu.Unlock()
	return name
}

var native = binary.NativeEndian

func be16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func errnoText(e syscall.Errno) string {
	name := unix.ErrnoName(e)
	if name == "" {
		name = "errno " + strconv.Itoa(int(e))
	}
	return name + " (" + e.Error() + ")"
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// ipNet converts for netlink's types.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func prefixOf(n *net.IPNet) netip.Prefix {
	if n == nil {
		return netip.Prefix{}
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), ones)
}

package probes

import (
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

// RouteQuery is one question to the kernel's routing decision, the same as
// `ip route get DST from SRC [iif IFACE] [ipproto P sport S dport D] [mark M]`.
// With Iif set it is an INPUT lookup: the kernel simulates a packet arriving
// on that interface, reverse-path filter included.
type RouteQuery struct {
	Dst      netip.Addr `json:"dst"`
	Src      netip.Addr `json:"src,omitzero"`
	Iif      string     `json:"iif,omitempty"`
	Oif      string     `json:"oif,omitempty"`
	Mark     uint32     `json:"mark,omitempty"`
	Proto    uint8      `json:"ipproto,omitempty"`
	Sport    uint16     `json:"sport,omitempty"`
	Dport    uint16     `json:"dport,omitempty"`
	FIBMatch bool       `json:"fibmatch,omitempty"`
}

// Words renders the query as iproute2 arguments after "ip".
func (q RouteQuery) Words() []string {
	w := []string{"route", "get"}
	if q.FIBMatch {
		w = append(w, "fibmatch")
	}
	w = append(w, q.Dst.String())
	if q.Src.IsValid() {
		w = append(w, "from", q.Src.String())
	}
	if q.Iif != "" {
		w = append(w, "iif", q.Iif)
	}
	if q.Oif != "" {
		w = append(w, "oif", q.Oif)
	}
	if q.Mark != 0 {
		w = append(w, "mark", "0x"+strconv.FormatUint(uint64(q.Mark), 16))
	}
	if q.Proto != 0 {
		w = append(w, "ipproto", protoName(q.Proto))
		if q.Sport != 0 {
			w = append(w, "sport", strconv.Itoa(int(q.Sport)))
		}
		if q.Dport != 0 {
			w = append(w, "dport", strconv.Itoa(int(q.Dport)))
		}
	}
	return w
}

// Nexthop is one path of a multipath (ECMP) route.
type Nexthop struct {
	Dev     string     `json:"dev"`
	Gateway netip.Addr `json:"via,omitzero"`
	Weight  int        `json:"weight"`
	Dead    bool       `json:"dead,omitempty"`
}

// RouteDecision is the kernel's answer to a RouteQuery.
type RouteDecision struct {
	Query RouteQuery `json:"query"`
	// Errno is set when the kernel refused: for an input lookup EINVAL
	// (Linux ≥ 6.13) or EXDEV (older) mean the reverse-path filter rejected
	// the packet; ENETUNREACH/EHOSTUNREACH mean no route.
	Errno    syscall.Errno `json:"errno,omitempty"`
	Error    string        `json:"error,omitempty"`
	Type     string        `json:"type,omitempty"` // unicast, local, broadcast, unreachable, blackhole, prohibit, …
	Table    int           `json:"table,omitempty"`
	Dst      netip.Prefix  `json:"dst_prefix,omitzero"` // with fibmatch: the FIB entry that matched
	Dev      string        `json:"dev,omitempty"`       // output interface
	DevIdx   int           `json:"-"`
	Iif      string        `json:"iif,omitempty"`
	Gateway  netip.Addr    `json:"via,omitzero"`
	PrefSrc  netip.Addr    `json:"prefsrc,omitzero"`
	MTU      uint32        `json:"mtu,omitempty"` // cached path MTU (route exception), 0 when none
	Nexthops []Nexthop     `json:"nexthops,omitempty"`
	// Text is the answer in `ip route get` format.
	Text string `json:"text"`
}

// Failed reports whether the kernel refused the lookup.
func (d *RouteDecision) Failed() bool { return d.Errno != 0 }

// RPFReject reports whether an input lookup failed the way a reverse-path
// filter rejection does: EXDEV on older kernels, EINVAL since the 6.13
// drop-reason rework made inet_rtm_getroute return EINVAL for any input failure.
func (d *RouteDecision) RPFReject() bool {
	return d.Query.Iif != "" && (d.Errno == unix.EXDEV || d.Errno == unix.EINVAL)
}

// Local reports whether the kernel delivers the packet to this host.
func (d *RouteDecision) Local() bool { return d.Type == "local" }

// NextHop is where the packet goes next: the gateway, or the destination on-link.
func (d *RouteDecision) NextHop() netip.Addr {
	if d.Gateway.IsValid() {
		return d.Gateway
	}
	return d.Query.Dst
}

var routeTypes = map[uint8]string{
	unix.RTN_UNICAST: "unicast", unix.RTN_LOCAL: "local", unix.RTN_BROADCAST: "broadcast",
	unix.RTN_ANYCAST: "anycast", unix.RTN_MULTICAST: "multicast", unix.RTN_BLACKHOLE: "blackhole",
	unix.RTN_UNREACHABLE: "unreachable", unix.RTN_PROHIBIT: "prohibit", unix.RTN_THROW: "throw",
	unix.RTN_NAT: "nat",
}

// RouteGet asks the kernel one routing question inside the target. It never
// fails the run: a refusal is recorded in the decision.
func (t *Target) RouteGet(ctx context.Context, q RouteQuery) (RouteDecision, error) {
	d := RouteDecision{Query: q}
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
			if errno == unix.EPERM || errno == unix.EACCES {
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
	d.Text = d.render()
	return d, nil
}

func (t *Target) parseRoute(m []byte, d *RouteDecision) error {
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
	return nil
}

// parseMultipath reads a list of struct rtnexthop, each followed by its attributes.
func (t *Target) parseMultipath(b []byte) []Nexthop {
	var out []Nexthop
	for len(b) >= unix.SizeofRtNexthop {
		nh := nl.DeserializeRtNexthop(b)
		l := int(nh.RtNexthop.Len)
		if l < unix.SizeofRtNexthop || l > len(b) {
			break
		}
		h := Nexthop{Dev: t.ifName(int(nh.Ifindex)), Weight: int(nh.Hops) + 1, Dead: nh.Flags&unix.RTNH_F_DEAD != 0}
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

// render prints the decision the way `ip route get` does.
func (d *RouteDecision) render() string {
	var b strings.Builder
	if d.Type != "" && d.Type != "unicast" {
		b.WriteString(d.Type + " ")
	}
	if d.Dst.IsValid() && d.Query.FIBMatch {
		if d.Dst.Bits() == 0 {
			b.WriteString("default")
		} else {
			b.WriteString(d.Dst.String())
		}
	} else {
		b.WriteString(d.Query.Dst.String())
	}
	if d.Query.Src.IsValid() && !d.Query.FIBMatch {
		b.WriteString(" from " + d.Query.Src.String())
	}
	if d.Gateway.IsValid() {
		b.WriteString(" via " + d.Gateway.String())
	}
	if d.Dev != "" {
		b.WriteString(" dev " + d.Dev)
	}
	for _, nh := range d.Nexthops {
		b.WriteString(" nexthop")
		if nh.Gateway.IsValid() {
			b.WriteString(" via " + nh.Gateway.String())
		}
		b.WriteString(" dev " + nh.Dev + " weight " + strconv.Itoa(nh.Weight))
		if nh.Dead {
			b.WriteString(" dead")
		}
	}
	if d.Table != 0 {
		b.WriteString(" table " + TableName(d.Table))
	}
	if d.PrefSrc.IsValid() {
		b.WriteString(" src " + d.PrefSrc.String())
	}
	if d.Query.Iif != "" && !d.Query.FIBMatch {
		b.WriteString(" iif " + d.Query.Iif)
	}
	if d.MTU != 0 {
		b.WriteString(" cache expires mtu " + strconv.Itoa(int(d.MTU)))
	}
	return b.String()
}

// TableName renders a table id the way ip does for the reserved ones.
func TableName(id int) string {
	switch id {
	case unix.RT_TABLE_MAIN:
		return "main"
	case unix.RT_TABLE_LOCAL:
		return "local"
	case unix.RT_TABLE_DEFAULT:
		return "default"
	}
	return strconv.Itoa(id)
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

// protoName names a protocol as iproute2 and nft do.
func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "ipv6-icmp"
	case unix.IPPROTO_SCTP:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

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

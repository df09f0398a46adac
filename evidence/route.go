package evidence

import (
	"net/netip"
	"strconv"
	"strings"
	"syscall"
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
		w = append(w, "ipproto", ProtoName(q.Proto))
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
	return d.Query.Iif != "" && (d.Errno == syscall.EXDEV || d.Errno == syscall.EINVAL)
}

// Local reports whether the kernel delivers the packet to this host.
func (d *RouteDecision) Local() bool { return d.Type == "local" }

// Refused reports whether the route itself ends the packet: a blackhole,
// unreachable or prohibit route.
func (d *RouteDecision) Refused() bool {
	return d.Type == "blackhole" || d.Type == "unreachable" || d.Type == "prohibit"
}

// NextHop is where the packet goes next: the gateway, or the destination on-link.
func (d *RouteDecision) NextHop() netip.Addr {
	if d.Gateway.IsValid() {
		return d.Gateway
	}
	return d.Query.Dst
}

// Render prints the decision the way `ip route get` does.
func (d *RouteDecision) Render() string {
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

// RPFilter is the reverse-path filter setting for the interface a packet
// arrives on, with the value the kernel actually uses: max(all, interface).
type RPFilter struct {
	Iface     string `json:"iface"`
	All       int    `json:"all"`
	Dev       int    `json:"dev"`
	Effective int    `json:"effective"`
}

// RPFilterMode names an rp_filter value.
func RPFilterMode(v int) string {
	switch v {
	case 0:
		return "off"
	case 1:
		return "strict"
	case 2:
		return "loose"
	}
	return "unknown (" + strconv.Itoa(v) + ")"
}

// Direction is one way of the flow.
type Direction string

const (
	DirRequest Direction = "request" // as the client sent it
	DirReply   Direction = "reply"   // from the server back to the client
)

// IngressSource says how asym knows where a packet arrives.
type IngressSource string

const (
	IngressGiven     IngressSource = "given"      // the person said so (--iif)
	IngressOwner     IngressSource = "owner"      // the interface that holds the flow's local address
	IngressRouteBack IngressSource = "route-back" // the interface this host routes the sender's address through
	IngressEgress    IngressSource = "egress"     // where the request leaves, so where a symmetric reply comes back
)

// PathView is one direction of the flow as this host handles it: which
// interface it arrives on (input lookups), what the kernel decides, and the
// FIB entry behind the decision (all next hops, for ECMP).
type PathView struct {
	Report
	Direction  Direction      `json:"direction"` // "request" or "reply"
	Ingress    string         `json:"ingress,omitempty"`
	IngressWhy string         `json:"ingress_why,omitempty"` // in words, for people
	IngressBy  IngressSource  `json:"ingress_by,omitempty"`  // for analyzers
	Decision   RouteDecision  `json:"decision"`
	FIB        *RouteDecision `json:"fib,omitempty"`
	RPFilter   *RPFilter      `json:"rp_filter,omitempty"`
	Packet     Packet         `json:"packet"` // what rule selection sees
	// ReversePath, for input lookups, is the route this host would use to
	// send back to the packet's source from the packet's destination: the
	// question the reverse-path filter asks (fib_validate_source).
	ReversePath *RouteDecision `json:"reverse_path,omitempty"`
	// Egress is where the packet leaves this host ("" when it is delivered
	// locally or refused).
	Egress string `json:"egress,omitempty"`
	// Unbound, for the direction this host sends, is the kernel's choice
	// for a socket that does not bind its source address (route get DST
	// without from): the source it would pick (PrefSrc) and the way out.
	// A client, and a UDP server on a wildcard socket, send from that.
	Unbound *RouteDecision `json:"unbound,omitempty"`
	// UnboundFIB is the route behind Unbound (fibmatch): the one whose src
	// hint to correct.
	UnboundFIB *RouteDecision `json:"unbound_fib,omitempty"`
	// Refusers, when the kernel refused the decision, are the routes of
	// the kind that refuses it (blackhole, unreachable or prohibit) whose
	// prefix holds the destination, in any table, the longest first: what
	// ended the packet, asked of the kernel by route type.
	Refusers []Refuser `json:"refusers,omitempty"`
}

// Refuser is a route that ends the packets it matches, with its table.
type Refuser struct {
	Table int   `json:"table"`
	Route Route `json:"route"`
}

// Refusal says how the kernel refused a decision: "blackhole",
// "unreachable", "prohibit" (a route or a rule of that kind), "no route",
// or "" when it did not refuse, or when the error does not tell (an input
// lookup's EINVAL is also the reverse-path filter's answer).
func (d *RouteDecision) Refusal() string {
	switch {
	case d.Refused():
		return d.Type
	case d.Errno == syscall.EHOSTUNREACH:
		return "unreachable"
	case d.Errno == syscall.EACCES:
		return "prohibit"
	case d.Errno == syscall.ENETUNREACH:
		return "no route"
	case d.Errno == syscall.EINVAL && d.Query.Iif == "":
		return "blackhole" // an output lookup: ip_route_output's answer to a blackhole
	}
	return ""
}

// Input reports whether the decision simulates a packet arriving.
func (p *PathView) Input() bool { return p.Decision.Query.Iif != "" }

// IngressGivenByPerson reports whether the person named the ingress
// (--iif), including evidence recorded before IngressBy existed.
func (p *PathView) IngressGivenByPerson() bool {
	return p.IngressBy == IngressGiven || (p.IngressBy == "" && strings.HasPrefix(p.IngressWhy, "given"))
}

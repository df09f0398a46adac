package probes

import (
	"context"
	"strconv"
	"strings"

	"asym/flow"
)

// RPFilter is the reverse-path filter setting for the interface a packet
// arrives on, with the value the kernel actually uses: max(all, interface).
type RPFilter struct {
	Iface     string `json:"iface"`
	All       int    `json:"all"`
	Dev       int    `json:"dev"`
	Effective int    `json:"effective"`
}

// PathView is one direction of the flow as this host handles it: which
// interface it arrives on (input lookups), what the kernel decides, and the
// FIB entry behind the decision (all next hops, for ECMP).
type PathView struct {
	Report
	Direction  string         `json:"direction"` // "request" or "reply"
	Ingress    string         `json:"ingress,omitempty"`
	IngressWhy string         `json:"ingress_why,omitempty"`
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
}

// Input reports whether the decision simulates a packet arriving.
func (p *PathView) Input() bool { return p.Decision.Query.Iif != "" }

// probePath asks the kernel about one direction of the flow.
//   - request on the client: output lookup (this host sends it)
//   - request elsewhere: input lookup on the interface it arrives on
//   - reply on the server: output lookup
//   - reply elsewhere: input lookup on the interface the request left by,
//     because that is where a symmetric reply comes back
func probePath(ctx context.Context, t *Target, f flow.Flow, h *HostView, dir string, ingress, ingressWhy string) *PathView {
	title := "Request route decision"
	if dir == "reply" {
		title = "Reply route decision"
	}
	r, start := begin("route."+dir, title)
	p := &PathView{Report: r, Direction: dir}
	defer p.finish(start)
	pk := f
	if dir == "reply" {
		pk = f.Reverse()
	}
	q := RouteQuery{Dst: pk.Dst.Addr(), Src: pk.Src.Addr(), Proto: uint8(pk.Proto), Sport: pk.Src.Port(), Dport: pk.Dst.Port()}
	if !pk.Proto.HasPorts() {
		q.Sport, q.Dport = 0, 0
	}
	sends := (dir == "request" && h.Role == RoleClient) || (dir == "reply" && h.Role == RoleServer)
	if !sends {
		if ingress == "" {
			p.Fail(Unavailable("asym cannot tell which interface the %s arrives on: give it with --iif", dir))
			return p
		}
		q.Iif = ingress
		p.Ingress, p.IngressWhy = ingress, ingressWhy
	}
	p.Packet = Packet{Src: q.Src, Dst: q.Dst, Iif: q.Iif, Proto: q.Proto, Sport: q.Sport, Dport: q.Dport}
	if sends {
		p.Packet.Iif = "lo"
	}
	d, err := t.RouteGet(ctx, q)
	if err != nil {
		p.Fail(err)
		return p
	}
	p.Decision = d
	p.Command = t.IPCmd(q.Words()...)
	p.Add("%s", d.Text)
	if !d.Failed() && !d.Local() && d.Type != "blackhole" && d.Type != "unreachable" && d.Type != "prohibit" {
		p.Egress = d.Dev
	}
	if q.Iif != "" {
		p.Add("# the %s arrives on %s: %s", dir, ingress, ingressWhy)
		var rp *RPFilter
		if q.Dst.Is4() { // IPv6 has no rp_filter sysctl; its RPF lives in netfilter
			rp = t.readRPFilter(ctx, ingress)
		}
		p.RPFilter = rp
		if rp != nil {
			p.Add("# rp_filter on %s is %s: max(all=%d, %s=%d)", ingress, RPFilterMode(rp.Effective), rp.All, ingress, rp.Dev)
		}
		if d.RPFReject() && rp != nil && rp.Effective == 1 {
			p.Add("# the kernel refuses this packet: strict reverse-path filter (the way back to %s does not leave by %s)", q.Src, ingress)
		}
		rq := RouteQuery{Dst: q.Src, Proto: q.Proto, Sport: q.Dport, Dport: q.Sport}
		if h.Owner(q.Dst) != nil {
			rq.Src = q.Dst // a local destination is the source of the way back
		}
		if rd, err := t.RouteGet(ctx, rq); err == nil {
			p.ReversePath = &rd
			p.Add("$ %s", t.IPCmd(rq.Words()...))
			p.Add("%s", rd.Text)
			if rd.Dev != "" && rd.Dev != ingress {
				p.Add("# the way back to %s leaves by %s, not by %s where the %s arrives", q.Src, rd.Dev, ingress, dir)
			}
		}
	}
	// The FIB entry behind the decision shows every next hop (ECMP), which
	// the resolved decision hides.
	if !d.Failed() && !d.Local() {
		fq := RouteQuery{Dst: q.Dst, Src: q.Src, Iif: q.Iif, Proto: q.Proto, Sport: q.Sport, Dport: q.Dport, FIBMatch: true}
		if fd, err := t.RouteGet(ctx, fq); err == nil && !fd.Failed() {
			p.FIB = &fd
			p.Add("$ %s", t.IPCmd(fq.Words()...))
			p.Add("%s", fd.Text)
		}
	}
	return p
}

func (t *Target) readRPFilter(ctx context.Context, iface string) *RPFilter {
	all, dev := "sys/net/ipv4/conf/all/rp_filter", "sys/net/ipv4/conf/"+iface+"/rp_filter"
	got, err := t.ReadProc(ctx, all, dev)
	if err != nil || got[all] == "" || strings.ContainsRune(iface, '/') {
		return nil
	}
	a, _ := strconv.Atoi(strings.TrimSpace(got[all]))
	d, _ := strconv.Atoi(strings.TrimSpace(got[dev]))
	return &RPFilter{Iface: iface, All: a, Dev: d, Effective: max(a, d)}
}

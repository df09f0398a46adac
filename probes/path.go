package probes

import (
	"context"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"
)

// probePath asks the kernel about one direction of the flow.
//   - request on the client: output lookup (this host sends it)
//   - request elsewhere: input lookup on the interface it arrives on
//   - reply on the server: output lookup
//   - reply elsewhere: input lookup on the interface the request left by,
//     because that is where a symmetric reply comes back
//
// ingress is where asym takes a packet to arrive, and how it knows.
type ingress struct {
	iface, why string
	by         evidence.IngressSource
}

func probePath(ctx context.Context, t *Target, f flow.Flow, h *evidence.HostView, dir evidence.Direction, in ingress) *evidence.PathView {
	id, title := evidence.ProbeRequest, "Request route decision"
	if dir == evidence.DirReply {
		id, title = evidence.ProbeReply, "Reply route decision"
	}
	r, start := evidence.Begin(id, title)
	p := &evidence.PathView{Report: r, Direction: dir}
	defer p.Finish(start)
	pk := f
	if dir == evidence.DirReply {
		pk = f.Reverse()
	}
	q := evidence.RouteQuery{Dst: pk.Dst.Addr(), Src: pk.Src.Addr(), Proto: uint8(pk.Proto), Sport: pk.Src.Port(), Dport: pk.Dst.Port()}
	if !pk.Proto.HasPorts() {
		q.Sport, q.Dport = 0, 0
	}
	sends := (dir == evidence.DirRequest && h.Role == evidence.RoleClient) || (dir == evidence.DirReply && h.Role == evidence.RoleServer)
	if !sends {
		switch {
		case in.iface == "" && h.Role == evidence.RoleOffPath:
			p.Fail(evidence.Unavailable("this host is not on the flow's path: it holds neither address and does not forward (give --iif to ask how it would route the %s anyway)", dir))
			return p
		case in.iface == "":
			p.Fail(evidence.Unavailable("asym cannot tell which interface the %s arrives on: give it with --iif", dir))
			return p
		}
		q.Iif = in.iface
		p.Ingress, p.IngressWhy, p.IngressBy = in.iface, in.why, in.by
	}
	p.Packet = evidence.Packet{Src: q.Src, Dst: q.Dst, Iif: q.Iif, Proto: q.Proto, Sport: q.Sport, Dport: q.Dport}
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
	if kind := refusalToSearch(d); kind != "" {
		findRefusers(ctx, t, p, kind)
	}
	if !d.Failed() && !d.Local() && d.Type != "blackhole" && d.Type != "unreachable" && d.Type != "prohibit" {
		p.Egress = d.Dev
	}
	if sends && !d.Failed() {
		p.Unbound = unboundChoice(ctx, t, q, p)
	}
	if q.Iif != "" {
		p.Add("# the %s arrives on %s: %s", dir, in.iface, in.why)
		var rp *evidence.RPFilter
		if q.Dst.Is4() { // IPv6 has no rp_filter sysctl; its RPF lives in netfilter
			rp = t.readRPFilter(ctx, in.iface)
		}
		p.RPFilter = rp
		if rp != nil {
			p.Add("# rp_filter on %s is %s: max(all=%d, %s=%d)", in.iface, evidence.RPFilterMode(rp.Effective), rp.All, in.iface, rp.Dev)
		}
		if d.RPFReject() && rp != nil && rp.Effective == 1 {
			p.Add("# the kernel refuses this packet: strict reverse-path filter (the way back to %s does not leave by %s)", q.Src, in.iface)
		}
		rq := evidence.RouteQuery{Dst: q.Src, Proto: q.Proto, Sport: q.Dport, Dport: q.Sport}
		if h.Owner(q.Dst) != nil {
			rq.Src = q.Dst // a local destination is the source of the way back
		}
		if rd, err := t.RouteGet(ctx, rq); err == nil {
			p.ReversePath = &rd
			p.Add("$ %s", t.IPCmd(rq.Words()...))
			p.Add("%s", rd.Text)
			if rd.Dev != "" && rd.Dev != in.iface {
				p.Add("# the way back to %s leaves by %s, not by %s where the %s arrives", q.Src, rd.Dev, in.iface, dir)
			}
		}
	}
	// The FIB entry behind the decision shows every next hop (ECMP), which
	// the resolved decision hides.
	if !d.Failed() && !d.Local() {
		fq := evidence.RouteQuery{Dst: q.Dst, Src: q.Src, Iif: q.Iif, Proto: q.Proto, Sport: q.Sport, Dport: q.Dport, FIBMatch: true}
		if fd, err := t.RouteGet(ctx, fq); err == nil && !fd.Failed() {
			p.FIB = &fd
			p.Add("$ %s", t.IPCmd(fq.Words()...))
			p.Add("%s", fd.Text)
		}
	}
	return p
}

// refusalToSearch is the kind of route that may have refused the decision,
// as the error says it. An input lookup's EINVAL is not searched: since
// 6.13 it is also the reverse-path filter's answer, and a covering
// blackhole (a routing daemon's summary) would be blamed for it.
func refusalToSearch(d evidence.RouteDecision) string {
	kind := d.Refusal()
	if kind == "no route" {
		return ""
	}
	return kind
}

// findRefusers names the routes that refused the decision.
func findRefusers(ctx context.Context, t *Target, p *evidence.PathView, kind string) {
	dst := p.Decision.Query.Dst
	words := []string{"route", "show", "table", "all", "type", kind, "match", dst.String()}
	if dst.Is6() {
		words = append([]string{"-6"}, words...)
	}
	p.Add("$ %s", t.IPCmd(words...))
	rs, err := t.refusers(ctx, dst, kind)
	if err != nil {
		p.Add("# the %s routes could not be read: %s", kind, err)
		return
	}
	p.Refusers = rs
	for _, r := range rs {
		p.Add("%s table %s", r.Route.Text, evidence.TableName(r.Table))
	}
	if len(rs) == 0 {
		p.Add("# no %s route holds %s: a policy rule of that kind (ip rule … %s) may refuse it", kind, dst, kind)
	}
}

func (t *Target) readRPFilter(ctx context.Context, iface string) *evidence.RPFilter {
	all, dev := "sys/net/ipv4/conf/all/rp_filter", "sys/net/ipv4/conf/"+iface+"/rp_filter"
	got, err := t.ReadProc(ctx, all, dev)
	if err != nil || got[all] == "" || strings.ContainsRune(iface, '/') {
		return nil
	}
	a, _ := strconv.Atoi(strings.TrimSpace(got[all]))
	d, _ := strconv.Atoi(strings.TrimSpace(got[dev]))
	return &evidence.RPFilter{Iface: iface, All: a, Dev: d, Effective: max(a, d)}
}

// unboundChoice asks the kernel which source and interface it picks for
// the destination when the sending socket does not bind an address (no
// `from`): a route's src hint or the order of the addresses decides, and
// it may not be the address the person expects the flow to use.
func unboundChoice(ctx context.Context, t *Target, q evidence.RouteQuery, p *evidence.PathView) *evidence.RouteDecision {
	uq := evidence.RouteQuery{Dst: q.Dst, Proto: q.Proto, Sport: q.Sport, Dport: q.Dport}
	d, err := t.RouteGet(ctx, uq)
	if err != nil || d.Failed() {
		return nil
	}
	p.Add("$ %s", t.IPCmd(uq.Words()...))
	p.Add("%s", d.Text)
	if d.PrefSrc.IsValid() && d.PrefSrc != q.Src {
		p.Add("# a socket that does not bind its address sends from %s, not %s", d.PrefSrc, q.Src)
		uq.FIBMatch = true
		if fd, err := t.RouteGet(ctx, uq); err == nil && !fd.Failed() {
			p.UnboundFIB = &fd
			p.Add("$ %s", t.IPCmd(uq.Words()...))
			p.Add("%s", fd.Text)
		}
	}
	return &d
}

package playbook

// Analyzers of the path (the First step): how the kernel routes the flow
// and its reply on this host, and whether it refuses the packet where it
// arrives.

import (
	"asym/evidence"
	"asym/fix"
	"asym/flow"
	"fmt"
)

func rpFilterStrictDrop(e *evidence.Evidence) []Finding {
	var out []Finding
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || !p.Input() || !p.Decision.RPFReject() || p.RPFilter == nil || p.RPFilter.Effective != 1 || passesMarked(e, p) {
			continue
		}
		src := p.Decision.Query.Src
		back := "another interface"
		ev := []Line{cmdLine(p), {Probe: p.Probe, Text: p.Decision.Text + "   ← the kernel refuses the packet (" + p.Decision.Error + ")"}}
		if rp := p.ReversePath; rp != nil && rp.Dev != "" {
			back = rp.Dev
			ev = append(ev, Line{Probe: p.Probe, Text: "way back to " + src.String() + ": " + rp.Text})
		}
		ev = append(ev, Line{Probe: p.Probe, Text: fmt.Sprintf("net.ipv4.conf.all.rp_filter = %d, net.ipv4.conf.%s.rp_filter = %d: effective %d (strict)", p.RPFilter.All, p.Ingress, p.RPFilter.Dev, p.RPFilter.Effective)})
		if n, ok := e.Counters.Value(evidence.CounterRPFilter); ok && n > 0 {
			ev = append(ev, Line{Probe: evidence.ProbeCounters, Text: fmt.Sprintf("TcpExt IPReversePathFilter = %d (packets this namespace dropped for failing the reverse-path check)", n)})
		}
		f := Finding{
			ID:       RPFilterStrictDrop,
			Title:    fmt.Sprintf("Strict rp_filter on %s drops the %s from %s: the way back leaves by %s", p.Ingress, p.Direction, src, back),
			Evidence: ev,
		}
		if rp := p.ReversePath; rp != nil && (rp.Failed() || rp.Refused()) {
			// No way back at all: the check fails on every interface, and
			// the route that refuses it is the cause (route_refused), not
			// the asymmetry a source rule would correct.
			f.Title = fmt.Sprintf("Strict rp_filter on %s drops the %s from %s: there is no way back to it", p.Ingress, p.Direction, src)
			f.Evidence = append(f.Evidence, Line{Probe: p.Probe, Text: "way back to " + src.String() + ": " + rp.Text})
			out = append(out, f)
			continue
		}
		f.Fix = sourceRoutingFix(e, "")
		if len(srcValidMarkOff(e)) > 0 && p.Direction == evidence.DirRequest {
			// The way back is right with the request's mark: the check only
			// has to use it (src_valid_mark_off says why).
			if alt := f.Fix; alt != nil {
				f.Fix = srcValidMarkFix(p.Ingress)
				f.Fix.Alternatives = append(f.Fix.Alternatives, *alt)
			} else {
				f.Fix = srcValidMarkFix(p.Ingress)
			}
			out = append(out, f)
			continue
		}
		loose := fix.Fix{
			Summary: fmt.Sprintf("Loose reverse-path filter on %s (rp_filter=2): the drop stops, the asymmetry stays", p.Ingress),
			Steps:   fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf." + p.Ingress + ".rp_filter", Value: "2"}},
			Caveat:  "The reply still leaves by " + back + "; a fabric, ISP or firewall that checks source addresses will drop it there. Prefer policy routing.",
		}
		if f.Fix == nil {
			loose.Caveat = "This hides the asymmetry on this host only; make the routing symmetric where you can."
			f.Fix = &loose
		} else {
			f.Fix.Alternatives = append(f.Fix.Alternatives, loose)
		}
		out = append(out, f)
	}
	return out
}

func replyWrongEgress(e *evidence.Evidence) []Finding {
	req, rep := okPath(e.Request), okPath(e.Reply)
	if req == nil || rep == nil || req.Ingress == "" || rep.Egress == "" || req.Ingress == rep.Egress || replyMarkedBack(e) {
		return nil
	}
	switch role(e) {
	case evidence.RoleServer:
	case evidence.RoleMiddle:
		// When asym inferred the ingress from this host's own route back and
		// that route is multipath, the mismatch is the ECMP hash, which
		// ecmp_multipath reports with the right advice.
		if !req.IngressGivenByPerson() && rep.FIB != nil {
			for _, nh := range rep.FIB.Nexthops {
				if nh.Dev == req.Ingress {
					return nil
				}
			}
		}
	default:
		return nil
	}
	f := Finding{
		ID:    ReplyWrongEgress,
		Title: fmt.Sprintf("The reply to %s leaves by %s, but the request came in on %s", e.Flow.Src.Addr(), rep.Egress, req.Ingress),
		Evidence: []Line{
			{Probe: req.Probe, Text: fmt.Sprintf("the request arrives on %s (%s)", req.Ingress, req.IngressWhy)},
			cmdLine(rep),
			{Probe: rep.Probe, Text: rep.Decision.Text + "   ← leaves by " + rep.Egress},
		},
	}
	if role(e) == evidence.RoleServer {
		f.Fix = sourceRoutingFix(e, "")
	} else {
		f.Fix = &fix.Fix{Summary: "Make this router send the reply back the way the request came",
			Advice: fmt.Sprintf("This host forwards the request from %s and the reply towards %s; give the reply a route by %s (a policy rule for %s, or a more specific route), or make the upstream routing symmetric.", req.Ingress, rep.Egress, req.Ingress, e.Flow.Dst.Addr()),
			Prove:  []string{proveCapture(e) + "   # here: the request in on " + req.Ingress + ", the reply out on " + rep.Egress}}
	}
	return []Finding{f}
}

func wrongSourceAddress(e *evidence.Evidence) []Finding {
	if role(e) != evidence.RoleClient {
		return nil
	}
	req := okPath(e.Request)
	h := e.Host
	if req == nil || req.Egress == "" || req.Egress == h.LocalIface {
		return nil
	}
	owner := h.Iface(h.LocalIface)
	sub := subnetOf(owner, h.Local)
	// Addresses on loopback or dummy interfaces (service VIPs, anycast) are
	// meant to leave by whichever interface routes; only a NIC's own
	// connected address makes this a mistake.
	if owner == nil || owner.Name == "lo" || owner.Kind == "dummy" || !sub.IsValid() || sub.Bits() == sub.Addr().BitLen() {
		return nil
	}
	f := Finding{
		ID:    WrongSourceAddress,
		Title: fmt.Sprintf("The flow leaves by %s carrying %s's address %s", req.Egress, owner.Name, h.Local),
		Evidence: []Line{
			{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s is on %s (%s)", h.Local, owner.Name, sub)},
			cmdLine(req),
			{Probe: req.Probe, Text: req.Decision.Text + "   ← leaves by " + req.Egress},
		},
	}
	f.Fix = sourceRoutingFix(e, "")
	return []Finding{f}
}

// unboundSource: the kernel would send the flow's direction from another
// address than the flow's own when the socket does not bind one — a route's
// src hint, or the order of the interface's addresses, picks it. A client
// (and a UDP server on a wildcard socket) then sends from an address the
// far end, a cloud fabric or an ISP ingress filter associates with another
// interface, or answers to an address nobody asked. Its fix is the route's
// src hint, not policy routing: the packets leave by the right interface
// and only their source is wrong.
func unboundSource(e *evidence.Evidence) []Finding {
	sp := sender(e)
	h := e.Host
	if sp == nil || sp.Unbound == nil || !sp.Unbound.PrefSrc.IsValid() || !h.Local.IsValid() || sp.Unbound.PrefSrc == h.Local {
		return nil
	}
	if role(e) == evidence.RoleServer && e.Flow.Proto != flow.UDP {
		return nil // a TCP reply leaves from the address the request was sent to, whatever the route says
	}
	u := sp.Unbound
	picked := h.Owner(u.PrefSrc)
	ev := []Line{
		{Probe: sp.Probe, Text: fmt.Sprintf("%s is on %s", h.Local, h.LocalIface)},
		{Probe: sp.Probe, Text: "without a bound source the kernel answers: " + u.Text + "   ← from " + u.PrefSrc.String()},
	}
	if picked != nil {
		ev = append(ev, Line{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s belongs to %s", u.PrefSrc, picked.Name)})
	}
	if sp.UnboundFIB != nil {
		ev = append(ev, Line{Probe: sp.Probe, Text: "the route that decides it: " + sp.UnboundFIB.Text})
	}
	return []Finding{{
		ID: WrongSourceAddress,
		Title: fmt.Sprintf("A socket that does not bind its address sends to %s from %s, not from %s: the route's source hint picks the wrong address",
			farAddr(e), u.PrefSrc, h.Local),
		Evidence: ev,
		Fix:      srcHintFix(e, sp),
	}}
}

// passesMarked: the request carries a mark at routing, the reverse-path
// check uses it (src_valid_mark=1), and the kernel's decision with the mark
// accepts the packet: the First step's unmarked refusal is not what the
// request meets.
func passesMarked(e *evidence.Evidence, p *evidence.PathView) bool {
	m := marks(e)
	return m != nil && p.Direction == evidence.DirRequest && m.Request != 0 && m.SrcValidMark == 1 &&
		m.RequestRoute != nil && !m.RequestRoute.Failed()
}

package probes

import (
	"context"
	"net/netip"

	"asym/evidence"
	"asym/flow"
	"asym/probes/ctentry"
)

// translatedAway finds whether this host, which owns the flow's
// destination, translates it to another host and forwards it (a port
// forward, a load balancer's VIP, a NAT gateway): then it is in the
// middle of the flow, and its routes must be asked for the translated
// destination, which is where the kernel routes the request after DNAT.
// It asks conntrack for the flow's own entry (one targeted lookup): the
// entry's reply tuple says where the translation goes. Without an entry
// (the flow was not tried lately) the host stays the server, and the NAT
// rules of the Second step still show the translation.
func translatedAway(ctx context.Context, t *Target, f flow.Flow, h *evidence.HostView) (flow.Flow, string, bool) {
	if h.Role != evidence.RoleServer || !h.Privileged || !ctentry.HasPorts(f.Proto) || f.Src.Port() == 0 || f.Dst.Port() == 0 {
		return flow.Flow{}, "", false
	}
	done := make(chan ctResult, 1)
	q := ctQueryOf{f, f}
	go func() { done <- ctRun(ctx, int(t.NS()), []ctRound{{get: &q}}) }()
	var r ctResult
	select {
	case r = <-done:
	case <-ctx.Done():
		return flow.Flow{}, "", false
	}
	if r.err != nil || len(r.found) == 0 {
		return flow.Flow{}, "", false
	}
	ct := r.found[0].flow
	if !ct.Status.DstNAT() {
		return flow.Flow{}, "", false
	}
	to := netip.AddrPortFrom(ct.TupleReply.IP.SourceAddress, ct.TupleReply.Proto.SourcePort)
	if !to.Addr().IsValid() || h.Owner(to.Addr()) != nil {
		return flow.Flow{}, "", false // redirected to this host itself: it stays the server
	}
	translated := f
	translated.Dst = to
	e, _ := ctentry.Flatten(f, f, ct)
	return translated, e.Text, true
}

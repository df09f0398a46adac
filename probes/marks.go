package probes

import (
	"context"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"
)

// marksInput is what the marks probe builds on: the views of the probes
// before it.
type marksInput struct {
	host     *evidence.HostView
	req, rep *evidence.PathView
	fw       *evidence.FirewallView
	ct       *evidence.ConntrackView
	rules    *evidence.RulesView
}

// ProbeMarks works out the marks the flow's packets really carry — set by
// the firewall's mark rules on the way in, kept with the connection,
// restored (or not) onto the reply — and asks the kernel the routes with
// those marks. The route decisions of the First step carry no mark: on a
// host that routes by fwmark they are not the routes the packets take.
func ProbeMarks(ctx context.Context, t *Target, f flow.Flow, in marksInput) *evidence.MarksView {
	r, start := evidence.Begin(evidence.ProbeMarks, "Marks and the routes they choose")
	v := &evidence.MarksView{Report: r, SrcValidMark: -1}
	defer v.Finish(start)
	v.Command = t.Cmd("nft", "list", "ruleset") + " | grep mark; " + t.IPCmd("rule", "show")
	if in.fw == nil || !in.fw.OK() {
		v.Fail(evidence.Unavailable("the firewall could not be read, so the marks its rules set are unknown"))
		return v
	}
	v.Rules = in.fw.Marks
	conn := uint32(0)
	if in.ct != nil {
		for _, e := range in.ct.Entries {
			conn = max(conn, e.Mark)
		}
	}
	if len(v.Rules) == 0 && conn == 0 && !selectsMarks(in.rules) {
		v.Add("# no firewall rule sets a mark, the flow's connection has none, and no policy rule selects one: marks play no part here")
		return v
	}
	for _, m := range v.Rules {
		v.Add("%s %s %s (hook %s): %s", m.Family, m.Table, m.Chain, m.Hook, m.Text)
	}
	markFlow(v, in, conn)
	v.Add("# marks: request %s, its connection %s, reply %s%s", hexMark(v.Request), hexMark(v.Conn), hexMark(v.Reply), map[bool]string{true: " (restored from the connection)", false: ""}[v.Restored])
	askMarkedRoutes(ctx, t, v, in)
	if in.req != nil && in.req.Ingress != "" && f.Src.Addr().Is4() {
		all, dev := "sys/net/ipv4/conf/all/src_valid_mark", "sys/net/ipv4/conf/"+in.req.Ingress+"/src_valid_mark"
		if got, err := t.ReadProc(ctx, all, dev); err == nil && got[all] != "" && !strings.ContainsRune(in.req.Ingress, '/') {
			a, _ := strconv.Atoi(strings.TrimSpace(got[all]))
			d, _ := strconv.Atoi(strings.TrimSpace(got[dev]))
			v.SrcValidMark = min(1, a|d) // IN_DEV_ORCONF
			v.Add("# src_valid_mark on %s is %d (all=%d, %s=%d): the reverse-path check %s marks", in.req.Ingress, v.SrcValidMark, a, in.req.Ingress, d,
				map[bool]string{true: "uses", false: "ignores"}[v.SrcValidMark == 1])
		}
	}
	return v
}

// markFlow runs the mark rules over the request (a connection's first
// packet) and the reply (an established one) where this host meets them:
// a packet that arrives crosses prerouting (then input, or forward); one
// this host sends crosses output. A connection mark the conntrack entry
// holds wins over what the rules would have set.
func markFlow(v *evidence.MarksView, in marksInput, knownConn uint32) {
	role := in.host.Role
	var st evidence.MarkState
	switch role {
	case evidence.RoleClient:
		st = evidence.Through(v.Rules, "output", "", evidence.CtStateNew, st)
	default:
		ingress := ""
		if in.req != nil {
			ingress = in.req.Ingress
		}
		st = evidence.Through(v.Rules, "prerouting", ingress, evidence.CtStateNew, st)
		next := "input"
		if role == evidence.RoleMiddle {
			next = "forward"
		}
		st = evidence.Through(v.Rules, next, ingress, evidence.CtStateNew, st)
	}
	v.Request, v.Conn = st.Packet, st.Conn
	if knownConn != 0 {
		v.Conn = knownConn
	}
	back := evidence.MarkState{Conn: v.Conn}
	if role == evidence.RoleServer {
		back = evidence.Through(v.Rules, "output", "", evidence.CtStateEstablished, back)
	} else {
		ingress := ""
		if in.rep != nil {
			ingress = in.rep.Ingress
		}
		back = evidence.Through(v.Rules, "prerouting", ingress, evidence.CtStateEstablished, back)
	}
	v.Reply, v.Restored = back.Packet, back.Restored
}

// askMarkedRoutes asks the kernel the routes the marks choose: the
// request's input decision and its way back with the request's mark, the
// reply's with its mark, and the reply's as if the connection's mark were
// restored onto it when it is not.
func askMarkedRoutes(ctx context.Context, t *Target, v *evidence.MarksView, in marksInput) {
	ask := func(q evidence.RouteQuery, mark uint32) *evidence.RouteDecision {
		q.Mark, q.FIBMatch = mark, false
		d, err := t.RouteGet(ctx, q)
		if err != nil {
			return nil
		}
		v.Add("$ %s", t.IPCmd(q.Words()...))
		v.Add("%s", d.Text)
		return &d
	}
	if req := in.req; req != nil && req.OK() && v.Request != 0 {
		v.RequestRoute = ask(req.Decision.Query, v.Request)
		if req.Input() {
			q := req.Decision.Query
			back := evidence.RouteQuery{Dst: q.Src, Proto: q.Proto, Sport: q.Dport, Dport: q.Sport}
			if in.host.Owner(q.Dst) != nil {
				back.Src = q.Dst
			}
			v.ReversePath = ask(back, v.Request)
		}
	}
	rep := in.rep
	if rep == nil || !rep.OK() {
		return
	}
	if v.Reply != 0 {
		v.ReplyRoute = ask(rep.Decision.Query, v.Reply)
	}
	if !v.Restored && v.Conn != 0 && v.Reply != v.Conn {
		v.Add("# the reply does not get its connection's mark %s back: were it restored, the kernel would answer", hexMark(v.Conn))
		v.ReplyRestored = ask(rep.Decision.Query, v.Conn)
	}
}

// selectsMarks says whether a policy rule routes by fwmark.
func selectsMarks(rules *evidence.RulesView) bool {
	if rules == nil {
		return false
	}
	for _, r := range rules.Rules {
		if r.Mark != 0 || r.Mask != 0 {
			return true
		}
	}
	return false
}

func hexMark(m uint32) string { return "0x" + strconv.FormatUint(uint64(m), 16) }

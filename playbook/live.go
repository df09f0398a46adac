package playbook

import (
	"fmt"

	"asym/probes"
)

// Analyzers over live evidence: packets of the flow with the interface and
// direction they crossed, conntrack events and counter changes. They name
// the same findings as the routing analyzers (their evidence lines join the
// finding's) and stand alone where routing alone could not tell.

func live(e *probes.Evidence) *probes.LiveEvidence {
	if e.Live == nil || !e.Live.OK() {
		return nil
	}
	return e.Live
}

// firstPacket returns the first packet that matches. Frames flooded to
// this host for another host's MAC are never evidence of the flow's path.
func firstPacket(l *probes.LiveEvidence, match func(p probes.CapturedPacket) bool) (probes.CapturedPacket, bool) {
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			return p, true
		}
	}
	return probes.CapturedPacket{}, false
}

func countPackets(l *probes.LiveEvidence, match func(p probes.CapturedPacket) bool) int {
	n := 0
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			n++
		}
	}
	return n
}

// liveWrongEgress: the request came in on one interface and the reply left
// by another, seen on the wire.
func liveWrongEgress(e *probes.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == probes.RoleClient {
		return nil
	}
	in, ok := firstPacket(l, func(p probes.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	if !ok {
		return nil
	}
	out, ok := firstPacket(l, func(p probes.CapturedPacket) bool { return p.Reply && p.Dir == "out" && p.Iface != in.Iface })
	if !ok {
		return nil
	}
	return []Finding{{
		ID:       "reply_wrong_egress",
		Title:    fmt.Sprintf("Packets show it: the request came in on %s, the reply left by %s", in.Iface, out.Iface),
		Evidence: []Line{{"live", in.Text}, {"live", out.Text}},
	}}
}

// liveRPFilterDrop: requests arrive, nothing answers, and the reverse-path
// counter climbs by about as much.
func liveRPFilterDrop(e *probes.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == probes.RoleClient {
		return nil
	}
	n := l.Deltas["TcpExt:IPReversePathFilter"]
	reqs := countPackets(l, func(p probes.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	replies := countPackets(l, func(p probes.CapturedPacket) bool { return p.Reply && p.Dir == "out" })
	if n <= 0 || reqs == 0 || replies > 0 {
		return nil
	}
	in, _ := firstPacket(l, func(p probes.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	return []Finding{{
		ID:    "rp_filter_strict_drop",
		Title: fmt.Sprintf("%d requests arrived on %s, none was answered, and the reverse-path filter dropped %d packets", reqs, in.Iface, n),
		Evidence: []Line{{"live", in.Text},
			{"live", fmt.Sprintf("%d requests in, 0 replies out, TcpExt IPReversePathFilter %+d over the window", reqs, n)}},
	}}
}

// liveSilentConntrack: the reply arrives here, conntrack records nothing of
// the flow, and invalid climbs: a stateful drop of a flow this host never
// saw begin.
func liveSilentConntrack(e *probes.Evidence) []Finding {
	l := live(e)
	if l == nil || len(l.Events) > 0 || l.Deltas["nf_conntrack:invalid"] <= 0 {
		return nil
	}
	rep, ok := firstPacket(l, func(p probes.CapturedPacket) bool { return p.Reply && p.Dir == "in" })
	if !ok {
		return nil
	}
	forwarded := countPackets(l, func(p probes.CapturedPacket) bool { return p.Reply && p.Dir == "out" })
	if forwarded > 0 {
		return nil
	}
	ev := []Line{{"live", rep.Text},
		{"live", fmt.Sprintf("no conntrack event for the flow; nf_conntrack invalid %+d; the reply never left", l.Deltas["nf_conntrack:invalid"])}}
	for k, v := range l.Deltas {
		if len(k) > 5 && k[:5] == "rule:" && v > 0 {
			ev = append(ev, Line{"live", fmt.Sprintf("%s counter %+d", k[5:], v)})
		}
	}
	return []Finding{{
		ID:       "ct_invalid_drop",
		Title:    "The reply arrives and vanishes: no conntrack entry, invalid climbs (the silent-conntrack signature)",
		Evidence: ev,
		Fix: &Fix{Summary: "Make both directions of the flow cross the same stateful device",
			Advice: "The request crossed another device than this one. Pin the route so both directions cross the same stateful device, or share state.",
			Prove:  []string{proveConntrack(e)}},
	}}
}

// liveSynUnanswered: a TCP SYN goes (or comes) again and again and no SYN-ACK
// is seen on this host.
func liveSynUnanswered(e *probes.Evidence) []Finding {
	l := live(e)
	if l == nil || e.Flow.Proto != 6 {
		return nil
	}
	syns := countPackets(l, func(p probes.CapturedPacket) bool { return !p.Reply && p.Flags == "S" })
	synacks := countPackets(l, func(p probes.CapturedPacket) bool { return p.Reply && p.Flags == "S." })
	if syns < 2 || synacks > 0 {
		return nil
	}
	syn, _ := firstPacket(l, func(p probes.CapturedPacket) bool { return !p.Reply && p.Flags == "S" })
	where := "the reply is dropped before it reaches this host, or takes another way back"
	if role(e) == probes.RoleServer {
		where = "this host does not answer: it drops the SYN or cannot route the SYN-ACK"
	}
	return []Finding{{
		ID:       "syn_unanswered",
		Title:    fmt.Sprintf("The SYN was seen %d times (retransmits) and no SYN-ACK: %s", syns, where),
		Evidence: []Line{{"live", syn.Text}, {"live", fmt.Sprintf("%d SYN, 0 SYN-ACK over the window", syns)}},
		Fix: &Fix{Summary: "Follow the SYN-ACK", Advice: "Capture on the other end: if it sends the SYN-ACK, the return path loses it; compare the route back on both ends.",
			Prove: []string{proveCapture(e) + "   # on the other end", proveRoute(e, true) + "   # on the other end"}},
	}}
}

// HandOff lists ready-to-run commands of deeper tools for the flow: a
// capture on the interfaces involved, conntrack events, and pwru where the
// kernel has BTF.
func HandOff(e *probes.Evidence, prefix []string) []string {
	f := e.Flow
	ifaces := []string{}
	for _, p := range []*probes.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil {
			continue
		}
		for _, i := range []string{p.Ingress, p.Egress} {
			if i != "" && !contains(ifaces, i) {
				ifaces = append(ifaces, i)
			}
		}
	}
	pre := func(w ...string) string { return probes.Command(append(append([]string{}, prefix...), w...)...) }
	var out []string
	filter := probes.TcpdumpFilter(f)
	if len(ifaces) == 0 {
		out = append(out, pre("tcpdump", "-ni", "any", filter))
	}
	for _, i := range ifaces {
		out = append(out, pre("tcpdump", "-ni", i, filter))
	}
	ct := []string{"conntrack", "-E", "-p", f.Proto.String(), "--orig-src", f.Src.Addr().String(), "--orig-dst", f.Dst.Addr().String()}
	if f.Proto.HasPorts() && f.Src.Port() != 0 && f.Dst.Port() != 0 {
		ct = append(ct, "--sport", fmt.Sprint(f.Src.Port()), "--dport", fmt.Sprint(f.Dst.Port()))
	}
	out = append(out, pre(ct...))
	if e.Host != nil && e.Host.BTF {
		out = append(out, probes.Command("pwru", "--output-tuple", filter)+"   # kernel drop reasons (needs BTF: present)")
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

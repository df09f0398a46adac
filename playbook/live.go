package playbook

import (
	"fmt"
	"net/netip"
	"strings"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
)

// Analyzers over live evidence: packets of the flow with the interface and
// direction they crossed, conntrack events and counter changes. They name
// the same findings as the routing analyzers (their evidence lines join the
// finding's) and stand alone where routing alone could not tell.

// liveWrongEgress: the request came in on one interface and the reply left
// by another, seen on the wire.
func liveWrongEgress(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == evidence.RoleClient {
		return nil
	}
	in, ok := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn })
	if !ok {
		return nil
	}
	out, ok := firstPacket(l, func(p evidence.CapturedPacket) bool {
		return p.Reply && p.Dir == evidence.DirOut && p.Iface != in.Iface
	})
	if !ok {
		return nil
	}
	return []Finding{{
		ID:       ReplyWrongEgress,
		Title:    fmt.Sprintf("Packets show it: the request came in on %s, the reply left by %s", in.Iface, out.Iface),
		Evidence: []Line{{Probe: evidence.ProbeLive, Text: in.Text}, {Probe: evidence.ProbeLive, Text: out.Text}},
	}}
}

// liveRPFilterDrop: requests arrive, nothing answers, and the reverse-path
// counter climbs by about as much.
func liveRPFilterDrop(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == evidence.RoleClient {
		return nil
	}
	n := l.Deltas[evidence.CounterRPFilter]
	reqs := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn })
	replies := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == evidence.DirOut })
	if n <= 0 || reqs == 0 || replies > 0 {
		return nil
	}
	in, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn })
	return []Finding{{
		ID:    RPFilterStrictDrop,
		Title: fmt.Sprintf("%d requests arrived on %s, none was answered, and the reverse-path filter dropped %d packets", reqs, in.Iface, n),
		Evidence: []Line{{Probe: evidence.ProbeLive, Text: in.Text},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d requests in, 0 replies out, TcpExt IPReversePathFilter %+d over the window", reqs, n)}},
	}}
}

// liveSilentConntrack: the reply arrives here, conntrack records nothing of
// the flow, and invalid climbs: a stateful drop of a flow this host never
// saw begin.
func liveSilentConntrack(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || len(l.Events) > 0 || l.Deltas[evidence.CounterCtInvalid] <= 0 {
		return nil
	}
	rep, arrived := firstPacket(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == evidence.DirIn })
	if !arrived {
		return nil
	}
	forwarded := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == evidence.DirOut })
	if forwarded > 0 {
		return nil
	}
	ev := []Line{{Probe: evidence.ProbeLive, Text: rep.Text},
		{Probe: evidence.ProbeLive, Text: fmt.Sprintf("no conntrack event for the flow; nf_conntrack invalid %+d; the reply never left", l.Deltas[evidence.CounterCtInvalid])}}
	if ok(e.Firewall) {
		for _, r := range e.Firewall.Rules {
			if v := l.Deltas[r.CounterKey()]; v > 0 {
				ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%s #%d counter %+d", r.Where(), r.Handle, v)})
			}
		}
	}
	return []Finding{{
		ID:       CtInvalidDrop,
		Title:    "The reply arrives and vanishes: no conntrack entry, invalid climbs (the silent-conntrack signature)",
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Make both directions of the flow cross the same stateful device",
			Advice: "The request crossed another device than this one. Pin the route so both directions cross the same stateful device, or share state.",
			Prove:  []string{proveConntrack(e)}},
	}}
}

// liveSynUnanswered: a TCP SYN goes (or comes) again and again and no SYN-ACK
// is seen on this host.
func liveSynUnanswered(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || e.Flow.Proto != flow.TCP {
		return nil
	}
	syns := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.SYN() })
	synacks := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.SYNACK() })
	if syns < 2 || synacks > 0 {
		return nil
	}
	syn, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.SYN() })
	where := "the reply is dropped before it reaches this host, or takes another way back"
	if role(e) == evidence.RoleServer {
		where = "this host does not answer: it drops the SYN or cannot route the SYN-ACK"
	}
	return []Finding{{
		ID:       SYNUnanswered,
		Title:    fmt.Sprintf("The SYN was seen %d times (retransmits) and no SYN-ACK: %s", syns, where),
		Evidence: []Line{{Probe: evidence.ProbeLive, Text: syn.Text}, {Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d SYN, 0 SYN-ACK over the window", syns)}},
		Fix: &fix.Fix{Summary: "Follow the SYN-ACK", Advice: "Capture on the other end: if it sends the SYN-ACK, the return path loses it; compare the route back on both ends.",
			Prove: []string{proveCapture(e) + "   # on the other end", proveRoute(e, true) + "   # on the other end"}},
	}}
}

// liveOnLinkDetour: this host's route sends what it sends to a peer on the
// egress interface's own subnet via a gateway, and the frames confirm it:
// they are addressed to the gateway's MAC (known from its neighbour entry)
// or at least not to the MAC the peer's own frames come from. Without the
// route's gateway nothing is concluded: an on-link route hands frames to the
// peer itself by definition.
func liveOnLinkDetour(e *evidence.Evidence) []Finding {
	l, sp := live(e), sender(e)
	if l == nil || e.Host == nil || sp == nil || !sp.Decision.Gateway.IsValid() || sp.Egress == "" {
		return nil
	}
	pr, gw := farAddr(e), sp.Decision.Gateway
	p, found := firstPacket(l, func(p evidence.CapturedPacket) bool {
		return p.Dir == evidence.DirOut && p.Dst.Addr() == pr && p.Iface == sp.Egress && p.DstMAC != ""
	})
	if !found {
		return nil
	}
	sub := onLinkSubnet(e.Host, pr, p.Iface)
	if !sub.IsValid() {
		return nil // not on-link: the gateway is the right next hop
	}
	proof, detour := detourProof(e.Neighbours, l, p, pr, gw)
	if !detour {
		return nil
	}
	n := countPackets(l, func(q evidence.CapturedPacket) bool {
		return q.Dir == evidence.DirOut && q.Dst.Addr() == pr && strings.EqualFold(q.DstMAC, p.DstMAC)
	})
	return []Finding{{
		ID:    MissingLinkRoute,
		Title: fmt.Sprintf("Packets to %s, on %s's own subnet, leave in frames for the gateway %s (%s), not for %s itself", pr, p.Iface, gw, p.DstMAC, pr),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: p.Text + "   ← frame to " + p.DstMAC + " (the gateway " + gw.String() + "), not to " + pr.String()},
			{Probe: evidence.ProbeLive, Text: proof},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d packet(s) to %s left by %s in frames for %s over the window", n, pr, p.Iface, p.DstMAC)},
			{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s is on %s's own subnet %s", pr, p.Iface, sub)},
		},
	}}
}

// onLinkSubnet is the subnet of iface that holds addr; invalid when addr is
// not on-link there.
func onLinkSubnet(h *evidence.HostView, addr netip.Addr, iface string) netip.Prefix {
	var sub netip.Prefix
	for _, c := range h.Connected(addr) {
		if c.Iface.Name == iface {
			sub = c.Prefix.Masked()
		}
	}
	return sub
}

// detourProof says how a frame to the on-link peer pr is known to go to
// someone else: the gateway's neighbour entry holds the frame's MAC, or the
// peer's own frames come from another MAC. detour is false when the frame
// is for the peer after all, or nothing tells the gateway from the peer.
func detourProof(nv *evidence.NeighView, l *evidence.LiveEvidence, frame evidence.CapturedPacket, pr, gw netip.Addr) (proof string, detour bool) {
	proof, direct := gatewayMACProof(nv, frame, pr, gw)
	switch {
	case direct:
		return "", false
	case proof != "":
		return proof, true
	}
	return peerMACProof(l, frame, pr)
}

// gatewayMACProof reads the frame's destination MAC in the neighbour
// entries of its interface: direct when it is the peer's own, the
// gateway's entry as proof when it is the gateway's.
func gatewayMACProof(nv *evidence.NeighView, frame evidence.CapturedPacket, pr, gw netip.Addr) (proof string, direct bool) {
	if nv == nil {
		return "", false
	}
	for _, n := range nv.Entries {
		if n.Dev != frame.Iface || n.MAC == "" || !strings.EqualFold(n.MAC, frame.DstMAC) {
			continue
		}
		switch n.Addr {
		case pr:
			return "", true
		case gw:
			proof = n.Text + "   ← the gateway's MAC"
		}
	}
	return proof, false
}

// peerMACProof compares the frame's destination MAC with the source MAC of
// the peer's own frames on that interface; false when they match or the
// peer's frames were not seen.
func peerMACProof(l *evidence.LiveEvidence, frame evidence.CapturedPacket, pr netip.Addr) (string, bool) {
	q, seen := firstPacket(l, func(q evidence.CapturedPacket) bool {
		return q.Dir == evidence.DirIn && q.Src.Addr() == pr && q.Iface == frame.Iface && q.SrcMAC != ""
	})
	if !seen || strings.EqualFold(q.SrcMAC, frame.DstMAC) {
		return "", false
	}
	return q.Text + "   ← " + pr.String() + "'s own frames come from " + q.SrcMAC, true
}

// liveECMPSplit: on a router whose routes for the flow have several next
// hops, the request came in from one side and the reply leaves towards
// another next hop: the hashing that ecmp_multipath warns about, seen
// splitting this flow.
func liveECMPSplit(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil {
		return nil
	}
	req, ok1 := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn && !p.IsICMP() })
	rep, ok2 := firstPacket(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == evidence.DirOut && !p.IsICMP() })
	if !ok1 || !ok2 || req.Iface == rep.Iface {
		return nil
	}
	p := okPath(e.Reply)
	if p == nil || p.FIB == nil {
		return nil
	}
	var devs []string
	for _, nh := range p.FIB.Nexthops {
		if !nh.Dead {
			devs = append(devs, nh.Dev)
		}
	}
	if len(devs) < 2 || !contains(devs, rep.Iface) || !contains(devs, req.Iface) {
		return nil // a request from a side that is no next hop is not ECMP's doing
	}
	return []Finding{{
		ID:    ECMPMultipath,
		Title: fmt.Sprintf("ECMP splits the flow: the request came in on %s, the reply leaves by %s, one of %d next hops", req.Iface, rep.Iface, len(devs)),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: req.Text + "   ← the request comes in"},
			{Probe: evidence.ProbeLive, Text: rep.Text + "   ← the reply is hashed to another next hop"},
		},
	}}
}

// liveUnrepliedMiddle: a router or firewall forwards the request again and
// again and no packet of the reply crosses it in the window: the reply
// returns another way (the playbook's firewall pair), which conntrack's
// [UNREPLIED] says from its side.
func liveUnrepliedMiddle(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) != evidence.RoleMiddle || translates(e) {
		return nil // on a translator, nat_state_miss says it with the translation
	}
	in := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn })
	out := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirOut })
	replies := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply })
	if in < 2 || out < 2 || replies > 0 {
		return nil
	}
	a, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirIn })
	b, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == evidence.DirOut })
	return []Finding{{
		ID:    ConntrackUnreplied,
		Title: fmt.Sprintf("This host forwards the request (in on %s, out by %s) and no reply comes back through it: it is dropped further on or returns another way", a.Iface, b.Iface),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: a.Text},
			{Probe: evidence.ProbeLive, Text: b.Text},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d request packet(s) in, %d forwarded, no packet of the reply over the window", in, out)},
		},
		Fix: &fix.Fix{Summary: "Find where the reply goes instead",
			Advice: "The reply is dropped further on or returns by another path: capture on the far end (does it answer?) and on the other path's devices, and compare the route back on the far end and the routers between."},
	}}
}

// liveWrongSource: on the client, the flow's packets leave carrying
// another source address than the flow's own (the form asym captured
// because the kernel picks that address for a socket that does not bind
// one): the packets prove wrong_source_address.
func liveWrongSource(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) != evidence.RoleClient {
		return nil
	}
	out, ok := firstPacket(l, func(p evidence.CapturedPacket) bool {
		return p.As != nil && !p.Reply && p.Dir == evidence.DirOut && p.As.Src.Addr() != e.Flow.Src.Addr()
	})
	if !ok {
		return nil
	}
	n := countPackets(l, func(p evidence.CapturedPacket) bool { return p.As != nil && *p.As == *out.As })
	typed := countPackets(l, func(p evidence.CapturedPacket) bool { return p.As == nil && !p.Reply })
	return []Finding{{
		ID:    WrongSourceAddress,
		Title: fmt.Sprintf("Packets show it: the flow leaves %s from %s, not from %s", out.Iface, out.As.Src.Addr(), e.Flow.Src.Addr()),
		Evidence: []Line{{Probe: evidence.ProbeLive, Text: out.Text},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d packet(s) of the flow carried %s in the window, %d carried %s", n, out.As.Src.Addr(), typed, e.Flow.Src.Addr())}},
	}}
}

// liveNATNoState: packets of the flow's translated form show a translator
// without the other half. Replies of the translated flow arrive here while
// its request never crossed this host (the twin gateway translated it); or
// this host translated the request and sent it on, and no reply ever came
// back to it. Either way the NAT state and the replies are on different
// devices.
func liveNATNoState(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || !complete(l) {
		return nil
	}
	translated := func(p evidence.CapturedPacket) bool { return p.As != nil && !p.IsICMP() }
	replyIn, hasReply := firstPacket(l, func(p evidence.CapturedPacket) bool { return translated(p) && p.Reply && p.Dir == evidence.DirIn })
	requests := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && !p.IsICMP() })
	reqOut, sent := firstPacket(l, func(p evidence.CapturedPacket) bool { return translated(p) && !p.Reply && p.Dir == evidence.DirOut })
	replies := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && !p.IsICMP() })
	switch {
	case hasReply && requests == 0 && len(l.Events) == 0:
		return []Finding{{ID: NATStateMiss, Severity: Critical,
			Title: fmt.Sprintf("Packets show it: replies of the translated flow arrive on %s, but its request never crossed this host: no NAT state here to map them back", replyIn.Iface),
			Evidence: []Line{{Probe: evidence.ProbeLive, Text: replyIn.Text},
				{Probe: evidence.ProbeLive, Text: "no request packet and no conntrack event of the flow in the window"}}}}
	case sent && replies == 0:
		return []Finding{{ID: NATStateMiss, Severity: Critical,
			Title: fmt.Sprintf("Packets show it: this host sent the translated request out of %s and no reply came back to it", reqOut.Iface),
			Evidence: []Line{{Probe: evidence.ProbeLive, Text: reqOut.Text},
				{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d request packet(s), 0 replies of either form in the window", requests)}}}}
	}
	return nil
}

// translates says this host translates the flow: it forwards a destination
// it owns (HostView.Translated), or its conntrack entry for the flow
// carries NAT.
func translates(e *evidence.Evidence) bool {
	if e.Host != nil && e.Host.Translated != nil {
		return true
	}
	if ok(e.Conntrack) {
		for _, c := range e.Conntrack.Entries {
			if c.SrcNAT || c.DstNAT {
				return true
			}
		}
	}
	return false
}

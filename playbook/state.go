package playbook

// Analyzers of state (the Second step): what keeps state and drops what
// it did not see begin: conntrack, firewall rules that drop INVALID or fail
// a reverse-path check, NAT, and ECMP that hashes the two directions apart.

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"slices"
)

func hookRelevant(r evidence.Role, hook string) bool {
	switch hook {
	case "", "prerouting", "ingress":
		return true
	case "forward":
		return r == evidence.RoleMiddle
	case "input":
		return r != evidence.RoleMiddle
	}
	return false
}

func ctInvalidDrop(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) || !ok(e.Conntrack) || !e.Conntrack.Looked {
		return nil
	}
	if p := e.Firewall.Path(evidence.DirReply, evidence.PathUntracked); p != nil {
		return ctInvalidDropOnPath(e, p)
	}
	// Evidence from before the path walk: the ct state invalid drops of
	// the hooks the flow crosses, from the rule list.
	var ev []Line
	for _, r := range e.Firewall.Rules {
		if r.Kind == evidence.RuleCtInvalid && r.Drops() && r.Packets > 0 && hookRelevant(role(e), r.Hook) {
			ev = append(ev, Line{Probe: evidence.ProbeFirewall, Text: r.Where() + ": " + r.Text})
		}
	}
	if len(ev) == 0 {
		return nil
	}
	ct := e.Conntrack
	if liveTracked(e) {
		return nil // the flow's own packets were seen tracked both ways: the drops are other flows'
	}
	switch {
	case len(ct.Entries) == 0:
		ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: "no conntrack entry for " + e.Flow.String() + " in either direction: its first packet never passed this host"})
	case slices.ContainsFunc(ct.Entries, func(en evidence.ConntrackEntry) bool { return !en.Unreplied }):
		return nil // the flow is tracked both ways here: its packets are not INVALID
	default:
		ev = append(ev, entryLines(ct.Entries)...)
	}
	if ct.Stats.Invalid > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: fmt.Sprintf("conntrack statistics: invalid=%d (summed over %d CPUs)", ct.Stats.Invalid, ct.Stats.CPUs)})
	}
	// From state alone it is a suspicion: the counters also count other
	// flows' strays, and the flow may simply not have been tried lately.
	// Its packets (check --watch, the live view) prove it, and the live
	// analyzer then raises the same finding to critical.
	ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: "not proven for this flow from state alone: watch it live (check --watch) while it fails"})
	return []Finding{{
		ID:       CtInvalidDrop,
		Severity: Warning,
		Title:    "A ct state invalid rule drops packets here, and this host never saw the flow begin: its reply is dropped if it crosses this host",
		Evidence: ev,
		Fix:      ctInvalidFix(e),
	}}
}

func nftFibRPFilterDrop(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) {
		return nil
	}
	var rules []evidence.FirewallRule
	for _, r := range e.Firewall.Rules {
		if r.Kind == evidence.RuleFibRPFilter && r.Drops() {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 {
		return nil
	}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || !p.Input() || p.ReversePath == nil || p.ReversePath.Dev == "" || p.ReversePath.Dev == p.Ingress {
			continue
		}
		var ev []Line
		for _, r := range rules {
			ev = append(ev, Line{Probe: evidence.ProbeFirewall, Text: r.Where() + ": " + r.Text})
		}
		ev = append(ev, Line{Probe: p.Probe, Text: fmt.Sprintf("the %s arrives on %s, but the way back to %s leaves by %s: %s", p.Direction, p.Ingress, p.Decision.Query.Src, p.ReversePath.Dev, p.ReversePath.Text)})
		f := Finding{
			ID:       NftFibRPFilterDrop,
			Title:    fmt.Sprintf("A fib reverse-path rule drops the %s arriving on %s (the way back leaves by %s)", p.Direction, p.Ingress, p.ReversePath.Dev),
			Evidence: ev,
		}
		if f.Fix = sourceRoutingFix(e, ""); f.Fix == nil {
			f.Fix = &fix.Fix{Summary: "Make the way back symmetric, or loosen the rule", Advice: "Route replies back by " + p.Ingress + ", or change the rule to loose mode (fib saddr oif missing drop) for this interface."}
		}
		return []Finding{f}
	}
	return nil
}

func conntrackUnreplied(e *evidence.Evidence) []Finding {
	if !ok(e.Conntrack) {
		return nil
	}
	un := allUnreplied(e.Conntrack, false)
	if len(un) == 0 {
		return nil
	}
	en := un[0]
	state := ""
	if en.TCPState != "" {
		state = ", " + en.TCPState
	}
	title := fmt.Sprintf("This host saw the request but never the reply ([UNREPLIED]%s)", state)
	if len(un) > 1 {
		title = fmt.Sprintf("This host saw the requests of %d connections of the flow and never a reply ([UNREPLIED]%s)", len(un), state)
	}
	return []Finding{{
		ID:       ConntrackUnreplied,
		Title:    title,
		Evidence: entryLines(un),
		Fix: &fix.Fix{Summary: "Find where the reply goes instead",
			Advice: "Check the route back to " + e.Flow.Src.Addr().String() + " on " + e.Flow.Dst.Addr().String() +
				"'s side and on the devices between: the reply takes another path, or is dropped before it gets here.",
			Prove: []string{proveRoute(e, true) + "   # on the far end and the routers between", proveCapture(e) + "   # on the far end: does the reply leave?"}},
	}}
}

func natStateMiss(e *evidence.Evidence) []Finding {
	if !ok(e.Conntrack) {
		return nil
	}
	un := allUnreplied(e.Conntrack, true)
	if len(un) == 0 {
		return nil
	}
	en := un[0]
	kind := "source"
	if en.DstNAT {
		kind = "destination"
	}
	return []Finding{{
		ID:       NATStateMiss,
		Title:    fmt.Sprintf("This host %s-NATed the flow but no reply came back to it", kind),
		Evidence: entryLines(un),
		Fix: &fix.Fix{Summary: "Route the replies back through this translator",
			Advice: fmt.Sprintf("Replies go to %s:%d; make them return through this host (the one holding the translation), or share NAT state between the translators.", en.ReplyDst.Addr(), en.ReplyDst.Port()),
			Prove:  []string{evidence.Command("ip", "route", "get", en.ReplyDst.Addr().String()) + "   # on the replying side: which translator does it reach?"}},
	}}
}

// natNoState: this host holds a NAT rule that translates the flow, but no
// conntrack entry for it in any form: it never saw the request. A gateway
// configured like its twin (an HA pair, the same port forward on both)
// then receives the replies the twin's translation causes and has nothing
// to map them back with: they are INVALID here. From state alone it is a
// suspicion (the replies may not come here at all); the packets prove it
// (liveNATNoState).
func natNoState(e *evidence.Evidence) []Finding {
	if !ok(e.Firewall) || !ok(e.Conntrack) || !e.Conntrack.Looked || len(e.Conntrack.Entries) > 0 {
		return nil
	}
	var rule *evidence.NATRule
	for i, r := range e.Firewall.NAT {
		if (r.Kind == evidence.NATDest || r.Kind == evidence.NATSource) && r.Matches(e.Flow) {
			rule = &e.Firewall.NAT[i]
			break
		}
	}
	if rule == nil {
		return nil
	}
	translated := rule.Translate(e.Flow)
	ev := []Line{
		{Probe: evidence.ProbeFirewall, Text: fmt.Sprintf("%s %s %s: %s   ← translates %s to %s", rule.Family, rule.Table, rule.Chain, rule.Text, e.Flow.Arrow(), translated.Arrow())},
		{Probe: evidence.ProbeConntrack, Text: "no conntrack entry for the flow in either form: this host never translated it"},
	}
	if rule.HasCounter && rule.Packets == 0 {
		ev = append(ev, Line{Probe: evidence.ProbeFirewall, Text: "the NAT rule's counter is 0: it has never translated anything"})
	}
	if st := e.Conntrack.Stats; st.Invalid > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: fmt.Sprintf("conntrack statistics: invalid=%d: packets without state arrive here", st.Invalid)})
	}
	ev = append(ev, Line{Probe: evidence.ProbeConntrack, Text: "not proven for this flow from state alone: watch it live (check --watch) while it fails"})
	return []Finding{{
		ID:       NATStateMiss,
		Severity: Warning,
		Title:    fmt.Sprintf("This host would translate the flow (%s) but holds no state for it: replies of %s that reach it cannot be mapped back", rule.Text, translated.Arrow()),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Bring the replies back to the translator that holds the state",
			Advice: fmt.Sprintf("Another device translated the request (the same rule there counts it, and its conntrack holds %s [UNREPLIED]). Route %s's replies back through that device, SNAT on it so that replies return to it, or share NAT state between the two (conntrackd).", translated.Arrow(), translated.Dst.Addr()),
			Prove: []string{evidence.Command("conntrack", "-L", "-p", e.Flow.Proto.String(), "--orig-dst", e.Flow.Dst.Addr().String()) + "   # on the other translator: it holds the flow",
				evidence.Command("ip", "route", "get", e.Flow.Src.Addr().String(), "from", translated.Dst.Addr().String()) + "   # on " + translated.Dst.Addr().String() + ": which gateway its replies take"}},
	}}
}

func ecmpMultipath(e *evidence.Evidence) []Finding {
	var ev []Line
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || p.FIB == nil {
			continue
		}
		alive := 0
		for _, nh := range p.FIB.Nexthops {
			if !nh.Dead {
				alive++
			}
		}
		if alive < 2 {
			continue
		}
		ev = append(ev,
			Line{Probe: p.Probe, Text: fmt.Sprintf("the %s's route has %d next hops: %s", p.Direction, alive, p.FIB.Text)},
			Line{Probe: p.Probe, Text: fmt.Sprintf("this flow's %s hashes to %s", p.Direction, p.Decision.Text)})
	}
	if len(ev) == 0 {
		return nil
	}
	return []Finding{{
		ID:       ECMPMultipath,
		Title:    "The flow's route has several next hops (ECMP): the request and the reply are hashed separately",
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Keep both directions on one stateful path",
			Advice: "If the next hops are stateful (firewalls, NAT, load balancers) without shared state, pin this prefix to one next hop or make them share state; a retry with another source port may land on another path, which is why failures look random.",
			Prove: []string{proveConntrack(e) + "   # on each stateful next hop: one has the flow, the other drops its reply",
				proveRoute(e, true) + "   # on the router on the other side: the reply's next hop"}},
	}}
}

// liveTracked: the live window saw the flow's conntrack entry answered
// (an event with the reply seen) or this host pass its reply on.
func liveTracked(e *evidence.Evidence) bool {
	l := live(e)
	if l == nil {
		return false
	}
	for _, ev := range l.Events {
		if !ev.Entry.Unreplied && ev.Entry.OrigSrc.IsValid() {
			return true
		}
	}
	return role(e) == evidence.RoleMiddle && countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == evidence.DirOut && !p.IsICMP() }) > 0
}

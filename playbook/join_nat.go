package playbook

import (
	"fmt"
	"slices"
	"strings"

	"asym/evidence"
	"asym/fix"
)

// natSplit joins two translators: one end translated the flow and holds
// its state, still [UNREPLIED]; the other holds no state for it, yet the
// replies reach it (its capture shows them, or it has the twin NAT rule
// and conntrack counts packets it cannot track). The replies then come
// back to the device that cannot map them: the playbook's stateful
// chokepoint, proven from both ends.
func natSplit(here, there *evidence.Evidence) []Finding {
	if f, ok := splitAt(here, SideHere, there, SidePeer); ok {
		return []Finding{f}
	}
	if f, ok := splitAt(there, SidePeer, here, SideHere); ok {
		return []Finding{f}
	}
	return nil
}

func splitAt(holder *evidence.Evidence, hs string, other *evidence.Evidence, os string) (Finding, bool) {
	ent := translatedUnreplied(holder)
	if ent == nil || other.Host == nil {
		return Finding{}, false
	}
	none, seen := untranslated(other)
	if !none {
		return Finding{}, false
	}
	proof, proven := repliesArrive(other, os, ent)
	if len(proof) == 0 {
		return Finding{}, false
	}
	holderName, otherName := hostName(holder, hs), hostName(other, os)
	ev := []Line{
		{Probe: evidence.ProbeConntrack, Side: hs, Text: strings.TrimPrefix(ent.Text, "[NEW] ") + "   ← translated here, and no reply came back through it"},
		{Probe: evidence.ProbeConntrack, Side: os, Text: "no conntrack entry for the flow in any form: this end never saw the request"},
	}
	if seen != "" {
		ev[1].Text = seen + "   ← no translation: the replies made an entry of their own here; this end never saw the request"
	}
	ev = append(ev, proof...)
	sev := Critical
	if !proven {
		sev = Warning
		ev = append(ev, Line{Probe: evidence.ProbeLive, Side: os, Text: "not proven for this flow: watch both ends while it fails (check --watch 5s --peer …) to see its replies arrive there"})
	}
	reply := fmt.Sprintf("%s → %s", ent.ReplySrc, ent.ReplyDst)
	return Finding{
		ID:       NATStateMiss,
		Severity: sev,
		Title:    fmt.Sprintf("%s translated the flow and holds its state; the replies (%s) come back to %s, which has none", holderName, reply, otherName),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Bring the replies back to the translator that holds the state",
			Advice: fmt.Sprintf("Route %s's replies to %s back through %s (a route or source rule on %s or on the router between), SNAT on %s so that replies return to it, or share NAT state between the two gateways (conntrackd).",
				ent.ReplySrc.Addr(), ent.ReplyDst.Addr(), holderName, ent.ReplySrc.Addr(), holderName)},
	}, true
}

// translatedUnreplied is the end's entry for the flow that NAT rewrote and
// that never saw a reply: from the conntrack probe (when none of the
// flow's translated connections saw one), or from the live window's
// events (the entry may be born after the probe ran), where a later event
// that shows a reply clears it.
func translatedUnreplied(e *evidence.Evidence) *evidence.ConntrackEntry {
	if ok(e.Conntrack) {
		if un := allUnreplied(e.Conntrack, true); len(un) > 0 {
			return &un[0]
		}
	}
	if e.Live == nil || !e.Live.OK() {
		return nil
	}
	var last *evidence.ConntrackEntry
	for i, ev := range e.Live.Events {
		c := &e.Live.Events[i].Entry
		switch {
		case ev.Type == evidence.CtDestroy:
		case (c.DstNAT || c.SrcNAT) && c.Unreplied:
			last = c
		case last != nil && c.OrigSrc == last.OrigSrc && c.OrigDst == last.OrigDst && !c.Unreplied:
			last = nil // the reply came back through this end after all
		}
	}
	return last
}

// untranslated says an end holds no translation for the flow: no entry
// (from the probe or the live window's events) carries NAT. An entry
// without NAT may be there: with nf_conntrack_tcp_loose, the replies
// themselves make one mid-stream, as a connection of their own. It
// returns that entry's line for the evidence, if any.
func untranslated(e *evidence.Evidence) (bool, string) {
	if !ok(e.Conntrack) || !e.Conntrack.Looked {
		return false, ""
	}
	entries := slices.Clone(e.Conntrack.Entries)
	if e.Live != nil {
		for _, ev := range e.Live.Events {
			entries = append(entries, ev.Entry)
		}
	}
	seen := ""
	for _, c := range entries {
		if c.DstNAT || c.SrcNAT {
			return false, ""
		}
		if seen == "" {
			seen = strings.TrimPrefix(c.Text, "[NEW] ")
		}
	}
	return true, seen
}

// repliesArrive is what shows the replies of ent reaching an end without
// state: its capture (proof), else its twin NAT rule with packets
// conntrack could not track (a strong hint, not proof).
func repliesArrive(e *evidence.Evidence, side string, ent *evidence.ConntrackEntry) ([]Line, bool) {
	if l := e.Live; l != nil && l.OK() {
		n, first := 0, evidence.CapturedPacket{}
		for _, p := range l.Packets {
			if p.Dir == evidence.DirIn && !p.OtherHost && p.ICMPMsg == nil && p.Src == ent.ReplySrc && p.Dst == ent.ReplyDst {
				if n == 0 {
					first = p
				}
				n++
			}
		}
		if n > 0 {
			return []Line{{Probe: evidence.ProbeLive, Side: side, Text: fmt.Sprintf("%d reply packet(s) %s → %s arrived on %s during the window (first %s)", n, ent.ReplySrc, ent.ReplyDst, first.Iface, first.Time.Format("15:04:05.000"))}}, true
		}
	}
	var out []Line
	if ok(e.Firewall) {
		for _, r := range e.Firewall.NAT {
			if r.Matches(e.Flow) {
				out = append(out, Line{Probe: evidence.ProbeFirewall, Side: side, Text: fmt.Sprintf("%s %s %s: %s   ← the same translation, never used for this flow", r.Family, r.Table, r.Chain, r.Text)})
				break
			}
		}
	}
	if len(out) > 0 && e.Conntrack.Stats.Invalid > 0 {
		out = append(out, Line{Probe: evidence.ProbeConntrack, Side: side, Text: fmt.Sprintf("conntrack statistics: invalid=%d: packets without state arrive here", e.Conntrack.Stats.Invalid)})
		return out, false
	}
	return nil, false
}

// hostName names an end for a title: its hostname and target, and which
// end it is.
func hostName(e *evidence.Evidence, side string) string {
	if h := e.Host; h != nil && h.OK() && h.Target != "" {
		// "netns X (asym runs in it)" on the peer: the target's name is enough.
		name, _, _ := strings.Cut(h.Target, " (")
		return fmt.Sprintf("%s (%s)", name, side)
	}
	return "the host " + side
}

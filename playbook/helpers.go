package playbook

// Small helpers over evidence that every analyzer reads through: probes
// that ran, this host's role and end of the flow, interfaces, counters and
// the live window's packets.

import (
	"asym/evidence"
	"fmt"
	"net/netip"
)

// ok reports whether a probe ran and produced data. Generic so that a nil
// *View is seen as nil (an interface holding a nil pointer is not).
func ok[P interface {
	comparable
	OK() bool
}](p P) bool {
	var none P
	return p != none && p.OK()
}

func role(e *evidence.Evidence) evidence.Role {
	if e.Host == nil {
		return ""
	}
	return e.Host.Role
}

// sender is the direction this host originates (client: the request,
// server: the reply); nil in the middle.
func sender(e *evidence.Evidence) *evidence.PathView {
	switch role(e) {
	case evidence.RoleClient:
		return okPath(e.Request)
	case evidence.RoleServer:
		return okPath(e.Reply)
	}
	return nil
}

func okPath(p *evidence.PathView) *evidence.PathView {
	if p == nil || !p.OK() {
		return nil
	}
	return p
}

// farAddr is the far end of the flow as seen from this host.
func farAddr(e *evidence.Evidence) netip.Addr {
	if role(e) == evidence.RoleServer {
		return e.Flow.Src.Addr()
	}
	return e.Flow.Dst.Addr()
}

func cmdLine(p *evidence.PathView) Line { return Line{Probe: p.Probe, Text: "$ " + p.Command} }

// multiHomed: two or more interfaces (not loopback or dummy) hold addresses
// of the flow's family.
func multiHomed(h *evidence.HostView) bool {
	n := 0
	for _, i := range h.Ifaces {
		if i.Name == "lo" || i.Kind == "dummy" {
			continue
		}
		for _, a := range i.Addrs {
			if !a.Addr().IsLinkLocalUnicast() && !a.Addr().IsLoopback() {
				n++
				break
			}
		}
	}
	return n >= 2
}

// subnetOf returns the connected prefix holding addr on its interface.
func subnetOf(ifc *evidence.Iface, addr netip.Addr) netip.Prefix {
	if ifc == nil {
		return netip.Prefix{}
	}
	for _, p := range ifc.Addrs {
		if p.Addr() == addr {
			return p
		}
	}
	return netip.Prefix{}
}

func mtuOf(e *evidence.Evidence, name string) int {
	if e.Host != nil {
		if i := e.Host.Iface(name); i != nil && i.MTU > 0 {
			return i.MTU
		}
	}
	if e.Neighbours != nil {
		for _, l := range e.Neighbours.Links {
			if l.Name == name {
				return l.MTU
			}
		}
	}
	return 0
}

func live(e *evidence.Evidence) *evidence.LiveEvidence {
	if e.Live == nil || !e.Live.OK() {
		return nil
	}
	return e.Live
}

// firstPacket returns the first packet that matches. Frames flooded to
// this host for another host's MAC are never evidence of the flow's path.
func firstPacket(l *evidence.LiveEvidence, match func(p evidence.CapturedPacket) bool) (evidence.CapturedPacket, bool) {
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			return p, true
		}
	}
	return evidence.CapturedPacket{}, false
}

func countPackets(l *evidence.LiveEvidence, match func(p evidence.CapturedPacket) bool) int {
	n := 0
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			n++
		}
	}
	return n
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// allUnreplied are the flow's conntrack entries with NAT (nat) or without,
// when every one of them is [UNREPLIED]; nil when one saw its reply. A
// flow given without a source port has one entry per client connection:
// one connection answered shows the way back works, and one still
// waiting (just opened) must not be read as the flow failing.
func allUnreplied(ct *evidence.ConntrackView, nat bool) []evidence.ConntrackEntry {
	var out []evidence.ConntrackEntry
	for _, en := range ct.Entries {
		if (en.SrcNAT || en.DstNAT) != nat {
			continue
		}
		if !en.Unreplied {
			return nil
		}
		out = append(out, en)
	}
	return out
}

// maxEntryLines bounds the entries a finding quotes: a flow without a
// source port may have dozens.
const maxEntryLines = 3

// entryLines quotes the entries as conntrack evidence, the first few and
// then how many more.
func entryLines(entries []evidence.ConntrackEntry) []Line {
	var out []Line
	for i, en := range entries {
		if i == maxEntryLines {
			out = append(out, Line{Probe: evidence.ProbeConntrack, Text: fmt.Sprintf("… and %d more connection(s) of the flow, also [UNREPLIED]", len(entries)-i)})
			break
		}
		out = append(out, Line{Probe: evidence.ProbeConntrack, Text: en.Text})
	}
	return out
}

package playbook

import (
	"fmt"
	"net/netip"
	"strings"

	"asym/evidence"
)

// Evidence lines of a trace name the direction they come from.
const (
	ProbeTraceRequest evidence.ProbeID = "trace.request"
	ProbeTraceReply   evidence.ProbeID = "trace.reply"
)

// The two paths are compared on positions counted from the client: the
// client is position 0, the server position n (the server's distance in
// hops). The request's hop p is at position p; the reply's hop j at
// position n-j. A router answers each direction from the interface it
// routes its answer by (Linux: the way back to the prober, which on an
// ECMP router may be any of its branches), so one router shows each end a
// different address, and two addresses alone never prove two devices.
// What proves one device is an equal address, or an end's only gateway
// next to it; what proves two is state: a device that drops the reply for
// want of state cannot be the one at the same place that passed the
// request.

// lineUp places the two paths: n and how it is known, 0 when it is not.
// What the server saw arrive comes first: it counts the hops of every
// probe exactly, while an answer from the server says only that some probe
// got there (answers to the probes of a lower TTL may have been lost on the
// way back, which is what asym is looking for).
func lineUp(tr *evidence.Trace) (int, string) {
	f, r := &tr.Forward, &tr.Reverse
	switch {
	case f.ArrivedHops() > 0:
		return f.ArrivedHops(), fmt.Sprintf("the request's probes arrived at the server after %d hops (it saw them arrive)", f.ArrivedHops())
	case f.Reached:
		return f.LastAnswered(), fmt.Sprintf("the server answered the request's probes at hop %d", f.LastAnswered())
	case r.ArrivedHops() > 0:
		return r.ArrivedHops(), fmt.Sprintf("the reply's probes arrived at the client after %d hops (taken as the request's length too)", r.ArrivedHops())
	case r.Reached:
		return r.LastAnswered(), fmt.Sprintf("the client answered the reply's probes at hop %d (taken as the request's length too)", r.LastAnswered())
	case r.Control != nil && r.Control.Reached:
		return r.Control.LastAnswered(), fmt.Sprintf("the client answered the reply-direction SYN at hop %d (taken as the request's length too)", r.Control.LastAnswered())
	}
	return 0, ""
}

// side is one path's view of the positions.
type side struct {
	path *evidence.TracePath
	hop  func(pos int) *evidence.TraceHop // nil when the position was not probed
}

func forwardSide(tr *evidence.Trace) side {
	p := &tr.Forward
	return side{p, func(pos int) *evidence.TraceHop { return p.Hop(pos) }}
}

// reverseSide reads the reply's path at a position, the control's answer
// where the reply-shaped probe got none (same tuple, same hash, same way).
func reverseSide(tr *evidence.Trace, n int) side {
	p := &tr.Reverse
	return side{p, func(pos int) *evidence.TraceHop {
		h := p.Hop(n - pos)
		if (h == nil || !h.Addr.IsValid()) && p.Control != nil {
			if c := p.Control.Hop(n - pos); c != nil && c.Addr.IsValid() {
				return c
			}
		}
		return h
	}}
}

func (s side) addr(pos int) netip.Addr {
	if h := s.hop(pos); h != nil {
		return h.Addr
	}
	return netip.Addr{}
}

// sameness is what the answers show about the device at one position.
type sameness int

const (
	unknownDevice sameness = iota
	oneDevice
)

// device says whether the request and the reply are shown to cross one
// device at position pos (0 < pos < n), and why.
func device(tr *evidence.Trace, n, pos int) (sameness, string) {
	if pos <= 0 || pos >= n {
		return unknownDevice, "an end of the flow, not a device between them"
	}
	fa, ra := forwardSide(tr).addr(pos), reverseSide(tr, n).addr(pos)
	switch {
	case fa.IsValid() && fa == ra:
		return oneDevice, fmt.Sprintf("both directions answer from %s", fa)
	case pos == 1 && singleGateway(&tr.Forward):
		return oneDevice, "the client's only gateway, both ways"
	case pos == n-1 && singleGateway(&tr.Reverse):
		return oneDevice, "the server's only gateway, both ways"
	case !fa.IsValid() || !ra.IsValid():
		return unknownDevice, "one direction got no answer there"
	}
	return unknownDevice, fmt.Sprintf("the request's answer comes from %s, the reply's from %s: one router's two sides or two devices", fa, ra)
}

// singleGateway says the end sends the tuple to one gateway (hop 0 names
// it) and that gateway answered hop 1: the device next to that end is its
// gateway whichever way a packet goes.
func singleGateway(p *evidence.TracePath) bool {
	h0, h1 := p.Hop(0), p.Hop(1)
	return h0 != nil && h1 != nil && h0.Addr.IsValid() && h0.Addr == h1.Addr
}

// JudgeTrace fills in where the two paths part and which device drops the
// reply, and returns the findings the trace proves.
func JudgeTrace(tr *evidence.Trace) []Finding {
	tr.DivergesAt, tr.Divergence, tr.Boundary, tr.BoundaryTTL, tr.BoundaryAddr = 0, "", "", 0, netip.Addr{}
	n, how := lineUp(tr)
	judgeBoundary(tr, n)
	judgeDivergence(tr, n, how)
	noteNAT(tr)
	var out []Finding
	if f := stateFinding(tr, n); f != nil {
		out = append(out, *f)
	}
	if f := divergenceFinding(tr); f != nil {
		out = append(out, *f)
	}
	if p := tr.Peer; p != nil && p.Failure != nil {
		out = append(out, peerFailure(evidence.PeerResult{Command: p.Command, Failure: p.Failure, Stderr: p.Stderr, Elapsed: p.Elapsed}))
	}
	Sort(out)
	return out
}

func judgeDivergence(tr *evidence.Trace, n int, how string) {
	switch {
	case !tr.Reverse.Traced:
		tr.Divergence = "the reply was not traced, so where the paths part is not known: " + untracedWhy(&tr.Reverse)
		return
	case !tr.Forward.Traced:
		tr.Divergence = "the request was not traced, so where the paths part is not known: " + untracedWhy(&tr.Forward)
		return
	case n == 0:
		tr.Divergence = "the two paths cannot be lined up: neither reached the other end, and the far end saw none of the probes arrive"
		return
	}
	if pos, why := partedByState(tr, n); pos > 0 {
		tr.DivergesAt = pos
		tr.Divergence = fmt.Sprintf("the paths part at hop %d (the reply's hop %d): %s; lined up because %s", pos, n-pos, why, how)
		return
	}
	var known []string
	for pos := 1; pos < n; pos++ {
		if s, why := device(tr, n, pos); s == oneDevice {
			known = append(known, fmt.Sprintf("hop %d (%s)", pos, why))
		}
	}
	tr.Divergence = fmt.Sprintf("not shown: no device drops one direction where the other passes, and a router answers each end from another address, so addresses alone do not tell; lined up because %s", how)
	if len(known) > 0 {
		tr.Divergence += "; one device both ways at " + strings.Join(known, ", ")
	}
}

// partedByState finds the position where the two directions must cross
// different devices: the reply's device without state (the boundary)
// stands where the request passed, so the request's device there is
// another one.
func partedByState(tr *evidence.Trace, n int) (int, string) {
	if tr.Boundary == "" || tr.BoundaryTTL <= 0 || tr.BoundaryTTL >= n {
		return 0, ""
	}
	pos := n - tr.BoundaryTTL
	f := &tr.Forward
	if !f.Reached && f.ArrivedHops() == 0 && f.LastAnswered() <= pos {
		return 0, ""
	}
	at := "a device that did not answer the request's probes"
	if h := f.Hop(pos); h != nil && h.Addr.IsValid() {
		if h.Addr == tr.BoundaryAddr {
			return 0, ""
		}
		at = h.Addr.String()
	}
	return pos, fmt.Sprintf("the request crosses %s there and goes on, the reply %s, which has no state for the flow: two devices", at, tr.BoundaryAddr)
}

func untracedWhy(p *evidence.TracePath) string {
	if p.Unavailable != "" {
		return p.Unavailable
	}
	if len(p.Plan) > 0 {
		return "nothing was sent (--no-send)"
	}
	return "it is this host's routing decision only (hop 0); run asym trace with --peer to trace it from the other end"
}

// judgeBoundary looks for the reply-shaped probes stopping where
// request-shaped probes with the same tuple pass: a stateful device
// without state for the flow lets a new connection through but drops what
// looks like the answer to one it never saw.
func judgeBoundary(tr *evidence.Trace, n int) {
	r := &tr.Reverse
	if !r.Traced || r.Reached || r.Control == nil {
		return
	}
	k := r.LastAnswered()
	if h := r.Hop(k); h != nil && h.Answer == evidence.AnswerUnreachable {
		tr.Boundary = fmt.Sprintf("%s (the reply's hop %d) refuses the reply-shaped probes with ICMP %s", h.Addr, k, unreachableText(h.Code))
		tr.BoundaryTTL, tr.BoundaryAddr = k, h.Addr
		return
	}
	next := r.Control.Hop(k + 1)
	if next == nil || !next.Addr.IsValid() {
		tr.Boundary = ""
		tr.Notes = append(tr.Notes, fmt.Sprintf("the reply's probes stop after hop %d and a SYN with the same tuple stops there too: not a state problem (a route, or a filter for both shapes)", k))
		return
	}
	last := r.Hop(k)
	stopped := fmt.Sprintf("reply-shaped probes (%s) stop answering after hop %d while a request-shaped probe (%s, same tuple, so the same hash and the same way) passes to hop %d (%s)", r.Shape, k, r.Control.Shape, k+1, next.Addr)
	if k == 0 || last == nil || !last.Addr.IsValid() {
		tr.Boundary = fmt.Sprintf("%s is the first stateful device without state for the flow: %s", next.Addr, stopped)
		tr.BoundaryTTL, tr.BoundaryAddr = k+1, next.Addr
		return
	}
	pick, why := pickStateless(tr, n, k, last.Addr, next.Addr)
	tr.BoundaryTTL, tr.BoundaryAddr = pick, last.Addr
	if pick == k+1 {
		tr.BoundaryAddr = next.Addr
	}
	tr.Boundary = fmt.Sprintf("%s (the reply's hop %d) is the first stateful device without state for the flow: %s; %s", tr.BoundaryAddr, pick, stopped, why)
}

// pickStateless decides between hop k, the last to answer the reply's
// probes, and hop k+1, the first that never saw them. A device that checks
// state before the TTL (most appliances, a Linux firewall filtering in
// prerouting) is silent at its own hop: hop k+1. One that checks after the
// TTL (Linux's forward chain runs after ip_forward's TTL check) answers for
// its own hop and drops what it should forward: hop k. The probes alone
// cannot tell these apart; the request's path can: the device without state
// is one the request does not cross.
func pickStateless(tr *evidence.Trace, n, k int, atK, atK1 netip.Addr) (int, string) {
	if n == 0 {
		return k + 1, fmt.Sprintf("or %s (hop %d) itself, if it checks state after answering for the TTL as Linux's forward chain does (where the request goes is not known to tell)", atK, k)
	}
	sk, whyK := device(tr, n, n-k)
	sk1, whyK1 := device(tr, n, n-k-1)
	switch {
	case sk1 == oneDevice && sk != oneDevice:
		return k, fmt.Sprintf("hop %d (%s) is a device the request crosses too (%s), so it has state; %s answers for its own hop and forwards nothing, as a firewall that checks state after the TTL does (Linux's forward chain)%s",
			k+1, atK1, whyK1, atK, requestThere(tr, n-k))
	case sk == oneDevice && sk1 != oneDevice:
		return k + 1, fmt.Sprintf("hop %d (%s) is a device the request crosses too (%s), so it has state; %s checks state before it answers for the TTL%s",
			k, atK, whyK, atK1, requestThere(tr, n-k-1))
	}
	return k + 1, fmt.Sprintf("or %s (hop %d) itself, if it checks state after answering for the TTL as Linux's forward chain does (the answers do not show which of the two the request crosses)", atK, k)
}

// requestThere says what the request crosses at a position instead.
func requestThere(tr *evidence.Trace, pos int) string {
	if h := tr.Forward.Hop(pos); h != nil && h.Addr.IsValid() {
		return fmt.Sprintf("; at that hop the request crosses %s", h.Addr)
	}
	return ""
}

func noteNAT(tr *evidence.Trace) {
	for _, p := range []*evidence.TracePath{&tr.Forward, &tr.Reverse, tr.Reverse.Control} {
		if p == nil {
			continue
		}
		for _, h := range p.Hops {
			if h.NAT != "" {
				tr.Notes = append(tr.Notes, fmt.Sprintf("NAT on the %s's path before hop %d (%s): %s", p.Direction, h.TTL, h.Addr, h.NAT))
				break
			}
		}
	}
}

// unreachableText names an ICMP destination unreachable code (RFC 792, 1812).
func unreachableText(code int) string {
	switch code {
	case 0:
		return "network unreachable"
	case 1:
		return "host unreachable"
	case 9, 10, 13:
		return "administratively prohibited (a filter that rejects)"
	}
	return fmt.Sprintf("destination unreachable, code %d", code)
}

// hopLines are a path's hops as evidence lines.
func hopLines(p *evidence.TracePath, probe evidence.ProbeID, label string) []Line {
	if p == nil {
		return nil
	}
	var out []Line
	for _, h := range p.Hops {
		out = append(out, Line{Probe: probe, Text: label + " " + hopText(h)})
	}
	return out
}

func hopText(h evidence.TraceHop) string {
	if h.TTL == 0 {
		return fmt.Sprintf("hop 0: the kernel sends it via %s dev %s", h.Addr, h.Iface)
	}
	if !h.Addr.IsValid() {
		return fmt.Sprintf("hop %d: no answer (%d sent)", h.TTL, h.Sent)
	}
	s := fmt.Sprintf("hop %d: %s %s %.2f ms", h.TTL, h.Addr, h.Answer, h.RTTms)
	if h.Iface != "" {
		s += " in " + h.Iface
	}
	return s
}

// stateFinding is state_missing_in_path: the boundary, with the two
// members named when the paths part there.
func stateFinding(tr *evidence.Trace, n int) *Finding {
	if tr.Boundary == "" {
		return nil
	}
	r := &tr.Reverse
	f := &Finding{ID: StateMissingInPath, Severity: Critical, Step: "second", Side: SideBoth,
		Title: fmt.Sprintf("%s on the reply's path has no state for the flow: it lets a SYN with the flow's tuple pass and drops the %s", tr.BoundaryAddr, r.Shape)}
	if n > 0 && tr.DivergesAt > 0 {
		if other := tr.Forward.Hop(n - tr.BoundaryTTL); other != nil && other.Addr.IsValid() && other.Addr != tr.BoundaryAddr {
			f.Title = fmt.Sprintf("The request crosses %s and the reply %s (hop %d): %s has no state for the flow and drops the %s", other.Addr, tr.BoundaryAddr, n-tr.BoundaryTTL, tr.BoundaryAddr, r.Shape)
		}
	}
	f.Evidence = append(f.Evidence, hopLines(&tr.Forward, ProbeTraceRequest, "request")...)
	f.Evidence = append(f.Evidence, hopLines(r, ProbeTraceReply, "reply")...)
	f.Evidence = append(f.Evidence, hopLines(r.Control, ProbeTraceReply, "reply, as a SYN")...)
	f.Evidence = append(f.Evidence, Line{Probe: ProbeTraceReply, Text: tr.Boundary})
	if tr.DivergesAt > 0 {
		f.Evidence = append(f.Evidence, Line{Probe: ProbeTraceRequest, Text: tr.Divergence})
	}
	f.Why = catalogWhy(StateMissingInPath)
	return f
}

// divergenceFinding is path_diverges: the two directions cross different
// devices.
func divergenceFinding(tr *evidence.Trace) *Finding {
	if tr.DivergesAt == 0 {
		return nil
	}
	f := &Finding{ID: PathDiverges, Severity: Warning, Step: "first", Side: SideBoth,
		Title: fmt.Sprintf("The request and the reply take different paths: they part at hop %d", tr.DivergesAt)}
	f.Evidence = append(f.Evidence, hopLines(&tr.Forward, ProbeTraceRequest, "request")...)
	f.Evidence = append(f.Evidence, hopLines(&tr.Reverse, ProbeTraceReply, "reply")...)
	f.Evidence = append(f.Evidence, Line{Probe: ProbeTraceRequest, Text: tr.Divergence})
	f.Why = catalogWhy(PathDiverges)
	return f
}

func catalogWhy(id FindingID) string {
	e, _ := Lookup(id)
	first, _, _ := strings.Cut(e.Explain, "\n\n")
	return strings.Join(strings.Fields(first), " ")
}

// The trace's findings are appended to the catalog, so that the ids above
// keep their order.
func init() {
	Catalog = append(Catalog,
		Entry{PathDiverges, Warning, "first", "The request and the reply take different paths (asym trace)",
			`asym trace sent the flow's own packets with growing TTLs from both ends (the request's shape from the
client, the reply's from the server, each with the flow's exact tuple so that every ECMP hash on the way
sends them where it sends the flow) and lined the two paths up hop by hop from the client. At the hop
named, the request and the reply cross different devices: the path is asymmetric there. That alone
breaks nothing; it breaks a flow when a device on one of the two paths keeps state (a firewall, a NAT,
a load balancer) or checks where packets come from (rp_filter, a fabric's source check).

A router answers each direction from the interface it routes its answer by (on an ECMP router, any of
its branches), so one router shows each end a different address and addresses alone prove nothing.
asym names the hop where the paths part only when state proves it: the reply's probes die at a device
without state for the flow at a hop the request's probes pass, so the request's device there is another
one. Equal addresses, and an end's only gateway next to it, count as one device both ways.

Fix: make both directions cross the same devices (the same ECMP member: symmetric hashing, or the same
next hop for both directions on the routers around the pair), or make the devices that keep state share
it (conntrack sync between firewall pair members).`},
		Entry{StateMissingInPath, Critical, "second", "A stateful device on the reply's path has no state for the flow (asym trace)",
			`asym trace sent the reply's shape (a SYN-ACK from the server's port to the client's) from the server
with growing TTLs, and where those probes stopped being answered it sent a SYN with the same tuple (the
same ECMP hash, so the same way): the SYN went further. A device that passes a new connection but drops
what looks like the answer to one it never saw is a stateful device without state for the flow: a
firewall or NAT that the request did not cross. This is the firewall-pair failure of the playbook: the
request hashes through one member, the reply through the other, and the other drops it as INVALID
(ct_invalid_drop on that member, conntrack_unreplied on the first).

Which device it is: a device that checks state before the TTL (most appliances, a Linux firewall that
filters in prerouting) is silent at its own hop, so it is the first hop that never answered; a Linux
firewall that filters in its forward chain answers time-exceeded for its own hop first (ip_forward
checks the TTL before the forward hook) and drops only what it would forward, so it is the last hop
that answered. asym tells the two apart by the request's path: the device without state is the one the
request does not cross. When the paths part at that hop, the finding names both members.

Fix: on the path, not on either end: route both directions through the same member, or synchronise
state between the members (conntrackd), or make the pair stateless for this traffic. asym check on the
member named shows the INVALID drops (ct_invalid_drop).`},
	)
}

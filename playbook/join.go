package playbook

// Both ends of the flow (--peer): the far end's evidence arrives as JSON from
// `asym collect` run there; here it is analyzed like local evidence, and
// joined with this host's to see what neither end shows alone: a packet that
// left one end and never reached the other.

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"strings"
	"time"
)

// PeerReport is the far end's part of a report made with --peer.
type PeerReport struct {
	Command  string                `json:"command"`                  // what ran, quoted
	Prefix   []string              `json:"command_prefix,omitempty"` // the --peer words: commands to run there are shown behind them
	Version  string                `json:"version,omitempty"`
	Host     HostSummary           `json:"host"`
	Steps    []StepReport          `json:"steps,omitempty"`
	Findings []Finding             `json:"findings"`          // the far end's own, Side "peer": their fixes run there
	Verdict  *Judgement            `json:"verdict,omitempty"` // nil when the peer gave no evidence
	HandOff  []string              `json:"hand_off,omitempty"`
	Failure  *evidence.PeerFailure `json:"failure,omitempty"`
	Stderr   []string              `json:"stderr,omitempty"`
	Elapsed  time.Duration         `json:"elapsed_ns"`
}

// Render shows a command to run on the peer as a line to paste here: the
// --peer words in front, quoted for ssh's remote shell too.
func (p *PeerReport) Render() fix.Render {
	return func(w []string) string { return evidence.RemoteCommand(p.Prefix, w...) }
}

// PeerAnalysis is what asym concludes from the far end.
type PeerAnalysis struct {
	Peer *PeerReport
	// Findings belong with this host's: the peer's failures (Side "peer")
	// and what only both ends' evidence shows (Side "both").
	Findings []Finding
	// Across describes the flow's way through both ends, a line per leg.
	Across []string
	// Evidence is the far end's, when it answered.
	Evidence *evidence.Evidence
}

// AnalyzePeer turns the peer's run into its part of the report and joins its
// evidence with this host's.
func AnalyzePeer(here *evidence.Evidence, res evidence.PeerResult) PeerAnalysis {
	pr := &PeerReport{Command: evidence.Command(res.Command...), Prefix: res.Prefix, Failure: res.Failure, Stderr: res.Stderr, Elapsed: res.Elapsed, Findings: []Finding{}}
	pa := PeerAnalysis{Peer: pr}
	if res.Failure != nil || res.Collection == nil {
		pa.Findings = []Finding{peerFailure(res)}
		return pa
	}
	there := res.Collection.Evidence
	pa.Evidence = &there
	pr.Version = res.Collection.Version
	if h := there.Host; h != nil {
		pr.Host = summarize(h)
	}
	pr.Findings = Analyze(&there, len(Steps)-1)
	pr.Steps = stepReports(&there, there.Reports(), pr.Findings)
	v := Judge(pr.Steps)
	pr.Verdict = &v
	for i := range pr.Findings {
		markSide(&pr.Findings[i], SidePeer)
	}
	if len(pr.Findings) > 0 {
		pr.HandOff = HandOffVia(&there, pr.Render(), pr.Render())
	}
	if h := there.Host; h != nil && h.OK() && !h.Privileged {
		pa.Findings = append(pa.Findings, peerNotRoot(res, h))
	}
	pa.Findings = append(pa.Findings, Join(here, &there)...)
	pa.Across = Across(here, &there)
	return pa
}

func markSide(f *Finding, side string) {
	f.Side = side
	for i := range f.Evidence {
		if f.Evidence[i].Side == "" {
			f.Evidence[i].Side = side
		}
	}
}

// Join runs the analyzers that need both ends' evidence.
func Join(here, there *evidence.Evidence) []Finding {
	var out []Finding
	for _, j := range []func(here, there *evidence.Evidence) []Finding{peerRoleConflict, lostInPath, natSplit} {
		out = append(out, j(here, there)...)
	}
	for i := range out {
		out[i].Side = SideBoth
		if ent, ok := Lookup(out[i].ID); ok {
			out[i].Step = ent.Step
			if out[i].Severity == "" {
				out[i].Severity = ent.Severity
			}
			if out[i].Why == "" {
				out[i].Why = ent.Short()
			}
		}
	}
	Sort(out)
	return out
}

// peerRoleConflict: both ends see themselves as the same end of the flow,
// so --peer reaches the wrong host or an address translation sits between.
func peerRoleConflict(here, there *evidence.Evidence) []Finding {
	a, b := role(here), role(there)
	if a == "" || a != b || a == evidence.RoleMiddle || a == evidence.RoleOffPath {
		return nil
	}
	return []Finding{{
		ID:    PeerRoleConflict,
		Title: fmt.Sprintf("Both ends are the %s of the flow: the peer command reaches the wrong host, or NAT changes the flow's addresses", a),
		Evidence: []Line{
			{Probe: evidence.ProbeHost, Side: SideHere, Text: roleText(here)},
			{Probe: evidence.ProbeHost, Side: SidePeer, Text: roleText(there)},
		},
		Fix: &fix.Fix{Summary: "Point --peer at the other end of the flow",
			Advice: "Check the --peer command reaches the host that holds the flow's other address; behind NAT, give the peer the flow as that host sees it (asym collect on that host with its addresses)."},
	}}
}

func roleText(e *evidence.Evidence) string {
	h := e.Host
	if h.Local.IsValid() {
		return fmt.Sprintf("%s (%s): %s, holds %s on %s", h.Hostname, h.Target, h.Role.Describe(), h.Local, h.LocalIface)
	}
	return fmt.Sprintf("%s (%s): %s", h.Hostname, h.Target, h.Role.Describe())
}

// sideTraffic is what one end's capture saw of the flow during the window
// both ends watched.
type sideTraffic struct {
	side                         string
	e                            *evidence.Evidence
	reqIn, reqOut, repIn, repOut []evidence.CapturedPacket
	windowStart, windowEnd       time.Time
}

// packetsIn sorts a side's packets of the flow itself (not ICMP errors from
// routers, not frames flooded for another host) by direction, inside the
// window.
func packetsIn(side string, e *evidence.Evidence, from, to time.Time) sideTraffic {
	st := sideTraffic{side: side, e: e, windowStart: from, windowEnd: to}
	for _, p := range e.Live.Packets {
		if p.OtherHost || p.Time.Before(from) || p.Time.After(to) {
			continue
		}
		switch {
		case !p.Reply && p.Src.Addr() == e.Flow.Src.Addr() && p.Dir == evidence.DirIn:
			st.reqIn = append(st.reqIn, p)
		case !p.Reply && p.Src.Addr() == e.Flow.Src.Addr() && p.Dir == evidence.DirOut:
			st.reqOut = append(st.reqOut, p)
		case p.Reply && p.Src.Addr() == e.Flow.Dst.Addr() && p.Dir == evidence.DirIn:
			st.repIn = append(st.repIn, p)
		case p.Reply && p.Src.Addr() == e.Flow.Dst.Addr() && p.Dir == evidence.DirOut:
			st.repOut = append(st.repOut, p)
		}
	}
	return st
}

// complete says a live window saw every packet of the flow: its capture ran
// throughout and nothing was dropped (by the kernel or by asym's bounds).
func complete(l *evidence.LiveEvidence) bool { return l.Captured && l.PacketsDropped == 0 }

// minOverlap is the shortest window both ends must have watched together
// for an absence of packets to mean something.
const minOverlap = time.Second

// window is the time both ends watched, shrunk by a margin for the clocks
// of two hosts and the time the peer's capture took to start.
func window(here, there *evidence.LiveEvidence) (time.Time, time.Time, bool) {
	const margin = 100 * time.Millisecond
	from, to := here.Start, here.End
	if there.Start.After(from) {
		from = there.Start
	}
	if there.End.Before(to) {
		to = there.End
	}
	from, to = from.Add(margin), to.Add(-margin)
	return from, to, to.Sub(from) >= minOverlap
}

// lostInPath: a packet of the flow left one end and never reached the other
// while both watched (the playbook's "capture on both ends").
func lostInPath(here, there *evidence.Evidence) []Finding {
	lh, lt := here.Live, there.Live
	if lh == nil || lt == nil || !lh.OK() || !lt.OK() || here.Host == nil || there.Host == nil {
		return nil
	}
	if !complete(lh) || !complete(lt) {
		return nil // an absence proves something only when both ends saw everything
	}
	from, to, ok := window(lh, lt)
	if !ok {
		return nil
	}
	h, t := packetsIn(SideHere, here, from, to), packetsIn(SidePeer, there, from, to)
	var out []Finding
	for _, pair := range [][2]sideTraffic{{h, t}, {t, h}} {
		if f, ok := replyLost(pair[0], pair[1]); ok {
			out = append(out, f)
		}
		if f, ok := requestLost(pair[0], pair[1]); ok {
			out = append(out, f)
		}
		if f, ok := largeLost(pair[0], pair[1]); ok {
			out = append(out, f)
		}
	}
	return out
}

// largeLost: one end sent packets of the flow larger than any that reached
// the other end, again and again, while smaller ones of the same direction
// did arrive: an MTU black hole between them, seen from both ends.
func largeLost(from, to sideTraffic) (Finding, bool) {
	for _, dir := range []struct {
		name    evidence.Direction
		out, in []evidence.CapturedPacket
	}{{evidence.DirReply, from.repOut, to.repIn}, {evidence.DirRequest, from.reqOut, to.reqIn}} {
		if len(dir.in) == 0 {
			continue // nothing arrived at all: that is a lost path, not an MTU
		}
		arrived := 0
		for _, p := range dir.in {
			arrived = max(arrived, p.Len)
		}
		var big []evidence.CapturedPacket
		for _, p := range dir.out {
			if p.Len > arrived && p.Len > 576 { // 576: every IPv4 path carries it
				big = append(big, p)
			}
		}
		if len(big) < 2 {
			continue
		}
		ev := []Line{
			{Probe: evidence.ProbeLive, Side: from.side, Text: big[0].Text + "   ← left"},
			{Probe: evidence.ProbeLive, Side: from.side, Text: fmt.Sprintf("%d packet(s) of the %s larger than %d bytes left in the window both ends watched", len(big), dir.name, arrived)},
			{Probe: evidence.ProbeLive, Side: to.side, Text: fmt.Sprintf("%d packet(s) of the %s arrived, none larger than %d bytes", len(dir.in), dir.name, arrived)},
		}
		return Finding{
			ID:       MTUBlackhole,
			Severity: Critical,
			Title:    fmt.Sprintf("%s packets of %d bytes left %s and never reached %s, while packets up to %d bytes did: an MTU black hole between them", capitalize(string(dir.name)), big[0].Len, endName(from), endName(to), arrived),
			Evidence: ev,
			Fix: &fix.Fix{Summary: "Find the hop with the smaller MTU that drops big packets silently",
				Advice: fmt.Sprintf("Somewhere between the two ends a link carries less than %d bytes and its router's ICMP fragmentation-needed does not come back: allow ICMP type 3 code 4 (ICMPv6 packet too big) on the way, or clamp the TCP MSS on the router before the smaller link.", big[0].Len)},
		}, true
	}
	return Finding{}, false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// replyLost: from sent (or forwarded) the reply, to is the client or a box
// that forwarded the request, and no reply reached it.
func replyLost(from, to sideTraffic) (Finding, bool) {
	r := role(to.e)
	if len(from.repOut) == 0 || len(to.repIn) > 0 || len(to.reqOut) == 0 || (r != evidence.RoleClient && r != evidence.RoleMiddle) {
		return Finding{}, false
	}
	first := from.repOut[0]
	for _, p := range from.repOut {
		if p.SYNACK() { // the SYN-ACK tells the story better than a later ACK
			first = p
			break
		}
	}
	what := describeReply(first)
	title := fmt.Sprintf("The %s left %s by %s and never reached %s", what, endName(from), first.Iface, endName(to))
	if len(from.reqIn) > 0 && from.reqIn[0].Iface != first.Iface {
		title = fmt.Sprintf("The %s left %s by %s, not by %s where the request arrived, and never reached %s", what, endName(from), first.Iface, from.reqIn[0].Iface, endName(to))
	}
	id := ReplyLostInPath
	if r == evidence.RoleMiddle {
		// Routers need not see replies (the path back may rightly differ);
		// for a stateful one it is the asymmetry that breaks the flow.
		id = ReplyReturnsElsewhere
		title = fmt.Sprintf("The %s left %s by %s but did not come back through %s, which forwarded the request: it returns another way, or is lost before it", what, endName(from), first.Iface, endName(to))
	}
	ev := []Line{}
	if len(from.reqIn) > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeLive, Side: from.side, Text: from.reqIn[0].Text + "   ← the request arrives"})
	}
	ev = append(ev, Line{Probe: evidence.ProbeLive, Side: from.side, Text: first.Text + "   ← the reply leaves"})
	ev = append(ev, Line{Probe: evidence.ProbeLive, Side: from.side, Text: fmt.Sprintf("%d packet(s) of the reply left in the window both ends watched", len(from.repOut))})
	if p := okPath(from.e.Reply); p != nil && p.Decision.Text != "" {
		ev = append(ev, Line{Probe: p.Probe, Side: from.side, Text: "reply route: " + p.Decision.Text})
	}
	ev = append(ev, Line{Probe: evidence.ProbeLive, Side: to.side, Text: to.reqOut[0].Text + "   ← the request leaves"})
	ev = append(ev, Line{Probe: evidence.ProbeLive, Side: to.side, Text: fmt.Sprintf("no packet from %s arrived in the %s both ends watched (%d request packet(s) sent)",
		to.e.Flow.Dst, to.windowEnd.Sub(to.windowStart).Round(100*time.Millisecond), len(to.reqOut))})
	return Finding{
		ID:       id,
		Title:    title,
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Fix the way back between the two ends",
			Advice: fmt.Sprintf("The reply is lost after it leaves %s. If that end's findings name the cause (a reply leaving by the wrong interface, a missing source rule), apply that fix there; otherwise capture on each hop of the way back from %s: the first hop that does not pass it on drops it.", endName(from), first.Iface),
			Prove:  []string{evidence.Command("tcpdump", "-ni", first.Iface, evidence.TcpdumpFilter(from.e.Flow)) + "   # on " + endName(from)}},
	}, true
}

// requestLost: from sent the request, to is the server and saw none of it.
func requestLost(from, to sideTraffic) (Finding, bool) {
	if len(from.reqOut) == 0 || len(to.reqIn) > 0 || role(to.e) != evidence.RoleServer {
		return Finding{}, false
	}
	first := from.reqOut[0]
	ev := []Line{
		{Probe: evidence.ProbeLive, Side: from.side, Text: first.Text + "   ← the request leaves"},
		{Probe: evidence.ProbeLive, Side: from.side, Text: fmt.Sprintf("%d packet(s) of the request left in the window both ends watched", len(from.reqOut))},
		{Probe: evidence.ProbeLive, Side: to.side, Text: fmt.Sprintf("no packet from %s arrived in the %s both ends watched", to.e.Flow.Src, to.windowEnd.Sub(to.windowStart).Round(100*time.Millisecond))},
	}
	return Finding{
		ID:       RequestLostInPath,
		Title:    fmt.Sprintf("The request left %s by %s and never reached %s", endName(from), first.Iface, endName(to)),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Find the hop that drops the request",
			Advice: "The request is lost between the two ends (a firewall, a route, an ACL, or a reverse-path check on the way): capture on each hop; the first that does not pass it on drops it."},
	}, true
}

// describeReply names a reply packet the way people talk about it.
func describeReply(p evidence.CapturedPacket) string {
	switch {
	case p.SYNACK():
		return "SYN-ACK"
	case p.ICMPMsg != nil:
		return "ICMP " + icmpKind(p.ICMPMsg) + " reply"
	}
	return "reply"
}

// icmpKinds are the capture's words for the ICMP types a reply can be
// (RFC 792, RFC 4443), by family and type.
var icmpKinds = map[icmpType]string{
	{false, 0}:                           "echo", // reply
	{false, 8}:                           "echo", // request
	{true, 129}:                          "echo",
	{true, 128}:                          "echo",
	{false, evidence.ICMPv4Unreachable}:  "unreachable",
	{true, evidence.ICMPv6Unreachable}:   "unreachable",
	{true, evidence.ICMPv6TooBig}:        "packet too big",
	{false, evidence.ICMPv4TimeExceeded}: "time exceeded",
	{true, evidence.ICMPv6TimeExceeded}:  "time exceeded",
}

type icmpType struct {
	v6  bool
	typ uint8
}

// icmpKind names an ICMP message's type the way the capture words it.
func icmpKind(m *evidence.ICMPMessage) string {
	if k, ok := icmpKinds[icmpType{m.V6, m.Type}]; ok {
		return k
	}
	return fmt.Sprintf("type %d", m.Type)
}

// endName is how findings name one end: "the server (peer)".
func endName(s sideTraffic) string {
	r := role(s.e)
	name := SideHere
	if s.side == SidePeer {
		name = SidePeer
	}
	switch r {
	case evidence.RoleClient, evidence.RoleServer:
		return fmt.Sprintf("the %s (%s)", r, name)
	case evidence.RoleMiddle:
		return fmt.Sprintf("the router (%s)", name)
	}
	return "the host " + name
}

// Across describes the flow's way through both ends, from each end's routes
// and, when both watched, the packets each end saw.
func Across(here, there *evidence.Evidence) []string {
	out := []string{sideLine(SideHere, here), sideLine(SidePeer, there)}
	if here.Live != nil && there.Live != nil && here.Live.OK() && there.Live.OK() {
		if from, to, ok := window(here.Live, there.Live); ok && (!complete(here.Live) || !complete(there.Live)) {
			out = append(out, "packets: not compared: a capture did not run throughout or dropped packets on one end (see its live evidence)")
		} else if ok {
			h, t := packetsIn(SideHere, here, from, to), packetsIn(SidePeer, there, from, to)
			c, sv := h, t // the client's end first, whichever end asym runs on
			if role(there) == evidence.RoleClient || role(here) == evidence.RoleServer {
				c, sv = t, h
			}
			out = append(out, fmt.Sprintf("packets in the %s both watched: request out of %s %d, into %s %d; reply out of %s %d, into %s %d",
				to.Sub(from).Round(100*time.Millisecond), endName(c), len(c.reqOut), endName(sv), len(sv.reqIn), endName(sv), len(sv.repOut), endName(c), len(c.repIn)))
		} else {
			out = append(out, "packets: the two ends did not watch at the same time for a second or more; their packets are not compared")
		}
	}
	return out
}

// sideLine is one end's part of the path, from its routes.
func sideLine(side string, e *evidence.Evidence) string {
	h := e.Host
	if h == nil || !h.OK() {
		return side + ": host unknown"
	}
	head := fmt.Sprintf("%s (%s, %s %s):", side, h.Role, h.Hostname, h.Target)
	req, rep := okPath(e.Request), okPath(e.Reply)
	var parts []string
	leg := func(p *evidence.PathView, verb string) string {
		switch {
		case p == nil:
			return verb + " unknown"
		case p.Decision.Failed():
			return fmt.Sprintf("%s refused by the kernel (%s)", verb, p.Decision.Error)
		case p.Egress == "":
			return verb + " delivered here"
		}
		s := verb + " leaves by " + p.Egress
		if gw := p.Decision.Gateway; gw.IsValid() {
			s += " via " + gw.String()
		}
		return s
	}
	switch h.Role {
	case evidence.RoleClient:
		parts = append(parts, leg(req, "request"))
		if rep != nil && rep.Ingress != "" {
			parts = append(parts, "reply expected back on "+rep.Ingress)
		}
	case evidence.RoleServer:
		if req != nil && req.Ingress != "" {
			parts = append(parts, "request arrives on "+req.Ingress)
		}
		parts = append(parts, leg(rep, "reply"))
	default:
		if req != nil && req.Ingress != "" {
			parts = append(parts, "request in on "+req.Ingress)
		}
		parts = append(parts, leg(req, "request"))
		if rep != nil && rep.Ingress != "" {
			parts = append(parts, "reply in on "+rep.Ingress)
		}
		parts = append(parts, leg(rep, "reply"))
	}
	return head + " " + strings.Join(parts, "; ")
}

// peerFailure is the finding about a peer that gave no evidence.
func peerFailure(res evidence.PeerResult) Finding {
	kind, reason := evidence.PeerFailed, "the peer gave no evidence"
	if res.Failure != nil {
		kind, reason = res.Failure.Kind, res.Failure.Reason
	}
	id, known := peerFailureIDs[kind]
	if !known {
		id = PeerFailed
	}
	ev := []Line{{Probe: "command", Side: SidePeer, Text: "$ " + evidence.Command(res.Command...)}}
	if res.Failure != nil && res.Failure.ExitCode >= 0 {
		ev = append(ev, Line{Probe: "command", Side: SidePeer, Text: fmt.Sprintf("exit status %d after %s", res.Failure.ExitCode, res.Elapsed.Round(time.Millisecond))})
	}
	for _, l := range res.Stderr {
		ev = append(ev, Line{Probe: "command", Side: SidePeer, Text: "stderr: " + l})
	}
	ent, _ := Lookup(id)
	return Finding{
		ID: id, Severity: ent.Severity, Step: ent.Step, Side: SidePeer,
		Title:    "The other end was not diagnosed: " + reason,
		Evidence: ev,
		Why:      ent.Short(),
		Fix:      &fix.Fix{Summary: "Make the peer command work", Advice: peerAdvice[id]},
	}
}

func peerNotRoot(res evidence.PeerResult, h *evidence.HostView) Finding {
	ent, _ := Lookup(PeerNotRoot)
	return Finding{
		ID: PeerNotRoot, Severity: ent.Severity, Step: ent.Step, Side: SidePeer,
		Title: fmt.Sprintf("asym ran on the peer without %s: some of the far end's probes were unavailable", h.Missing),
		Evidence: []Line{{Probe: "command", Side: SidePeer, Text: "$ " + evidence.Command(res.Command...)},
			{Probe: evidence.ProbeHost, Side: SidePeer, Text: "missing privileges: " + h.Missing}},
		Why: ent.Short(),
		Fix: &fix.Fix{Summary: "Run the peer's asym as root", Advice: peerAdvice[PeerNotRoot]},
	}
}

// peerFailureIDs names the finding for each way a peer can fail: peer_<kind>.
var peerFailureIDs = map[evidence.PeerFailureKind]FindingID{
	evidence.PeerUnreachable:  PeerUnreachable,
	evidence.PeerNoAsym:       PeerNoAsym,
	evidence.PeerNoSudo:       PeerNoSudo,
	evidence.PeerTimeout:      PeerTimeout,
	evidence.PeerIncompatible: PeerIncompatible,
	evidence.PeerFailed:       PeerFailed,
}

var peerAdvice = map[FindingID]string{
	PeerUnreachable:  "Check that the same ssh command works by hand (host name, key, host key); asym runs it without a terminal, so it cannot answer prompts: use keys and a known host key.",
	PeerNoAsym:       "Copy the same asym binary to the peer (it is one static file), or point at it with --peer-asym PATH.",
	PeerNoSudo:       "asym runs the peer command without a terminal, so sudo cannot ask for a password: allow it without one for asym (NOPASSWD), or connect as root.",
	PeerTimeout:      "The peer did not finish in time: check that the command returns by hand, or raise --peer-timeout.",
	PeerIncompatible: "Install the same asym release on both hosts.",
	PeerFailed:       "Run the peer command by hand to see what it says; the last lines of its error output are in the evidence.",
	PeerNotRoot:      "Add sudo to the peer command, e.g. --peer 'ssh HOST sudo'.",
}

func init() {
	Catalog = append(Catalog,
		Entry{ReplyLostInPath, Critical, "third", "The reply left one end and never reached the other",
			`Seen on both ends at once while the failure was reproduced (asym --peer with --watch): the far end sends
the reply, and it never arrives where the request came from. Each host on its own only shows half of it:
the client sees its SYN retransmitted, the server sees itself answering. Together they prove the reply is
lost on the way back: a fabric or ISP drops it for its source address, a stateful firewall on the way
back drops it as INVALID, or it returns by a path that does not lead to the client.

When the request arrived on one interface and the reply left by another, the asymmetry starts on the
sending end and its findings name the fix (a source rule and table). Otherwise capture on each hop of
the way back: the first hop that does not pass it on drops it.`},
		Entry{ReplyReturnsElsewhere, Warning, "third", "The reply does not come back through a router that forwarded the request",
			`Seen on both ends at once: a router or firewall forwarded the request, and the reply left the far end but
never crossed that router on its way back. For a stateless router that may be by design (the paths differ);
for a stateful one (conntrack, a firewall, NAT) it is the asymmetry that breaks the flow, since the box
that sees the reply never saw the request. Check where the reply goes (the far end's route back, ECMP on
the routers between) and whether the box that does see it drops it as INVALID.`},
		Entry{RequestLostInPath, Critical, "third", "The request left one end and never reached the other",
			`Seen on both ends at once: the client sends the request, and the server never sees it arrive. The
problem is on the way there, not the way back: a firewall, an ACL, a missing route or a reverse-path
check on a hop between them. Capture on each hop; the first that does not pass it on drops it.`},
		Entry{PeerRoleConflict, Warning, "first", "Both ends see themselves as the same end of the flow",
			`asym decides each host's role from the flow's addresses: the host holding the source is the client, the
one holding the destination the server. When both ends come out the same, the --peer command reaches the
wrong host, or a NAT between them rewrites the addresses, so each end must be given the flow as it sees it.`},
	)
	for _, e := range []Entry{
		{PeerUnreachable, Warning, "first", "The peer could not be reached",
			"The --peer command (ssh) could not connect or log in: the far end was not diagnosed; this host's diagnosis is complete without it."},
		{PeerNoAsym, Warning, "first", "asym is not installed on the peer",
			"The --peer command ran, but there is no asym to run on the far end: it needs the same asym binary (one static file)."},
		{PeerNoSudo, Warning, "first", "sudo on the peer needs a password asym cannot type",
			"The peer command runs without a terminal, so sudo cannot prompt: the far end was not diagnosed."},
		{PeerTimeout, Warning, "first", "The peer did not answer in time",
			"The --peer command did not finish within its time limit and was stopped; this host's diagnosis is complete without it."},
		{PeerIncompatible, Warning, "first", "The peer runs an asym that cannot exchange evidence with this one",
			"The far end's asym speaks another evidence format (or predates asym collect): install the same release on both hosts."},
		{PeerFailed, Warning, "first", "The peer command failed",
			"The --peer command ran but gave no evidence; its error output is in the evidence."},
		{PeerNotRoot, Warning, "first", "asym ran on the peer without root",
			"The far end's probes that need root (conntrack, nftables, capture) were unavailable, so its side of the diagnosis is partial."},
	} {
		Catalog = append(Catalog, e)
	}
}

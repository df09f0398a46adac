package playbook

import (
	"fmt"
	"slices"
	"strings"

	"asym/evidence"
)

// Verdict is what a step, or a whole check, proved about the flow on this
// host. A false "clean" sends the engineer away from the culprit, so clean
// is said only when evidence shows the flow's way through this host
// working; without a finding and without that proof the verdict is "not
// proven", with what would prove it.
type Verdict string

const (
	VerdictBroken    Verdict = "broken"     // a critical finding: the kernel's answer or the packets show the flow failing here
	VerdictSuspect   Verdict = "suspect"    // findings that may explain the failure, none shown to break the flow
	VerdictClean     Verdict = "clean"      // proven: the flow's way through this host works
	VerdictNotProven Verdict = "not proven" // no finding, and nothing shows the flow working either
)

// Judgement is a verdict with its reasons.
type Judgement struct {
	Verdict Verdict `json:"verdict"`
	// Why says what the verdict rests on.
	Why []string `json:"why,omitempty"`
	// Prove says what would prove it (for not proven), or confirm it.
	Prove []string `json:"prove,omitempty"`
	// Answered says the evidence saw the flow answered here (conntrack
	// saw the reply, or its reply packets crossed this host): what turns a
	// path without findings into a proven clean one.
	Answered bool `json:"answered,omitempty"`
	// offPath marks the first step's judgement of a host off the flow's
	// path: it is then the whole check's, alone.
	offPath bool
	// watched: the flow's packets were captured in a window, so "watch the
	// flow" is not what would prove it (an empty window keeps the advice:
	// the failure was perhaps not reproduced).
	watched bool
}

// rank orders verdicts from the most to the least alarming.
func (v Verdict) rank() int {
	switch v {
	case VerdictBroken:
		return 0
	case VerdictSuspect:
		return 1
	case VerdictNotProven:
		return 2
	}
	return 3
}

// Symbol is the verdict's mark for screens: never colour alone.
func (v Verdict) Symbol() string {
	switch v {
	case VerdictBroken:
		return "✗"
	case VerdictSuspect:
		return "!"
	case VerdictClean:
		return "✓"
	}
	return "?"
}

// What would prove a flow working, said once.
const (
	proveLive  = "watch the flow while it fails: press l in the view, or asym check --watch 10s, and reproduce it: its packets show where it dies"
	provePeer  = "diagnose the other end too: --peer 'ssh HOST sudo' (or 'ip netns exec NAME')"
	proveTrace = "trace both ways: asym trace --peer 'ssh HOST sudo' shows where the two paths part (it sends probes)"
	proveIif   = "say where the request arrives on this router with --iif IFACE, or watch its packets live"
)

// judgeFindings is broken or suspect when findings of the step exist.
func judgeFindings(fs []Finding) (Judgement, bool) {
	if len(fs) == 0 {
		return Judgement{}, false
	}
	j := Judgement{Verdict: VerdictSuspect}
	for _, f := range fs {
		if f.Severity == Critical {
			j.Verdict = VerdictBroken
		}
		j.Why = append(j.Why, fmt.Sprintf("%s: %s", f.ID, f.Title))
	}
	return j, true
}

// JudgeStep gives a step's verdict from its findings and the evidence.
func JudgeStep(step string, e *evidence.Evidence, findings []Finding) Judgement {
	var mine []Finding
	for _, f := range findings {
		if f.Step == step && f.Side == "" {
			mine = append(mine, f)
		}
	}
	if j, ok := judgeFindings(mine); ok {
		return j
	}
	switch step {
	case "first":
		return judgePath(e)
	case "second":
		return judgeState(e)
	}
	return judgeLive(e)
}

// judgePath: the two directions' decisions agree on this host.
func judgePath(e *evidence.Evidence) Judgement {
	h, req, rep := e.Host, okPath(e.Request), okPath(e.Reply)
	if h != nil && h.OK() && h.Role == evidence.RoleOffPath {
		return offPath(e)
	}
	if h == nil || !h.OK() || req == nil || rep == nil {
		return Judgement{Verdict: VerdictNotProven, Why: []string{"the route decisions did not run here (or were unavailable)"}}
	}
	if req.Decision.Failed() || rep.Decision.Failed() {
		return Judgement{Verdict: VerdictNotProven, Why: []string{"the kernel refused a route decision for the flow, and no analyzer explains it: " + firstFailed(req, rep)},
			Prove: []string{proveLive}}
	}
	switch h.Role {
	case evidence.RoleClient:
		if req.Egress != "" && rep.Ingress == req.Egress {
			return Judgement{Verdict: VerdictClean, Why: []string{fmt.Sprintf("the request leaves by %s and the kernel accepts the reply arriving back on %s", req.Egress, rep.Ingress)}}
		}
	case evidence.RoleServer:
		if rep.Egress != "" && rep.Egress == req.Ingress {
			return Judgement{Verdict: VerdictClean, Why: []string{fmt.Sprintf("the request arrives on %s and the reply leaves by %s", req.Ingress, rep.Egress)}}
		}
	case evidence.RoleMiddle:
		return judgeMiddlePath(e, req, rep)
	}
	return Judgement{Verdict: VerdictNotProven, Why: []string{"the request's and the reply's interfaces could not be compared"}, Prove: []string{proveLive}}
}

// offPath: a host that holds neither address and does not forward has no
// part in the flow; asym says so instead of judging its routes.
func offPath(e *evidence.Evidence) Judgement {
	key := "net.ipv4.ip_forward"
	if e.Flow.Is6() {
		key = "net.ipv6.conf.all.forwarding"
	}
	return Judgement{Verdict: VerdictNotProven, Why: []string{"this host is not on the flow's path: it holds neither address and does not forward (" + key + " = 0)"},
		Prove: []string{"run asym on one of the flow's ends, or on a router it crosses"}, offPath: true}
}

func judgeMiddlePath(e *evidence.Evidence, req, rep *evidence.PathView) Judgement {
	// Evidence recorded before the host probe told off-path hosts apart.
	if fwd, ok := e.Sysctls.Value("net.ipv4.ip_forward"); ok && fwd == 0 && e.Flow.Src.Addr().Is4() {
		return offPath(e)
	}
	if !req.IngressGivenByPerson() {
		return Judgement{Verdict: VerdictNotProven, Why: []string{fmt.Sprintf("asym took the request to arrive on %s because this router routes the source that way; the routes agree by construction, which proves nothing", req.Ingress)},
			Prove: []string{proveIif, proveLive}}
	}
	if req.Egress != "" && rep.Egress == req.Ingress && rep.Ingress == req.Egress {
		return Judgement{Verdict: VerdictClean, Why: []string{fmt.Sprintf("the request crosses %s → %s and the reply %s → %s", req.Ingress, req.Egress, rep.Ingress, rep.Egress)}}
	}
	return Judgement{Verdict: VerdictNotProven, Why: []string{"the two directions cross this router by different interfaces, and nothing here keeps state that would drop them"}, Prove: []string{proveLive}}
}

func firstFailed(ps ...*evidence.PathView) string {
	for _, p := range ps {
		if p.Decision.Failed() {
			return p.Decision.Text
		}
	}
	return ""
}

// judgeState: conntrack saw the reply, or nothing here keeps state.
func judgeState(e *evidence.Evidence) Judgement {
	ct, fw := e.Conntrack, e.Firewall
	if ct == nil || fw == nil || !ct.OK() || !fw.OK() {
		return Judgement{Verdict: VerdictNotProven, Why: []string{"the firewall or conntrack probe did not run here (or was unavailable)"}}
	}
	replied, waiting, halfOpen := ctAnswered(ct.Entries)
	switch {
	case halfOpen != nil && replied == nil && waiting == 1:
		return Judgement{Verdict: VerdictNotProven, Why: []string{halfOpenWhy(role(e)) + ": " + halfOpen.Text}, Prove: []string{provePeer, proveTrace, proveLive}}
	case replied != nil && waiting == 0:
		return Judgement{Verdict: VerdictClean, Why: []string{"conntrack saw the reply: " + replied.Text}, Answered: true}
	case replied != nil:
		// A flow given without a source port: some of its connections were
		// answered, others not (yet). That is not the flow working.
		return Judgement{Verdict: VerdictNotProven, Why: []string{fmt.Sprintf("conntrack saw the reply on %d of the flow's %d connections, not on the other %d ([UNREPLIED])",
			len(ct.Entries)-waiting, len(ct.Entries), waiting)},
			Prove: []string{"give the source port of a failing connection and check again", proveLive}}
	}
	stateful := ct.Count > 0
	for _, r := range fw.Rules {
		stateful = stateful || r.Kind == evidence.RuleCtInvalid || r.Kind == evidence.RuleFibRPFilter
	}
	if !stateful {
		return Judgement{Verdict: VerdictClean, Why: []string{"nothing on this host keeps state for flows: no conntrack entries, no ct state or reverse-path rules"}}
	}
	if len(ct.Entries) == 0 {
		return Judgement{Verdict: VerdictNotProven, Why: []string{"this host tracks connections, but holds no entry for the flow: it was not tried lately, or its packets never reached this host"},
			Prove: []string{"try the flow and check again: the entry (or its absence while packets arrive) tells", proveLive}}
	}
	return Judgement{Verdict: VerdictNotProven}
}

// judgeLive: the flow's packets crossed this host both ways.
func judgeLive(e *evidence.Evidence) Judgement {
	l := e.Live
	switch {
	case l == nil:
		return Judgement{Verdict: VerdictNotProven, Why: []string{"no live evidence: the flow's packets were not watched"}, Prove: []string{proveLive}}
	case !l.OK() || !l.Captured:
		why := l.Reason
		if why == "" {
			why = strings.Join(l.Problems, "; ")
		}
		return Judgement{Verdict: VerdictNotProven, Why: []string{"the flow's packets could not be captured: " + why}}
	}
	j := judgeWindow(l, role(e))
	j.watched = countPackets(l, func(evidence.CapturedPacket) bool { return true }) > 0
	return j
}

// judgeWindow judges a window whose packets were captured.
func judgeWindow(l *evidence.LiveEvidence, r evidence.Role) Judgement {
	req := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && !p.IsICMP() })
	rep := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && !p.IsICMP() })
	switch {
	case req == 0 && rep == 0:
		return Judgement{Verdict: VerdictNotProven, Why: []string{fmt.Sprintf("0 packets of the flow were seen in the %s window", l.End.Sub(l.Start).Round(100e6))},
			Prove: []string{proveLive}}
	case req > 0 && rep > 0 && handshakeOpen(l, r):
		// A server's SYN-ACK leaving proves it answered, not that the
		// answer arrived: only the client's ACK coming back does.
		return Judgement{Verdict: VerdictNotProven, Why: []string{fmt.Sprintf("%d request and %d reply packets crossed this host, but no request packet acknowledged a SYN-ACK: the handshake never completed through this host (the SYN-ACK, or the ACK that answers it, is lost beyond it)", req, rep)},
			Prove: []string{provePeer, proveTrace}}
	case req > 0 && rep > 0:
		return Judgement{Verdict: VerdictClean, Why: []string{fmt.Sprintf("%d request and %d reply packets of the flow crossed this host in the window", req, rep)}, Answered: true}
	}
	return Judgement{Verdict: VerdictNotProven, Why: []string{fmt.Sprintf("%d request and %d reply packets were seen, and no analyzer explains the silence", req, rep)},
		Prove: []string{provePeer}}
}

// handshakeOpen says the window shows TCP handshakes that never completed
// here: SYN-ACKs, and no request packet after them that acknowledges (a
// bare ACK, data, a FIN: the ACK flag without SYN or RST). A client's
// reset is no completion: it answers a stale socket's challenge ACK as
// readily as anything. Packets whose TCP header was not captured prove
// nothing either way; a reset that came back through this host is an
// answer (the path works), one a server sends proves no more than its
// SYN-ACK does.
func handshakeOpen(l *evidence.LiveEvidence, r evidence.Role) bool {
	synack, acked := false, false
	for _, p := range l.Packets {
		switch {
		case p.OtherHost || p.IsICMP() || p.TCP == 0:
		case p.Reply && p.SYNACK():
			synack = true
		case p.Reply && p.RST() && r != evidence.RoleServer:
			return false // a reset came back through this host: answered, the path works
		case !p.Reply && synack && p.TCP.Has(evidence.TCPAck) && !p.TCP.Has(evidence.TCPSyn) && !p.RST():
			acked = true
		}
	}
	return synack && !acked
}

// Judge gives the whole check's verdict: the worst finding's, or clean
// when the path agrees and the flow is shown working (its reply seen by
// conntrack or on the wire), or not proven.
func Judge(steps []StepReport) Judgement {
	worst := VerdictClean
	var out Judgement
	for _, s := range steps {
		if s.Verdict.Verdict.rank() < worst.rank() {
			worst = s.Verdict.Verdict
		}
	}
	switch worst {
	case VerdictBroken, VerdictSuspect:
		out.Verdict = worst
		for _, s := range steps {
			if s.Verdict.Verdict == worst {
				out.Why = append(out.Why, s.Verdict.Why...)
			}
		}
		return out
	}
	path, working := stepVerdict(steps, "first"), false
	if path.offPath {
		return path
	}
	for _, s := range steps[1:] {
		if s.Verdict.Verdict == VerdictClean && s.Verdict.Answered {
			working = true
			out.Why = append(out.Why, s.Verdict.Why...)
		}
	}
	if path.Verdict == VerdictClean && working {
		out.Verdict, out.Answered = VerdictClean, true
		out.Why = append(path.Why, out.Why...)
		return out
	}
	out = Judgement{Verdict: VerdictNotProven, Why: []string{"no finding, but nothing shows the flow working through this host either"}}
	watched := false
	for _, s := range steps {
		watched = watched || s.Verdict.watched
		if s.Verdict.Verdict == VerdictNotProven {
			out.Why = append(out.Why, s.Verdict.Why...)
			out.Prove = appendMissing(out.Prove, s.Verdict.Prove...)
		}
	}
	out.Prove = appendMissing(out.Prove, proveLive, provePeer)
	if watched {
		out.Prove = slices.DeleteFunc(out.Prove, func(p string) bool { return p == proveLive })
	}
	return out
}

func stepVerdict(steps []StepReport, id string) Judgement {
	for _, s := range steps {
		if s.ID == id {
			return s.Verdict
		}
	}
	return Judgement{Verdict: VerdictNotProven}
}

func appendMissing(ls []string, more ...string) []string {
	for _, m := range more {
		if !contains(ls, m) {
			ls = append(ls, m)
		}
	}
	return ls
}

// JudgeBothEnds joins this host's verdict with the far end's and with the
// findings across both ends (or about a peer that could not be diagnosed):
// the worst wins; clean needs both ends clean.
func JudgeBothEnds(here Judgement, pa PeerAnalysis) Judgement {
	peer := Judgement{Verdict: VerdictNotProven, Why: []string{"the other end was not diagnosed"}}
	if pa.Peer != nil && pa.Peer.Verdict != nil {
		peer = *pa.Peer.Verdict
	}
	var across []Finding
	for _, f := range pa.Findings {
		across = append(across, f)
	}
	sides := []struct {
		name string
		j    Judgement
	}{{"here", here}, {"peer", peer}}
	if j, ok := judgeFindings(across); ok {
		sides = append(sides, struct {
			name string
			j    Judgement
		}{"across both ends", j})
	}
	out := Judgement{Verdict: VerdictClean, Answered: here.Answered || peer.Answered}
	for _, s := range sides {
		if s.j.Verdict.rank() < out.Verdict.rank() {
			out.Verdict = s.j.Verdict
		}
	}
	for _, s := range sides {
		if s.j.Verdict == out.Verdict || out.Verdict == VerdictClean {
			for _, w := range s.j.Why {
				out.Why = append(out.Why, s.name+": "+w)
			}
			out.Prove = appendMissing(out.Prove, s.j.Prove...)
		}
	}
	return out
}

// halfOpenWhy says what a SYN_RECV entry shows, by where this host is:
// conntrack marks the reply seen as soon as the SYN-ACK passes it, which on
// a server is its own answer leaving.
func halfOpenWhy(r evidence.Role) string {
	switch r {
	case evidence.RoleServer:
		return "this host answered (its SYN-ACK passed conntrack), but the client's ACK never came: the handshake does not complete, and the SYN-ACK or the ACK is lost beyond this host"
	case evidence.RoleMiddle:
		return "the SYN and the SYN-ACK crossed this host, the client's ACK did not: it takes another way, or the SYN-ACK is lost beyond this host"
	}
	return "the SYN-ACK arrived, but the handshake did not complete here"
}

// ctAnswered is the first of the flow's entries that saw its reply (nil
// when none did) and how many did not.
func ctAnswered(entries []evidence.ConntrackEntry) (replied *evidence.ConntrackEntry, waiting int, halfOpen *evidence.ConntrackEntry) {
	for i, en := range entries {
		switch {
		case en.Unreplied:
			waiting++
		case en.TCPState == "SYN_RECV":
			// The SYN-ACK passed, the handshake did not complete: on a
			// server that is its own answer leaving, not the flow answered.
			waiting++
			if halfOpen == nil {
				halfOpen = &entries[i]
			}
		case replied == nil:
			replied = &entries[i]
		}
	}
	return replied, waiting, halfOpen
}

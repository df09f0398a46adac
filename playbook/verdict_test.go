package playbook

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
)

// judged runs the analyzers and the report's verdicts over evidence, with
// every probe whose evidence is present counted as run.
func judged(e *evidence.Evidence) Report {
	return NewReport(time.Now(), e, nil, e.Reports(), Analyze(e, len(Steps)-1))
}

// TestVerdicts: "clean" only when proven — the path agrees and the flow is
// seen answered here (conntrack or packets); no finding without that proof
// is "not proven" with what would prove it; findings are broken or
// suspect.
func TestVerdicts(t *testing.T) {
	server := netip.MustParseAddrPort("198.51.100.11:8080")
	client := netip.MustParseAddrPort("203.0.113.10:40000")
	pkt := func(reply bool) evidence.CapturedPacket {
		p := evidence.CapturedPacket{Iface: "eth1", Dir: evidence.DirIn, Src: client, Dst: server, Proto: 6, TCP: evidence.TCPSyn, Flags: "S"}
		if reply {
			p.Dir, p.Src, p.Dst, p.TCP, p.Flags, p.Reply = evidence.DirOut, server, client, evidence.TCPSyn|evidence.TCPAck, "S.", true
		}
		return p
	}
	ack := evidence.CapturedPacket{Iface: "eth1", Dir: evidence.DirIn, Src: client, Dst: server, Proto: 6, TCP: evidence.TCPAck, Flags: "."}
	live := func(pkts ...evidence.CapturedPacket) *evidence.LiveEvidence {
		l := &evidence.LiveEvidence{Report: okRep("live"), Captured: true, Packets: pkts}
		l.End = l.Start.Add(3 * time.Second)
		return l
	}
	cases := []struct {
		name     string
		edit     func(e *evidence.Evidence)
		want     Verdict
		answered bool
		says     string // in the reasons or what would prove it
	}{
		{"healthy, nothing watched", func(e *evidence.Evidence) {}, VerdictNotProven, false, "press l in the view"},
		{"healthy, answered on the wire", func(e *evidence.Evidence) { e.Live = live(pkt(false), pkt(true), ack) }, VerdictClean, true, "2 request and 1 reply packets"},
		// The server's SYN-ACK leaving is its answer, not the answer
		// arriving: without the client's ACK the handshake never completed.
		{"the SYN-ACK leaves, no ACK comes back", func(e *evidence.Evidence) { e.Live = live(pkt(false), pkt(true), pkt(false), pkt(true)) }, VerdictNotProven, false, "the handshake never completed through this host"},
		// A stale request socket answers a new SYN with a challenge ACK;
		// the client resets and tries again: still no completed handshake.
		{"challenge ACKs and the client's resets", func(e *evidence.Evidence) {
			challenge, reset := pkt(true), pkt(false)
			challenge.TCP, challenge.Flags = evidence.TCPAck, "."
			reset.TCP, reset.Flags = evidence.TCPRst, "R"
			e.Live = live(pkt(false), challenge, reset, pkt(false), pkt(true), pkt(false), challenge, reset)
		}, VerdictNotProven, false, "the handshake never completed through this host"},
		{"answered with a reset", func(e *evidence.Evidence) {
			rst := pkt(true)
			rst.TCP, rst.Flags = evidence.TCPRst|evidence.TCPAck, "R."
			e.Live = live(pkt(false), rst)
		}, VerdictClean, true, "1 request and 1 reply packets"},
		{"a server's own reset leaving", func(e *evidence.Evidence) {
			rst := pkt(true)
			rst.TCP, rst.Flags = evidence.TCPRst|evidence.TCPAck, "R."
			e.Live = live(pkt(false), pkt(true), rst)
		}, VerdictNotProven, false, "the handshake never completed"},
		{"no source port: one connection established, another half-open", func(e *evidence.Evidence) {
			e.Flow.Src = netip.AddrPortFrom(e.Flow.Src.Addr(), 0)
			e.Conntrack.Count = 2
			e.Conntrack.Entries = []evidence.ConntrackEntry{
				{MatchedAs: "original", Proto: 6, TCPState: "ESTABLISHED", Assured: true, Text: "tcp 6 431999 ESTABLISHED … sport=40000 …"},
				{MatchedAs: "original", Proto: 6, TCPState: "SYN_RECV", Text: "tcp 6 58 SYN_RECV … sport=40001 …"},
			}
		}, VerdictNotProven, false, "not on the other 1"},
		{"conntrack: SYN_RECV on the server", func(e *evidence.Evidence) {
			e.Conntrack.Count = 1
			e.Conntrack.Entries = []evidence.ConntrackEntry{{MatchedAs: "original", Proto: 6, OrigSrc: client, OrigDst: server, ReplySrc: server, ReplyDst: client, TCPState: "SYN_RECV", Text: "tcp 6 58 SYN_RECV …"}}
		}, VerdictNotProven, false, "the client's ACK never came"},
		{"healthy, watched while nothing was tried", func(e *evidence.Evidence) { e.Live = live() }, VerdictNotProven, false, "0 packets of the flow"},
		{"a request arrives, no reply leaves, nothing explains it", func(e *evidence.Evidence) { e.Live = live(pkt(false)) }, VerdictNotProven, false, "1 request and 0 reply packets"},
		{"capture unavailable", func(e *evidence.Evidence) {
			e.Live = live()
			e.Live.Captured, e.Live.Status, e.Live.Reason = false, evidence.StatusUnavailable, "needs root"
		}, VerdictNotProven, false, "could not be captured"},
		{"conntrack saw the reply", func(e *evidence.Evidence) {
			e.Conntrack.Count = 1
			e.Conntrack.Entries = []evidence.ConntrackEntry{{MatchedAs: "original", Proto: 6, OrigSrc: client, OrigDst: server, ReplySrc: server, ReplyDst: client, TCPState: "ESTABLISHED", Assured: true, Text: "tcp 6 431999 ESTABLISHED …"}}
		}, VerdictClean, true, "conntrack saw the reply"},
		{"a flow without a source port: every connection answered", func(e *evidence.Evidence) {
			e.Flow.Src = netip.AddrPortFrom(e.Flow.Src.Addr(), 0)
			e.Conntrack.Count = 2
			e.Conntrack.Entries = []evidence.ConntrackEntry{
				{MatchedAs: "original", Proto: 6, OrigSrc: client, OrigDst: server, ReplySrc: server, ReplyDst: client, TCPState: "ESTABLISHED", Assured: true, Text: "tcp 6 431999 ESTABLISHED … sport=40000 …"},
				{MatchedAs: "original", Proto: 6, TCPState: "TIME_WAIT", Assured: true, Text: "tcp 6 100 TIME_WAIT … sport=40001 …"},
			}
		}, VerdictClean, true, "conntrack saw the reply: tcp 6 431999 ESTABLISHED"},
		{"a flow without a source port: one connection answered, another not", func(e *evidence.Evidence) {
			e.Flow.Src = netip.AddrPortFrom(e.Flow.Src.Addr(), 0)
			e.Conntrack.Count = 2
			e.Conntrack.Entries = []evidence.ConntrackEntry{
				{MatchedAs: "original", Proto: 6, TCPState: "ESTABLISHED", Assured: true, Text: "tcp 6 431999 ESTABLISHED … sport=40000 …"},
				{MatchedAs: "original", Proto: 6, TCPState: "SYN_RECV", Unreplied: true, Text: "tcp 6 59 SYN_RECV … sport=40001 [UNREPLIED] …"},
			}
		}, VerdictNotProven, false, "conntrack saw the reply on 1 of the flow's 2 connections, not on the other 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := loadRecorded(t, "healthy-host")
			e.Live = nil
			c.edit(&e)
			r := judged(&e)
			if len(r.Findings) != 0 {
				t.Fatalf("findings %v", ids(r.Findings))
			}
			if r.Verdict.Verdict != c.want || r.Verdict.Answered != c.answered {
				t.Fatalf("verdict %+v, want %s (answered %v)", r.Verdict, c.want, c.answered)
			}
			if all := strings.Join(append(r.Verdict.Why, r.Verdict.Prove...), "\n"); !strings.Contains(all, c.says) {
				t.Errorf("the verdict does not say %q:\n%s", c.says, all)
			}
			if r.Steps[0].Verdict.Verdict != VerdictClean {
				t.Errorf("the first step of a symmetric path is clean: %+v", r.Steps[0].Verdict)
			}
		})
	}
}

// TestVerdictOfFindings: a critical finding breaks the flow, warnings only
// make it suspect, and the step that found them carries the verdict.
func TestVerdictOfFindings(t *testing.T) {
	e := loadRecorded(t, "two-nics-strict-host")
	r := judged(&e)
	if r.Verdict.Verdict != VerdictBroken || r.Steps[0].Verdict.Verdict != VerdictBroken {
		t.Fatalf("strict rp_filter dropping the request is broken: %+v / %+v", r.Verdict, r.Steps[0].Verdict)
	}
	if !strings.Contains(strings.Join(r.Verdict.Why, "\n"), "rp_filter_strict_drop") {
		t.Errorf("the verdict names the finding: %v", r.Verdict.Why)
	}
	fs := []Finding{{ID: "arp_flux", Severity: Warning, Step: "third", Title: "eth0 and eth1 answer ARP for each other"}}
	if j := JudgeStep("third", &e, fs); j.Verdict != VerdictSuspect {
		t.Errorf("warnings alone are suspect: %+v", j)
	}
}

// TestVerdictMiddle: on a router, agreeing routes prove nothing when asym
// inferred where the request arrives, and a host that neither owns an end
// nor forwards is not on the flow's path at all.
func TestVerdictMiddle(t *testing.T) {
	e := loadRecorded(t, "firewall-ecmp-fw1")
	e.Live, e.Conntrack, e.Firewall = nil, nil, nil
	if e.Host.Role != evidence.RoleMiddle {
		t.Fatalf("fw1 is a router: %s", e.Host.Role)
	}
	j := judgePath(&e)
	if j.Verdict != VerdictNotProven || !strings.Contains(strings.Join(j.Prove, "\n"), "--iif") {
		t.Errorf("inferred ingress: %+v", j)
	}
	e.Sysctls.Values["net.ipv4.ip_forward"] = 0
	if j := judgePath(&e); j.Verdict != VerdictNotProven || !strings.Contains(j.Why[0], "not on the flow's path") {
		t.Errorf("a host that does not forward: %+v", j)
	}
}

// TestVerdictOffPath: a host the host probe found off the flow's path (it
// holds neither address and does not forward) says so as the whole
// verdict and in place of "none", without asking to watch a flow that
// cannot cross it.
func TestVerdictOffPath(t *testing.T) {
	e := loadRecorded(t, "firewall-ecmp-fw1")
	e.Live, e.Conntrack, e.Firewall, e.Request, e.Reply = nil, nil, nil, nil, nil
	e.Host.Role = evidence.RoleOffPath
	r := judged(&e)
	if r.Verdict.Verdict != VerdictNotProven || len(r.Verdict.Why) != 1 || !strings.HasPrefix(r.Verdict.Why[0], "this host is not on the flow's path") ||
		strings.Contains(strings.Join(r.Verdict.Prove, "\n"), "press l") {
		t.Errorf("verdict %+v", r.Verdict)
	}
	var text, md strings.Builder
	r.WriteText(&text)
	r.WriteMarkdown(&md)
	if !strings.Contains(text.String(), "== Findings\n   this host is not on the flow's path: it holds neither address and does not forward;") || strings.Contains(text.String(), "none:") {
		t.Errorf("text:\n%s", text.String())
	}
	if !strings.Contains(md.String(), "### Findings\n\nThis host is not on the flow's path") {
		t.Errorf("markdown:\n%s", md.String())
	}
}

// TestVerdictBothEnds: the worst end wins; clean needs both.
func TestVerdictBothEnds(t *testing.T) {
	clean := Judgement{Verdict: VerdictClean, Why: []string{"1 request and 1 reply packets"}, Answered: true}
	unproven := Judgement{Verdict: VerdictNotProven, Why: []string{"no live evidence"}}
	if j := JudgeBothEnds(clean, PeerAnalysis{Peer: &PeerReport{Verdict: &unproven}}); j.Verdict != VerdictNotProven {
		t.Errorf("clean here, not proven there: %+v", j)
	}
	if j := JudgeBothEnds(clean, PeerAnalysis{Peer: &PeerReport{Verdict: &clean}}); j.Verdict != VerdictClean {
		t.Errorf("clean on both ends: %+v", j)
	}
	lost := PeerAnalysis{Peer: &PeerReport{Verdict: &clean}, Findings: []Finding{{ID: "reply_lost_in_path", Severity: Critical, Side: SideBoth, Title: "the SYN-ACK never arrived"}}}
	if j := JudgeBothEnds(clean, lost); j.Verdict != VerdictBroken || !strings.Contains(strings.Join(j.Why, " "), "across both ends: reply_lost_in_path") {
		t.Errorf("a finding across both ends: %+v", j)
	}
	if j := JudgeBothEnds(clean, PeerAnalysis{}); j.Verdict != VerdictNotProven {
		t.Errorf("a peer that gave no evidence proves nothing: %+v", j)
	}
}

// TestFixOutcomeHealed: a fix heals when the findings it was for are gone
// and nothing critical is left; one that leaves them did not heal.
func TestFixOutcomeHealed(t *testing.T) {
	strict := Finding{ID: RPFilterStrictDrop, Severity: Critical}
	flux := Finding{ID: ARPFlux, Severity: Warning}
	o := FixOutcome{Fixed: []FindingID{RPFilterStrictDrop}, Before: []Finding{strict, flux}, After: []Finding{flux}}
	if !o.Healed() || len(o.Unhealed()) != 0 {
		t.Errorf("the finding is gone, a warning stays: healed %v, unhealed %v", o.Healed(), o.Unhealed())
	}
	o.After = []Finding{strict}
	if o.Healed() || len(o.Unhealed()) != 1 {
		t.Errorf("the finding is still there: healed %v, unhealed %v", o.Healed(), o.Unhealed())
	}
	o.After = []Finding{{ID: ReplyWrongEgress, Severity: Critical}}
	if o.Healed() || len(o.Unhealed()) != 0 {
		t.Errorf("another critical finding remains: healed %v, unhealed %v", o.Healed(), o.Unhealed())
	}
}

// TestWatchedNotAskedAgain: a window that saw the flow's packets is not
// followed by "watch the flow" among what would prove it; an empty one is.
func TestWatchedNotAskedAgain(t *testing.T) {
	server := netip.MustParseAddrPort("198.51.100.11:8080")
	client := netip.MustParseAddrPort("203.0.113.10:40000")
	syn := evidence.CapturedPacket{Iface: "eth1", Dir: evidence.DirIn, Src: client, Dst: server, Proto: 6, TCP: evidence.TCPSyn, Flags: "S"}
	synack := evidence.CapturedPacket{Iface: "eth1", Dir: evidence.DirOut, Src: server, Dst: client, Proto: 6, TCP: evidence.TCPSyn | evidence.TCPAck, Flags: "S.", Reply: true}
	for _, c := range []struct {
		pkts []evidence.CapturedPacket
		ask  bool
	}{{[]evidence.CapturedPacket{syn, synack, syn, synack}, false}, {nil, true}} {
		e := loadRecorded(t, "healthy-host")
		e.Live = &evidence.LiveEvidence{Report: okRep("live"), Captured: true, Packets: c.pkts}
		e.Live.End = e.Live.Start.Add(3 * time.Second)
		r := judged(&e)
		if r.Verdict.Verdict != VerdictNotProven || contains(r.Verdict.Prove, proveLive) != c.ask {
			t.Errorf("%d packets: verdict %s, asks to watch: %v, want %v", len(c.pkts), r.Verdict.Verdict, contains(r.Verdict.Prove, proveLive), c.ask)
		}
	}
}

package playbook

// Analyzers of marks: policy routing by fwmark, the connection marks that
// carry it from the request to the reply, and the reverse-path check that
// ignores marks unless told otherwise.

import (
	"fmt"
	"net/netip"

	"asym/evidence"
	"asym/fix"
)

// marks returns the marks view when it ran and marks play a part.
func marks(e *evidence.Evidence) *evidence.MarksView {
	if m := e.Marks; ok(m) && (len(m.Rules) > 0 || m.Conn != 0) {
		return m
	}
	return nil
}

// markedReplyEgress is where the reply really leaves when it carries a
// mark: the kernel's answer with that mark. ok is false when the reply
// carries none (the First step's decision is then the reply's).
func markedReplyEgress(e *evidence.Evidence) (string, bool) {
	m := marks(e)
	if m == nil || m.Reply == 0 || m.ReplyRoute == nil || m.ReplyRoute.Failed() {
		return "", false
	}
	return m.ReplyRoute.Dev, true
}

// replyMarkedBack says whether the reply's mark sends it back the way the
// request came: the unmarked decision of the First step is then not the
// reply's, and the asymmetry it shows is not there.
func replyMarkedBack(e *evidence.Evidence) bool {
	dev, ok := markedReplyEgress(e)
	return ok && e.Request != nil && dev == e.Request.Ingress
}

// markNotRestored: the connection is marked on the way in, a policy rule
// routes that mark back by the interface the request came in on, but
// nothing gives the reply its connection's mark back: the reply carries no
// mark and follows main out of another interface.
func markNotRestored(e *evidence.Evidence) []Finding {
	m, req, rep := marks(e), okPath(e.Request), okPath(e.Reply)
	if m == nil || req == nil || rep == nil || m.Conn == 0 || m.Restored || m.ReplyRestored == nil || m.ReplyRestored.Failed() {
		return nil
	}
	meant := m.ReplyRestored.Dev
	actual := rep.Egress
	if dev, ok := markedReplyEgress(e); ok {
		actual = dev
	}
	if meant != req.Ingress || actual == meant || actual == "" {
		return nil
	}
	ev := []Line{}
	for _, r := range m.Rules {
		if r.Sets == evidence.MarkConn || r.Sets == evidence.MarkPacket && !r.Copy {
			ev = append(ev, Line{Probe: evidence.ProbeMarks, Text: fmt.Sprintf("%s %s %s (hook %s): %s", r.Family, r.Table, r.Chain, r.Hook, r.Text)})
		}
	}
	ev = append(ev,
		Line{Probe: evidence.ProbeMarks, Text: fmt.Sprintf("the connection's mark is 0x%x; no rule copies it back onto the reply (meta mark set ct mark)", m.Conn)},
		Line{Probe: evidence.ProbeMarks, Text: "were the mark restored, the reply would go: " + m.ReplyRestored.Text},
		Line{Probe: rep.Probe, Text: fmt.Sprintf("without it the reply goes: %s   ← leaves by %s", rep.Decision.Text, actual)})
	return []Finding{{
		ID:       MarkNotRestored,
		Title:    fmt.Sprintf("Connections arriving on %s are marked 0x%x, but their replies never get the mark back: they follow main out of %s", req.Ingress, m.Conn, actual),
		Evidence: ev,
		Fix:      restoreMarkFix(e, m, req.Ingress),
	}}
}

// restoreMarkFix: the mark's own fix is a restore rule in the firewall,
// which asym does not apply; what it can apply is a source rule that sends
// the reply the same way (before any rule that decides it now).
func restoreMarkFix(e *evidence.Evidence, m *evidence.MarksView, ingress string) *fix.Fix {
	restore := "nft add table ip asym_restore; nft add chain ip asym_restore output '{ type route hook output priority mangle; }'; nft add rule ip asym_restore output meta mark set ct mark"
	fx := &fix.Fix{Summary: fmt.Sprintf("Give replies their connection's mark back (meta mark set ct mark in a type route hook output chain), or route %s's replies by %s with a source rule", e.Host.Local, ingress),
		Advice: "Restore the mark where the firewall is configured: " + restore + " (iptables: -t mangle -A OUTPUT -j CONNMARK --restore-mark). asym does not change firewall rules.",
		Caveat: "The source rule sends every reply from " + e.Host.Local.String() + " by " + ingress + ", marked or not; the restore keeps the choice per connection."}
	if h := e.Host; h != nil && h.Role == evidence.RoleServer && h.Local.IsValid() && m.ReplyRestored.Table != 0 {
		fx.Steps = fix.Steps{&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: sourceRulePriority(e), Src: netip.PrefixFrom(h.Local, h.Local.BitLen()), Table: m.ReplyRestored.Table}, Dev: ingress}}
	}
	return fx
}

// srcValidMarkOff: the request arrives marked (routing by fwmark sends its
// way back by the interface it came in on), but the reverse-path check
// ignores marks unless src_valid_mark is on: it looks up the way back
// without the mark, finds another interface and drops the request.
func srcValidMarkOff(e *evidence.Evidence) []Finding {
	m, req := marks(e), okPath(e.Request)
	if m == nil || req == nil || !req.Input() || m.Request == 0 || m.SrcValidMark != 0 || !req.Decision.RPFReject() ||
		req.RPFilter == nil || req.RPFilter.Effective != 1 || m.ReversePath == nil || m.ReversePath.Dev != req.Ingress {
		return nil
	}
	unmarked := "another interface"
	if rp := req.ReversePath; rp != nil && rp.Dev != "" {
		unmarked = rp.Dev
	}
	return []Finding{{
		ID:    SrcValidMarkOff,
		Title: fmt.Sprintf("The request arrives on %s marked 0x%x, whose route leads back by %s, but the reverse-path check ignores the mark (src_valid_mark=0), finds %s and drops it", req.Ingress, m.Request, req.Ingress, unmarked),
		Evidence: []Line{
			{Probe: evidence.ProbeMarks, Text: fmt.Sprintf("the request's mark at routing: 0x%x", m.Request)},
			{Probe: evidence.ProbeMarks, Text: "the way back with that mark: " + m.ReversePath.Text},
			{Probe: req.Probe, Text: "the way back without it: " + reversePathText(req)},
			{Probe: evidence.ProbeMarks, Text: fmt.Sprintf("src_valid_mark is 0 on %s: the reverse-path check does not use the mark", req.Ingress)},
		},
		Fix: srcValidMarkFix(req.Ingress),
	}}
}

func reversePathText(p *evidence.PathView) string {
	if p.ReversePath == nil {
		return "(not known)"
	}
	return p.ReversePath.Text
}

// srcValidMarkFix makes the reverse-path check use the mark on the
// interface (src_valid_mark is ORed with "all", so the interface's own
// setting is enough and changes nothing elsewhere).
func srcValidMarkFix(ingress string) *fix.Fix {
	return &fix.Fix{Summary: fmt.Sprintf("Let the reverse-path check use the mark on %s (src_valid_mark=1)", ingress),
		Steps:  fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf." + ingress + ".src_valid_mark", Value: "1"}},
		Caveat: "This is what wg-quick and other mark-routing tools set. A source rule would also pass the check, by going around the marks rather than with them."}
}

package playbook

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"unicode/utf8"

	"asym/evidence"
	"asym/fix"
)

// WriteTraceText prints a trace for people: both paths side by side by hop
// from the client when they can be lined up (each with its own TTLs),
// where they part, the device without state, the notes and the findings.
func WriteTraceText(w io.Writer, tr *evidence.Trace, findings []Finding, here evidence.TargetInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "asym trace  %s\n", Clean(tr.Flow.Arrow()))
	fmt.Fprintf(&b, "here  %s  %s  %s\n", Clean(here.Hostname), tr.Role, Clean(tr.Target))
	if p := tr.Peer; p != nil {
		fmt.Fprintf(&b, "peer  %s  %s  ($ %s)\n", p.Role, Clean(p.Target), Clean(evidence.Command(p.Command...)))
		if p.Failure != nil {
			fmt.Fprintf(&b, "      the peer did not trace (%s): %s\n", p.Failure.Kind, Clean(p.Failure.Reason))
		}
	}
	b.WriteString("\n")
	for _, p := range []*evidence.TracePath{&tr.Forward, &tr.Reverse} {
		fmt.Fprintf(&b, "%-7s %s\n", p.Direction, Clean(pathHeading(p)))
	}
	b.WriteString("\n")
	if n, _ := lineUp(tr); n > 0 && tr.Forward.Traced && tr.Reverse.Traced {
		writeSideBySide(&b, tr, n)
	} else {
		writePathList(&b, &tr.Forward)
		writePathList(&b, &tr.Reverse)
	}
	fmt.Fprintf(&b, "\nwhere they part: %s\n", Clean(tr.Divergence))
	if tr.Boundary != "" {
		fmt.Fprintf(&b, "first stateful device without state: %s\n", Clean(tr.Boundary))
	}
	writeTraceNotes(&b, tr)
	if len(findings) > 0 {
		b.WriteString("\n== Findings\n")
		writeFindingsText(&b, findings, fix.Prefixed(here.Prefix))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// pathHeading says what a path's probes were and who sent them.
func pathHeading(p *evidence.TracePath) string {
	who := "traced here"
	switch {
	case !p.Traced && len(p.Plan) > 0:
		who = "not sent (--no-send)"
	case !p.Traced && p.From == SidePeer:
		who = "not traced by the peer"
	case !p.Traced:
		who = "not traced: this host's decision only"
	case p.From == SidePeer:
		who = "traced by the peer"
	}
	s := fmt.Sprintf("%s %s → %s, %s", p.Shape, endpointText(p.Tuple.Src), endpointText(p.Tuple.Dst), who)
	if p.Traced {
		s += fmt.Sprintf(": %d probes, %s", p.Sent, p.Stopped)
	}
	if p.Unavailable != "" {
		s += "; unavailable: " + p.Unavailable
	}
	return s
}

// cell renders one hop in a fixed width.
func cell(h *evidence.TraceHop) string {
	switch {
	case h == nil:
		return ""
	case h.TTL == 0 && !h.Addr.IsValid():
		return fmt.Sprintf("delivered here (arrives on %s)", h.Iface)
	case h.TTL == 0:
		return fmt.Sprintf("route via %s dev %s", h.Addr, h.Iface)
	case !h.Addr.IsValid():
		return fmt.Sprintf("%-15s %9s %-5s ttl %d", "*", "", "", h.TTL)
	}
	s := fmt.Sprintf("%-15s %6.2f ms %-5s ttl %d", h.Addr, h.RTTms, h.Iface, h.TTL)
	if h.Answer == evidence.AnswerUnreachable {
		s += " !" + unreachableText(h.Code)
	}
	if h.NAT != "" {
		s += " NAT"
	}
	return s
}

// writeSideBySide prints the hops by position from the client: the
// request's hop p beside the reply's hop n-p.
func writeSideBySide(b *strings.Builder, tr *evidence.Trace, n int) {
	rv := reverseSide(tr, n)
	type row struct{ hop, mark, left, right string }
	rows := []row{{"0", " ", "client " + tr.Flow.Src.Addr().String() + ", " + cell(tr.Forward.Hop(0)), clientEnd(&tr.Reverse)}}
	k := tr.Reverse.LastAnswered()
	for pos := 1; pos < n; pos++ {
		r := row{hop: fmt.Sprint(pos), mark: " ", left: cell(tr.Forward.Hop(pos)), right: cell(rv.hop(pos))}
		if pos == tr.DivergesAt {
			r.mark = "≠"
		}
		if h := rv.hop(pos); h != nil && tr.Reverse.Control != nil && tr.Reverse.Control.Hop(h.TTL) == h {
			r.right += " (as a SYN)"
		}
		if n-pos == k && tr.Reverse.Control != nil {
			r.right += "  ◀ last to answer the " + string(tr.Reverse.Shape)
		}
		rows = append(rows, r)
	}
	rows = append(rows, row{fmt.Sprint(n), " ", serverEnd(tr, n), "server " + tr.Flow.Dst.Addr().String() + ", " + cell(tr.Reverse.Hop(0))})
	width := len("request")
	for _, r := range rows {
		width = max(width, utf8.RuneCountInString(r.left))
	}
	fmt.Fprintf(b, " hop   %-*s │ %s\n", width, "request", "reply")
	for _, r := range rows {
		fmt.Fprintf(b, " %3s %s %s%s │ %s\n", r.hop, r.mark, r.left, strings.Repeat(" ", width-utf8.RuneCountInString(r.left)), r.right)
	}
}

func clientEnd(r *evidence.TracePath) string {
	if r.Reached {
		return fmt.Sprintf("client %s answered (ttl %d)", r.Tuple.Dst.Addr(), r.LastAnswered())
	}
	return fmt.Sprintf("client %s: not reached", r.Tuple.Dst.Addr())
}

func serverEnd(tr *evidence.Trace, n int) string {
	f := &tr.Forward
	switch {
	case f.ArrivedHops() > 0:
		return fmt.Sprintf("server %s: the probes arrived after %d hops", f.Tuple.Dst.Addr(), f.ArrivedHops())
	case f.Reached:
		return fmt.Sprintf("server %s answered (ttl %d)", f.Tuple.Dst.Addr(), n)
	}
	return fmt.Sprintf("server %s: not reached", f.Tuple.Dst.Addr())
}

// writePathList prints one path by its own TTLs.
func writePathList(b *strings.Builder, p *evidence.TracePath) {
	fmt.Fprintf(b, "%s:\n", p.Direction)
	if len(p.Hops) == 0 {
		b.WriteString("   (no hop: nothing known)\n")
	}
	for i := range p.Hops {
		fmt.Fprintf(b, "  %2d  %s\n", p.Hops[i].TTL, cell(&p.Hops[i]))
	}
	if c := p.Control; c != nil {
		for i := range c.Hops {
			fmt.Fprintf(b, "  %2d  %s  (as a %s)\n", c.Hops[i].TTL, cell(&c.Hops[i]), c.Shape)
		}
	}
	if n := p.ArrivedHops(); n > 0 {
		fmt.Fprintf(b, "      the destination saw the probes arrive after %d hops\n", n)
	}
	for _, l := range p.Plan {
		fmt.Fprintf(b, "   would send: %s\n", Clean(l))
	}
}

func writeTraceNotes(b *strings.Builder, tr *evidence.Trace) {
	var notes []string
	for _, p := range []*evidence.TracePath{&tr.Forward, &tr.Reverse} {
		for _, n := range p.Notes {
			notes = append(notes, p.Direction+": "+n)
		}
	}
	notes = append(notes, tr.Notes...)
	if len(notes) == 0 {
		return
	}
	b.WriteString("\nnotes:\n")
	for _, n := range notes {
		fmt.Fprintf(b, "  %s\n", Clean(n))
	}
}

func endpointText(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

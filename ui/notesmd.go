package ui

// The notes are an incident record: what was checked and what it means
// first (the summary), what happened when (the timeline), the fix once,
// then the evidence. Nothing is claimed that was not measured: before a
// step runs, the notes say that nothing was.

import (
	"fmt"
	"strings"
	"time"

	"asym/fix"
	"asym/playbook"
)

func (m *Model) notesMarkdown() []byte {
	var b strings.Builder
	r := m.report()
	fmt.Fprintf(&b, "## asym: `%s`\n\n", strings.ReplaceAll(playbook.Clean(m.flow.Arrow()), "`", "'"))
	b.WriteString("### Summary\n\n")
	m.writeSummary(&b, r)
	b.WriteString("### Timeline (UTC)\n\n")
	for _, e := range m.timeline() {
		fmt.Fprintf(&b, "- %s %s\n", clock(e.at), playbook.MarkdownText(e.what))
	}
	b.WriteString("\n")
	shown := m.writeFixRecord(&b)
	if !m.anyRun() {
		b.WriteString("### Evidence\n\nNothing was measured: no step had run when these notes were written.\n\n")
	} else {
		r.WriteMarkdownEvidence(&b, shown)
	}
	if m.live != nil {
		m.live.writeMarkdown(&b)
	}
	return []byte(b.String())
}

// writeSummary is the summary's list: the flow, the host, the verdict, the
// root cause and what was done.
func (m *Model) writeSummary(b *strings.Builder, r playbook.Report) {
	c := playbook.MarkdownText
	fmt.Fprintf(b, "- flow: `%s`\n", strings.ReplaceAll(playbook.Clean(m.flow.String()), "`", "'"))
	host := c(m.info.Hostname) + " (kernel " + c(m.info.Kernel) + "), " + c(m.info.Target)
	if role := m.role(); role != "" {
		host += ", " + role
	}
	fmt.Fprintf(b, "- host: %s\n", host)
	if r.Peer != nil {
		fmt.Fprintf(b, "- peer: %s\n", c(r.Peer.Headline()))
	}
	switch ran := m.ranSteps(); {
	case ran == "":
		b.WriteString("- verdict: not measured: no step has run yet\n")
	default:
		fmt.Fprintf(b, "- verdict: **%s** (steps run: %s)\n", m.verdict.Verdict, ran)
		if cause, ok := playbook.RootCause(m.findings); ok {
			fmt.Fprintf(b, "- root cause: %s\n", playbook.CauseMarkdown(cause))
		}
	}
	fmt.Fprintf(b, "- done: %s\n", c(m.doneText()))
	fmt.Fprintf(b, "- written: %s%s\n\n", m.opt.Now().UTC().Format(time.RFC3339), c(m.by()))
}

// ranSteps lists the steps that ran with their time, and says which are
// stale.
func (m *Model) ranSteps() string {
	var out []string
	for i, s := range m.steps {
		if s.ranAt.IsZero() {
			continue
		}
		name, _, _ := strings.Cut(playbook.Steps[i].Name, ":")
		t := name + " " + clock(s.ranAt)
		if m.stale(i) {
			t += " (stale: before the last change to the host)"
		}
		out = append(out, t)
	}
	return strings.Join(out, ", ")
}

// doneText says what was changed on the host from this view, and what
// asym left in place before.
func (m *Model) doneText() string {
	fx := m.fix
	pf := fx.pendingOrDecided()
	var what string
	switch {
	case fx.outcome != nil:
		what = fmt.Sprintf("the fix of `%s` applied at %s UTC (%d changes)", fx.finding, clock(pf.Applied), fx.outcome.Changes)
	case pf != nil:
		what = "a fix applied by an earlier asym at " + clock(pf.Applied) + " UTC was pending when this view started"
	case fx.kept != nil:
		return "nothing was changed from this view; a fix kept at " + clock(fx.kept.Applied) + " UTC is in place: " + fx.kept.Summary
	case fx.undone != nil:
		return "the fix kept at " + clock(fx.undone.Applied) + " UTC (" + fx.undone.Summary + ") was undone at " + clock(fx.decidedAt) + " UTC"
	default:
		return "nothing was changed on the host"
	}
	switch {
	case fx.pending != nil && fx.pending.Problem != "":
		return what + "; it will not revert by itself: " + fx.pending.Problem
	case fx.pending != nil:
		return what + "; pending: it reverts at " + clock(fx.pending.Deadline) + " UTC unless kept"
	}
	return what + "; " + fx.result + " at " + clock(fx.decidedAt) + " UTC"
}

func (fx *fixState) pendingOrDecided() *playbook.PendingFix {
	if fx.pending != nil {
		return fx.pending
	}
	return fx.decided
}

// writeFixRecord writes the fix applied from this view (or found in the
// journal) once, with its undo commands, and returns it for the findings
// to name instead of repeating it.
func (m *Model) writeFixRecord(b *strings.Builder) map[string]string {
	shown := map[string]string{}
	fx := m.fix
	if fx.pendingOrDecided() == nil && fx.kept == nil && fx.undone == nil {
		return shown
	}
	b.WriteString("### The fix\n\n")
	fmt.Fprintf(b, "%s.\n\n", playbook.MarkdownText(capitalize(m.doneText())))
	if f, ok := fixOf(fx.outcome, fx.finding); ok {
		fmt.Fprintf(b, "Applied: %s\n\n", playbook.MarkdownText(f.Summary))
		playbook.WriteFence(b, f.CommandsIn(m.info.Prefix))
		shown[f.Summary] = "applied from the view (see The fix above)"
	} else if pf := fx.pendingOrDecided(); pf != nil && pf.Summary != "" {
		fmt.Fprintf(b, "Applied: %s\n\n", playbook.MarkdownText(pf.Summary))
	}
	undo := m.undoCommands()
	if pf := fx.pendingOrDecided(); len(undo) == 0 && pf != nil && fx.result != "reverted" && fx.result != "undone" {
		undo = pf.Undo
	}
	if len(undo) > 0 {
		b.WriteString("Undo (the last change first):\n\n")
		playbook.WriteFence(b, undo)
	}
	return shown
}

// fixOf is the fix the outcome applied for finding id.
func fixOf(o *playbook.FixOutcome, id string) (*fix.Fix, bool) {
	if o == nil {
		return nil, false
	}
	for _, f := range o.Before {
		if string(f.ID) == id && f.Fix != nil {
			return f.Fix, true
		}
	}
	return nil, false
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

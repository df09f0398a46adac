package ui

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"asym/fix"
	"asym/playbook"
)

// grace is how long a dangerous pane ignores keys after it opens, so a key
// typed for the previous screen never applies a change.
const grace = 600 * time.Millisecond

type fixState struct {
	openedAt   time.Time // the fix view or the confirmation opened
	confirming bool
	// The finding and commands the confirmation was opened for: findings
	// are re-analyzed while the pane is open (live packets, the peer), so
	// y applies what was shown, looked up again, never whatever sits at
	// the cursor by then.
	confirmID    string
	confirmShown []string
	confirmUndo  bool // the confirmation is for undoing the kept fix
	undoing      bool // UndoKept runs
	applying     bool // ApplyFix runs
	deciding     bool // DecideFix runs
	finding      string
	outcome      *playbook.FixOutcome // what this view applied
	// pending is the fix applied and not decided, this view's or one found
	// in the journal when it started (reattached): K keeps it, U reverts it.
	pending    *playbook.PendingFix
	reattached bool
	// unknownSaid: the view said once that it cannot read the journal
	// (no root), so whether a fix is pending is unknown.
	unknownSaid bool
	// rechecking: the steps run again after the fix; outcome.After waits
	// for them, and so does K.
	rechecking bool
	result     string    // kept, reverted… once decided
	decidedAt  time.Time // when
	decided    *playbook.PendingFix
	kept       *playbook.KeptFix // the journal's kept fix, while it is in place
	undone     *playbook.KeptFix // the kept fix X undid
	gen        int               // answers about the journal asked before a change are dropped
	// ask is the question for a gateway asym could not find; named holds
	// the answers, per interface, for the flow.
	ask   *gatewayAsk
	named map[string]netip.Addr
}

// busy says a fix is being applied, waits for a decision or is being
// decided: K and U act, copy and apply do not.
func (fx *fixState) busy() bool { return fx.applying || fx.deciding || fx.pending != nil }

type appliedMsg struct {
	outcome *playbook.FixOutcome
	err     error
}

// canApplyHere says enter in the fix view applies the selected finding's
// fix: this host's, with steps, and no fix already waiting.
func (m *Model) canApplyHere() bool {
	if m.fix.busy() || m.fix.undoing || m.fsel >= len(m.findings) {
		return false
	}
	f := m.findings[m.fsel]
	return f.Side == "" && f.Fix != nil && len(f.Fix.Steps) > 0 && m.opt.Session.CanApply()
}

// whyNoApply says why enter does not apply the selected finding's fix.
func (m *Model) whyNoApply() string {
	f := m.findings[m.fsel]
	switch {
	case m.fix.busy():
		return "a fix is already applied and waits: K keeps it or U reverts it before another is applied"
	case f.Side != "":
		return peerFixRefusal(f)
	case !m.opt.Session.CanApply():
		return "applying fixes is not available here: copy the commands (y)"
	}
	return "this finding has no host-local fix: its advice says what to change and where"
}

// askApply opens the confirmation, or says why the fix cannot be applied
// as it is (a gateway to name first).
func (m *Model) askApply() tea.Cmd {
	fx, now := &m.fix, m.opt.Now()
	if now.Sub(fx.openedAt) < grace {
		return nil // typed before the pane was read: never applies anything
	}
	f := m.findings[m.fsel]
	if len(f.Fix.UnknownGateways()) > 0 {
		m.openGatewayAsk(f.Fix)
		return nil
	}
	if missing := f.Fix.Missing(); missing != "" {
		m.setFlash("asym will not apply a guess: "+missing, true)
		return nil
	}
	fx.confirming, fx.openedAt = true, now
	fx.confirmID, fx.confirmShown = string(f.ID), f.Fix.CommandsIn(nil)
	return nil
}

func (m *Model) cancelApply() tea.Cmd {
	m.fix.confirming = false
	m.setFlash("nothing applied", false)
	return nil
}

// confirmApply applies what the confirmation showed, looked up again.
func (m *Model) confirmApply() tea.Cmd {
	fx := &m.fix
	if m.opt.Now().Sub(fx.openedAt) < grace {
		return nil
	}
	f, ok := m.localFinding(fx.confirmID)
	shown := fx.confirmShown
	if !ok || f.Fix == nil || !slices.Equal(f.Fix.CommandsIn(nil), shown) {
		fx.confirming = false
		m.setFlash(fx.confirmID+" changed while you read it (new evidence arrived): nothing applied; read the fix again", true)
		return nil
	}
	fx.confirming, fx.applying, fx.finding = false, true, string(f.ID)
	fx.gen++
	sess, fl, gws := m.opt.Session, m.flow, f.Fix.Gateways()
	m.setFlash("applying "+fmt.Sprint(len(shown))+" changes; the revert is armed first…", false)
	return func() tea.Msg {
		o, err := sess.ApplyFix(context.Background(), fl, string(f.ID), shown, gws)
		return appliedMsg{o, err}
	}
}

// fixApplied makes the fix pending before anything else runs: the banner
// and K and U are there before the steps run again, so a key pressed as
// soon as the traffic heals is never read as something else.
func (m *Model) fixApplied(msg appliedMsg) tea.Cmd {
	fx := &m.fix
	fx.applying = false
	if msg.err != nil {
		m.setFlash("not applied: "+msg.err.Error(), true)
		m.note("fix of `%s` not applied: %s", fx.finding, msg.err)
		return nil
	}
	o, now := msg.outcome, m.opt.Now()
	fx.outcome, fx.result, fx.reattached, fx.rechecking = o, "", false, true
	fx.pending = o.Pending
	if fx.pending == nil {
		fx.pending = &playbook.PendingFix{Applied: now, Deadline: o.Deadline, Watchdog: o.Watchdog}
		if f, ok := m.localFinding(fx.finding); ok && f.Fix != nil {
			fx.pending.Summary = f.Fix.Summary
		}
	}
	m.note("fix of `%s` applied: %d changes; reverts at %s unless kept (revert armed: %s)", fx.finding, o.Changes, clock(o.Deadline), o.Watchdog)
	m.setFlash(fmt.Sprintf("applied %d changes; re-running every step to see whether it healed", o.Changes), false)
	m.epoch++
	return tea.Batch(m.rerunAll(), m.countdown())
}

// recheckDone takes the findings of the steps run after the fix as its
// outcome.
func (m *Model) recheckDone() {
	fx := &m.fix
	if !fx.rechecking || fx.outcome == nil {
		return
	}
	fx.rechecking = false
	after := []playbook.Finding{}
	for _, f := range m.findings {
		if f.Side == "" {
			after = append(after, f)
		}
	}
	fx.outcome.After = after
	if still := fx.outcome.Unhealed(); len(still) > 0 {
		m.note("re-check after the fix: not healed, %s still found", ids(still))
		m.setFlash("✗ not healed: "+ids(still)+" still found; U reverts it", true)
		return
	}
	m.note("re-check after the fix: %s", ids(after))
	if fx.pending != nil {
		m.setFlash("re-checked: "+ids(after)+"; K keeps the fix, U reverts it", false)
	}
}

// fixPaneLines is the part of the fix view about applying it.
func (m *Model) fixPaneLines(f playbook.Finding, width int) []string {
	fx := m.fix
	var kept []string
	if fx.outcome == nil && fx.kept != nil && !fx.confirming {
		kept = append(m.keptLines(width), "") // the journal's kept fix heads every fix view
	}
	return append(kept, m.fixPaneState(f, width)...)
}

// fixPaneState is what can be done with the finding's fix now.
func (m *Model) fixPaneState(f playbook.Finding, width int) []string {
	fx := m.fix
	switch {
	case fx.ask != nil:
		return m.askLines(width)
	case fx.outcome != nil && fx.finding == string(f.ID) && f.Side == "":
		return m.appliedLines(width)
	case fx.confirming && fx.confirmUndo:
		return m.undoPrompt(width)
	case fx.confirming:
		n := 0
		if f.Fix != nil {
			n = len(f.Fix.Steps)
		}
		out := hang(m.st.Highlight, "", fmt.Sprintf("Apply these %d changes to %s? y apply · esc cancel", n, playbook.Clean(m.info.Target)), width)
		return append(out, hang(m.st.Dim, "", "asym re-probes first and refuses if the host changed; the changes revert by themselves unless you keep them (K).", width)...)
	case fx.applying:
		return []string{m.st.Run.Render(m.spin.View() + " applying…")}
	case f.Side != "":
		return hang(m.st.Dim, "", peerFixRefusal(f)+".", width)
	case f.Fix == nil || len(f.Fix.Steps) == 0:
		return nil
	case !m.opt.Session.CanApply():
		return hang(m.st.Dim, "", "Applying fixes is not available here: copy the commands (y).", width)
	case fx.busy():
		return hang(m.st.Dim, "", "A fix is already applied and waits: K keeps it or U reverts it before another is applied.", width)
	}
	return hang(m.st.Dim, "", "enter: apply (you confirm first; it reverts by itself unless kept) · y: copy the commands", width)
}

// appliedLines say what this view applied and what became of it.
func (m *Model) appliedLines(width int) []string {
	fx, o := m.fix, m.fix.outcome
	out := []string{m.st.Title.Render("Applied at " + clock(fx.pendingOrDecided().Applied) + " UTC")}
	out = append(out, hang(m.st.Pane, "before: ", ids(o.Before), width)...)
	if fx.rechecking {
		out = append(out, "after:  "+m.spin.View()+" re-checking…")
	} else {
		out = append(out, hang(m.st.Pane, "after:  ", ids(o.After), width)...)
	}
	if still := o.Unhealed(); len(still) > 0 {
		out = append(out, hang(m.st.Bad, "", "✗ not healed: "+ids(still)+" still found: revert it (U)", width)...)
	}
	switch {
	case fx.pending != nil:
		left := fx.pending.Deadline.Sub(m.opt.Now()).Round(time.Second)
		out = append(out, hang(m.st.Highlight, "", fmt.Sprintf("Keep it? K keep · U revert now · reverts by itself in %s", max(0, left)), width)...)
		out = append(out, hang(m.st.Dim, "", "The revert is armed outside this session ("+playbook.Clean(o.Watchdog)+"): if this terminal dies, it still happens.", width)...)
	case fx.result != "":
		out = append(out, m.st.Bold.Render("The fix was "+fx.result+" at "+clock(fx.decidedAt)+"."))
		if fx.result == "kept" {
			out = append(out, m.undoLines(width)...)
		}
	}
	return out
}

// appliedGone says the finding whose fix this view applied is no longer
// found (healed): the fix view shows the fix itself then.
func (m *Model) appliedGone() bool {
	return m.fix.outcome != nil && m.findingIndex(findingKey{id: m.fix.finding}) < 0
}

// recordShown says the fix view shows the fix record alone: this view's
// fix whose finding is gone, or a kept fix when nothing is found.
func (m *Model) recordShown() bool {
	return m.showFix && (m.appliedGone() || (m.fix.outcome == nil && m.fix.kept != nil && len(m.findings) == 0))
}

// appliedFixLines is the fix view of a fix whose finding is gone: what was
// applied, what became of it, and how to undo it.
func (m *Model) appliedFixLines(width int) []string {
	var out []string
	if m.fix.confirming && m.fix.confirmUndo {
		out = append(m.undoPrompt(width), "")
	}
	if m.fix.outcome == nil {
		out = append(out, m.keptLines(width)...)
		return append(out, "", m.dim("esc: back"))
	}
	out = append(out, m.st.Bold.Render("The fix of "+m.fix.finding)+m.dim(" · no longer found"))
	out = append(out, m.appliedLines(width)...)
	if fx, ok := fixOf(m.fix.outcome, m.fix.finding); ok {
		out = append(out, "")
		out = append(out, m.fixLines(fx, fix.Prefixed(m.info.Prefix), width)...)
	}
	return append(out, "", m.dim("esc: back"))
}

// localFinding finds this host's finding with the id (never the peer's).
func (m *Model) localFinding(id string) (playbook.Finding, bool) {
	for _, f := range m.findings {
		if string(f.ID) == id && f.Side == "" {
			return f, true
		}
	}
	return playbook.Finding{}, false
}

func ids(fs []playbook.Finding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	var s []string
	for _, f := range fs {
		s = append(s, string(f.ID))
	}
	return fmt.Sprintf("%d: %s", len(fs), strings.Join(s, ", "))
}

// clock is a time of day in UTC, as the notes and the timeline write it.
func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

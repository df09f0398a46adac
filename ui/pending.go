package ui

// A fix applied and not decided is the one state that must never be
// missed: a banner with the countdown on every screen, K and U that mean
// nothing else, and on start the fix the journal still holds (a session
// that dropped while it waited).

import (
	"context"
	"fmt"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"asym/fix"
	"asym/playbook"
)

type decidedMsg struct {
	keep bool
	err  error
}

// pendingMsg is what the journal says: the fix pending on the target, or
// nil. gen is the fixState.gen it was asked under.
type pendingMsg struct {
	pf   *playbook.PendingFix
	kept *playbook.KeptFix
	gen  int
}

type countdownMsg struct{}

// countdown ticks once a second while a fix waits (tests tick at once).
func (m *Model) countdown() tea.Cmd {
	return m.tick(time.Second, func(time.Time) tea.Msg { return countdownMsg{} })
}

// readPending asks the journal off the UI goroutine.
func (m *Model) readPending() tea.Cmd {
	sess, gen := m.opt.Session, m.fix.gen
	return func() tea.Msg { return pendingMsg{pf: sess.PendingFix(), kept: sess.KeptFix(), gen: gen} }
}

// pendingRead takes what the journal says: a fix found pending when the view
// started is reattached; one that is no longer pending was decided or
// reverted by its watchdog.
func (m *Model) pendingRead(msg pendingMsg) tea.Cmd {
	fx := &m.fix
	if msg.gen != fx.gen || fx.applying || fx.deciding || fx.undoing {
		return nil // asked before a change this view made since
	}
	if pf := msg.pf; pf != nil && pf.Unknown != "" {
		// Not a fix: the journal could not be read (no root). Said once,
		// as a note; nothing is known to be wrong.
		msg.pf = nil
		if !fx.unknownSaid {
			fx.unknownSaid = true
			m.note("%s", pf.Unknown)
			m.setFlash(pf.Unknown, false)
		}
	}
	m.keptRead(msg.kept)
	switch {
	case msg.pf != nil && fx.pending == nil:
		fx.pending, fx.reattached, fx.result = msg.pf, true, ""
		m.note("fix applied by an earlier asym found pending in the journal (applied %s): %s", clock(msg.pf.Applied), msg.pf.Summary)
		if msg.pf.Problem != "" {
			m.note("that fix will not revert by itself: %s", msg.pf.Problem)
		}
		return m.countdown()
	case msg.pf != nil:
		undo := fx.pending.Undo
		fx.pending = msg.pf
		if len(fx.pending.Undo) == 0 {
			fx.pending.Undo = undo
		}
	case fx.pending != nil:
		return m.pendingEnded()
	}
	return nil
}

// pendingEnded: the journal no longer holds the fix as pending. By its
// deadline the watchdog reverted it, unless someone decided it elsewhere;
// either way what the steps saw is stale.
func (m *Model) pendingEnded() tea.Cmd {
	fx := &m.fix
	fx.decided, fx.pending, fx.rechecking = fx.pending, nil, false
	fx.result, fx.decidedAt = "no longer pending", m.opt.Now()
	m.note("fix no longer pending (its deadline was %s): the watchdog reverts it then, unless it was decided elsewhere", clock(fx.decided.Deadline))
	m.setFlash("the fix is no longer pending: the watchdog reverted it at its deadline, or someone decided it (asym fix --status says which); the steps run again", true)
	m.epoch++
	if !m.anyRun() {
		return nil
	}
	return m.rerunAll()
}

// countdownTick redraws the countdown each second and asks the journal every
// five seconds and once the deadline has passed: a watchdog that died or a
// decision made from another shell shows here.
func (m *Model) countdownTick() tea.Cmd {
	pf := m.fix.pending
	if pf == nil {
		return nil
	}
	m.ticks++
	now := m.opt.Now()
	if m.ticks%5 == 0 || (!now.Before(pf.Deadline) && !m.fix.applying && !m.fix.deciding) {
		return tea.Batch(m.readPending(), m.countdown())
	}
	return m.countdown()
}

// decide keeps (K) or reverts (U) the pending fix.
func (m *Model) decide(keep bool) tea.Cmd {
	fx := &m.fix
	switch {
	case fx.applying:
		m.setFlash("the fix is being applied: K and U decide it once it is", false)
		return nil
	case fx.deciding:
		m.setFlash("already deciding the fix…", false)
		return nil
	case keep && fx.rechecking:
		m.setFlash("the steps are running again to see whether the fix healed: K keeps it once they have (U reverts it now)", true)
		return nil
	}
	fx.deciding = true
	fx.gen++
	sess := m.opt.Session
	return func() tea.Msg { return decidedMsg{keep: keep, err: sess.DecideFix(context.Background(), keep)} }
}

func (m *Model) fixDecided(msg decidedMsg) tea.Cmd {
	fx := &m.fix
	fx.deciding = false
	verb := map[bool]string{true: "keep", false: "revert"}[msg.keep]
	if msg.err != nil {
		m.setFlash("could not "+verb+" the fix: "+msg.err.Error(), true)
		m.note("could not %s the fix: %s", verb, msg.err)
		return m.readPending()
	}
	fx.decided, fx.pending, fx.decidedAt = fx.pending, nil, m.opt.Now()
	by := m.by()
	if msg.keep {
		fx.result = "kept"
		m.note("fix kept%s", by)
		m.setFlash("kept: it stays until it is undone (X in the fix view; the undo commands are there and in the notes); make it permanent with the host's network manager", false)
		return m.readPending() // the journal's record of the kept fix, with its undo
	}
	fx.result, fx.rechecking = "reverted", false
	m.note("fix reverted%s: the host is as it was", by)
	m.setFlash("reverted: the host is as it was; re-running every step", false)
	m.epoch++
	return m.rerunAll()
}

// by names who acted, for the timeline.
func (m *Model) by() string {
	if m.opt.Operator == "" {
		return ""
	}
	return " by " + m.opt.Operator
}

// bannerLines is the pending fix on every screen: the countdown and the two
// keys on the first line (never cut), what it is after.
func (m *Model) bannerLines(w int) []string {
	fx := m.fix
	var head, detail string
	switch {
	case fx.applying:
		return hang(m.st.Highlight, "!! ", "APPLYING the fix of "+fx.finding+": the revert is armed first; K and U decide it once it is applied", w)
	case fx.pending == nil:
		return nil
	case fx.pending.Problem != "":
		head = "A FIX ASYM APPLIED WILL NOT REVERT BY ITSELF · K keep · U revert now"
		detail = fx.pending.Problem
	default:
		head = m.pendingHead()
		detail = m.pendingDetail()
	}
	out := hang(m.st.FlashErr, "!! ", head, w)
	more := hang(m.st.Highlight, "   ", playbook.Clean(detail), w)
	if fx.pending.Problem == "" && len(more) > 2 {
		// What the fix is can be read in full in the fix view and the
		// notes; the countdown and the keys must fit at 80x24.
		more = append(more[:1], ansi.Truncate(more[1], w-2, "")+"…")
	}
	return append(out, more...)
}

func (m *Model) pendingHead() string {
	fx := m.fix
	what := "FIX PENDING"
	if fx.reattached {
		what = "PENDING FIX FOUND"
	}
	left := fx.pending.Deadline.Sub(m.opt.Now()).Round(time.Second)
	when := fmt.Sprintf("reverts in %s unless kept", left)
	if left <= 0 {
		when = "its deadline passed: the watchdog reverts it now"
	}
	switch {
	case fx.deciding:
		return what + ": deciding…"
	case fx.rechecking:
		return fmt.Sprintf("%s: %s · re-checking… · U revert now", what, when)
	}
	return fmt.Sprintf("%s: %s · K keep · U revert now", what, when)
}

func (m *Model) pendingDetail() string {
	pf := m.fix.pending
	s := "applied " + clock(pf.Applied) + " UTC"
	if m.fix.reattached {
		s += " by an earlier asym"
		if pf.Flow != "" {
			s += " for " + pf.Flow
		}
	} else if m.fix.finding != "" {
		s += ": the fix of " + m.fix.finding
	}
	if pf.Summary != "" {
		s += " — " + pf.Summary
	}
	return s
}

// commandIn renders a command's words for a person, entering the target.
func commandIn(prefix, words []string) string { return fix.Prefixed(prefix)(words) }

package ui

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

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
	applying     bool
	finding      string
	outcome      *playbook.FixOutcome
	result       string // kept, reverted…
	// ask is the question for a gateway asym could not find; named holds
	// the answers, per interface, for the flow.
	ask   *gatewayAsk
	named map[string]netip.Addr
}

type appliedMsg struct {
	outcome *playbook.FixOutcome
	err     error
}

type decidedMsg struct {
	keep bool
	err  error
}

type countdownMsg struct{}

func countdown() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return countdownMsg{} })
}

// fixKey handles keys while the fix view is shown; it returns handled=false
// for keys it leaves to the normal routing.
func (m *Model) fixKey(k tea.KeyPressMsg) (tea.Cmd, bool) {
	fx := &m.fix
	now := m.opt.Now()
	if fx.outcome != nil && fx.result == "" {
		switch k.String() {
		case "y", "n":
			if fx.applying {
				return nil, true
			}
			keep := k.String() == "y"
			fx.applying = true
			sess := m.opt.Session
			return func() tea.Msg { return decidedMsg{keep: keep, err: sess.DecideFix(context.Background(), keep)} }, true
		}
		return nil, false
	}
	dangerous := k.String() == "enter" || k.String() == "y"
	if fx.applying && dangerous {
		return nil, true
	}
	if dangerous && now.Sub(fx.openedAt) < grace {
		return nil, true // typed before the pane was read: never applies anything
	}
	if fx.confirming {
		switch k.String() {
		case "y", "enter":
			f, ok := m.localFinding(fx.confirmID)
			shown := fx.confirmShown
			if !ok || f.Fix == nil || !slices.Equal(f.Fix.CommandsIn(nil), shown) {
				fx.confirming = false
				m.setFlash(fx.confirmID+" changed while you read it (new evidence arrived): nothing applied; read the fix again", true)
				return nil, true
			}
			fx.confirming, fx.applying, fx.finding = false, true, string(f.ID)
			sess, fl, gws := m.opt.Session, m.flow, f.Fix.Gateways()
			m.setFlash("applying "+fmt.Sprint(len(shown))+" changes; the revert is armed first…", false)
			return func() tea.Msg {
				o, err := sess.ApplyFix(context.Background(), fl, string(f.ID), shown, gws)
				return appliedMsg{o, err}
			}, true
		case "esc", "n":
			fx.confirming = false
			m.setFlash("nothing applied", false)
			return nil, true
		}
		return nil, true
	}
	if k.String() == "enter" {
		f := m.findings[m.fsel]
		switch {
		case f.Side != "":
			m.setFlash(peerFixRefusal(f), true)
		case !m.opt.Session.CanApply():
			m.setFlash("applying fixes is not available here: copy the commands", true)
		case f.Fix == nil || len(f.Fix.Steps) == 0:
			m.setFlash("this finding has no host-local fix: its advice says what to change and where", true)
		default:
			if len(f.Fix.UnknownGateways()) > 0 {
				m.openGatewayAsk(f.Fix)
				return nil, true
			}
			if missing := f.Fix.Missing(); missing != "" {
				m.setFlash("asym will not apply a guess: "+missing, true)
				return nil, true
			}
			fx.confirming, fx.openedAt = true, now
			fx.confirmID, fx.confirmShown = string(f.ID), f.Fix.CommandsIn(nil)
		}
		return nil, true
	}
	return nil, false
}

func (m *Model) fixApplied(msg appliedMsg) tea.Cmd {
	m.fix.applying = false
	if msg.err != nil {
		m.setFlash("not applied: "+msg.err.Error(), true)
		return nil
	}
	m.fix.outcome, m.fix.result = msg.outcome, ""
	m.setFlash(fmt.Sprintf("applied %d changes; re-running the playbook", msg.outcome.Changes), false)
	// Re-run every step so the screen shows the host as it is now.
	for i := range m.steps {
		m.steps[i].status = stepNotRun
	}
	m.runAll = true
	return tea.Batch(m.runNext(), countdown())
}

func (m *Model) fixDecided(msg decidedMsg) tea.Cmd {
	m.fix.applying = false
	if msg.err != nil {
		m.setFlash("could not "+map[bool]string{true: "keep", false: "revert"}[msg.keep]+" the fix: "+msg.err.Error(), true)
		return nil
	}
	if msg.keep {
		m.fix.result = "kept"
		m.setFlash("kept: make it permanent with the host's network manager (shown below the fix)", false)
		return nil
	}
	m.fix.result = "reverted"
	m.setFlash("reverted: the host is as it was; re-running the playbook", false)
	for i := range m.steps {
		m.steps[i].status = stepNotRun
	}
	m.runAll = true
	return m.runNext()
}

func (m *Model) countdownTick() tea.Cmd {
	o := m.fix.outcome
	if o == nil || m.fix.result != "" {
		return nil
	}
	if !m.opt.Now().Before(o.Deadline) {
		m.fix.result = "reverted by the watchdog"
		m.setFlash("no answer in time: the watchdog reverted the fix", true)
		for i := range m.steps {
			m.steps[i].status = stepNotRun
		}
		m.runAll = true
		return m.runNext()
	}
	return countdown()
}

// fixPaneLines is the part of the fix view about applying it.
func (m *Model) fixPaneLines(f playbook.Finding, width int) []string {
	fx := m.fix
	var out []string
	switch {
	case fx.ask != nil:
		out = append(out, m.askLines(width)...)
	case fx.outcome != nil && fx.finding == string(f.ID):
		o := fx.outcome
		out = append(out, m.st.Title.Render("Applied"), "before: "+ids(o.Before), "after:  "+ids(o.After))
		if still := o.Unhealed(); len(still) > 0 {
			out = append(out, m.st.Bad.Render("✗ not healed: "+ids(still)+" still found: revert it (n)"))
		}
		switch fx.result {
		case "":
			left := o.Deadline.Sub(m.opt.Now()).Round(time.Second)
			out = append(out, m.st.Highlight.Render(fmt.Sprintf("Keep it? y keep · n revert now · reverts by itself in %s", left)))
			out = append(out, hang(m.st.Dim, "", "The revert is armed outside this session ("+o.Watchdog+"): if this terminal dies, it still happens.", width)...)
		default:
			out = append(out, m.st.Bold.Render("The fix was "+fx.result+"."))
		}
	case fx.confirming:
		n := 0
		if f.Fix != nil {
			n = len(f.Fix.Steps)
		}
		out = append(out, m.st.Highlight.Render(fmt.Sprintf("Apply these %d changes to %s? y apply · esc cancel", n, playbook.Clean(m.info.Target))))
		out = append(out, hang(m.st.Dim, "", "asym re-probes first and refuses if the host changed; the changes revert by themselves unless you keep them.", width)...)
	case fx.applying:
		out = append(out, m.st.Run.Render(m.spin.View()+" applying…"))
	case f.Side != "":
		out = append(out, hang(m.st.Dim, "", peerFixRefusal(f)+".", width)...)
	case f.Fix != nil && len(f.Fix.Steps) > 0 && m.opt.Session.CanApply():
		out = append(out, m.dim("enter: apply (you confirm first; it reverts by itself unless kept)"))
	}
	return out
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

// writeMarkdown records in the notes what was applied and what became of it.
func (fx *fixState) writeMarkdown(w io.Writer, findings []playbook.Finding, prefix []string) {
	o := fx.outcome
	if o == nil {
		return
	}
	result := fx.result
	if result == "" {
		result = "pending: reverts at " + o.Deadline.UTC().Format(time.RFC3339) + " unless kept"
	}
	fmt.Fprintf(w, "### Applied: fix of `%s` (%s)\n\n", fx.finding, result)
	fmt.Fprintf(w, "- revert armed: %s\n- before: %s\n- after: %s\n\n", playbook.Clean(o.Watchdog), ids(o.Before), ids(o.After))
	for _, f := range o.Before {
		if string(f.ID) == fx.finding && f.Fix != nil {
			fmt.Fprintf(w, "```\n%s\n```\n\n", playbook.Clean(strings.Join(f.Fix.CommandsIn(prefix), "\n")))
		}
	}
}

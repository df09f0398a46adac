package ui

// Running the playbook's steps: each probe a command off the UI goroutine,
// results that carry their run id, and every step knows when it ran and
// whether the host changed since (stale).

import (
	"context"

	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/playbook"
)

// runNext runs the first step that has not run, or returns nil when all
// have run.
func (m *Model) runNext() tea.Cmd {
	for i, s := range m.steps {
		if s.status == stepNotRun {
			return m.runStep(i)
		}
	}
	if m.anyRun() && !m.runAll {
		m.setFlash("every step has run: a runs them all again, r the selected one", false)
	}
	return nil
}

// runAllSteps is a: it runs the steps that have not run, or all of them
// again once every one has (results only ever show when they were taken).
func (m *Model) runAllSteps() tea.Cmd {
	if m.prober == nil {
		return nil
	}
	m.background = false
	if m.allRan() {
		return m.rerunAll()
	}
	m.runAll = true
	if cmd := m.runNext(); cmd != nil {
		return cmd
	}
	m.runAll = false
	return nil
}

// rerunAll runs every step again, from the first.
func (m *Model) rerunAll() tea.Cmd {
	m.background = true
	for i := range m.steps {
		m.steps[i].status = stepNotRun
	}
	m.runAll = true
	return m.runNext()
}

func (m *Model) allLabel() string { return m.labelIf(m.prober != nil, "all") }

func (m *Model) allRan() bool {
	for _, s := range m.steps {
		if s.status != stepClean && s.status != stepFinding {
			return false
		}
	}
	return true
}

// stale says step i's results were taken before the host was last changed
// from here (a fix applied or reverted, or one that ended).
func (m *Model) stale(i int) bool {
	s := m.steps[i]
	return !s.ranAt.IsZero() && s.status != stepRunning && s.epoch < m.epoch
}

// runStep starts a step: its probes run one after the other, each as a
// command off the UI goroutine, each bounded by the prober's timeout.
func (m *Model) runStep(i int) tea.Cmd {
	if m.prober == nil {
		return nil
	}
	m.nextRun++
	st := &m.steps[i]
	st.runID, st.status, st.epoch = m.nextRun, stepRunning, m.epoch
	st.probes = nil
	for _, id := range playbook.Steps[i].Probes {
		st.probes = append(st.probes, probeState{id: id})
	}
	if !m.background {
		m.sel, m.showFind, m.showFix, m.scroll = i, false, false, 0
	}
	cmds := []tea.Cmd{m.runProbe(i, 0, st.runID)}
	if i == 0 || (m.peer.res == nil && !m.peer.running) {
		cmds = append(cmds, m.runPeer(0))
	}
	if !m.spinning {
		m.spinning = true
		cmds = append(cmds, m.spin.Tick)
	}
	return tea.Batch(cmds...)
}

func (m *Model) runProbe(step, idx, runID int) tea.Cmd {
	st := &m.steps[step]
	st.probes[idx].running = true
	p, id := m.prober, st.probes[idx].id // copied: the command must not touch the model
	return func() tea.Msg {
		return probeDoneMsg{step: step, idx: idx, runID: runID, rep: p.Run(context.Background(), id)}
	}
}

func (m *Model) probeDone(msg probeDoneMsg) tea.Cmd {
	st := &m.steps[msg.step]
	if msg.runID != st.runID || msg.idx >= len(st.probes) {
		return nil // a stale run
	}
	st.probes[msg.idx].running, st.probes[msg.idx].rep = false, msg.rep
	if msg.idx+1 < len(st.probes) {
		return m.runProbe(msg.step, msg.idx+1, msg.runID)
	}
	st.ranAt = m.opt.Now()
	m.analyze()
	m.stepNote(msg.step)
	if m.runAll {
		if cmd := m.runNext(); cmd != nil {
			return cmd
		}
		m.runAll = false
		m.recheckDone()
		m.showFirstFinding()
	}
	m.spinning = m.anyRunning()
	return nil
}

// showFirstFinding selects the first step that found something once every
// step ran, unless they ran again by themselves (after a fix): then the
// view stays where the person is.
func (m *Model) showFirstFinding() {
	if m.background {
		m.background = false
		return
	}
	for i, s := range m.steps {
		if s.status == stepFinding {
			m.sel, m.scroll = i, 0
			return
		}
	}
}

func (m *Model) anyRunning() bool {
	if m.peer.running || m.trace.running {
		return true
	}
	for _, s := range m.steps {
		if s.status == stepRunning {
			return true
		}
	}
	return false
}

func (m *Model) anyRun() bool {
	for _, s := range m.steps {
		if s.status != stepNotRun || !s.ranAt.IsZero() {
			return true
		}
	}
	return false
}

// analyze recomputes the findings from all evidence so far and each step's
// status.
func (m *Model) analyze() {
	last := -1
	for i, s := range m.steps {
		if s.status == stepClean || s.status == stepFinding || (s.status == stepRunning && allDone(s)) {
			last = i
		}
	}
	// The cursor stays on the finding it was on: new evidence (packets,
	// the peer) reorders the list under it, and steps that run again
	// (after a fix) leave it out until their turn comes.
	looking := m.focus == paneFindings || m.showFind || m.showFix
	if looking && m.fsel < len(m.findings) && (m.pick == (findingKey{}) || m.findingIndex(m.pick) >= 0) {
		m.pick = findingKey{string(m.findings[m.fsel].ID), m.findings[m.fsel].Side}
	}
	ev := m.prober.Evidence()
	ev.NameGateways(m.fix.named)
	if m.live != nil {
		ev.Live = m.live.evidence(m.opt.Now())
	}
	m.findings = playbook.Analyze(&ev, last)
	m.joinPeer(&ev)
	switch i := m.findingIndex(m.pick); {
	case !looking:
		m.fsel = 0 // not looking at findings: the cursor waits on the first
	case i >= 0:
		m.fsel = i
	}
	judged := make([]playbook.StepReport, len(m.steps))
	for i := range m.steps {
		s := &m.steps[i]
		judged[i] = playbook.StepReport{ID: playbook.Steps[i].ID, Verdict: playbook.Judgement{Verdict: playbook.VerdictNotProven, Why: []string{"the step has not run"}}}
		if s.status == stepNotRun || !allDone(*s) {
			continue
		}
		s.status = stepClean
		for _, f := range m.findings {
			if f.Step == playbook.Steps[i].ID {
				s.status = stepFinding
			}
		}
		s.verdict = playbook.JudgeStep(playbook.Steps[i].ID, &ev, m.findings)
		judged[i].Verdict = s.verdict
	}
	m.verdict = playbook.Judge(judged)
	if m.peer.pa != nil {
		m.verdict = playbook.JudgeBothEnds(m.verdict, *m.peer.pa)
	}
	m.fsel = clamp(m.fsel, 0, max(0, len(m.findings)-1))
}

// findingKey names a finding in a list that changes: its id and its end.
type findingKey struct{ id, side string }

func (m *Model) findingIndex(k findingKey) int {
	for i, f := range m.findings {
		if string(f.ID) == k.id && f.Side == k.side {
			return i
		}
	}
	return -1
}

func allDone(s stepState) bool {
	for _, p := range s.probes {
		if p.rep == nil {
			return false
		}
	}
	return true
}

// causeIndex is the index of the most likely root cause among the findings.
func (m *Model) causeIndex() int {
	c, ok := playbook.RootCause(m.findings)
	if !ok {
		return 0
	}
	for i, f := range m.findings {
		if f.ID == c.Finding.ID && f.Side == c.Finding.Side {
			return i
		}
	}
	return 0
}

// probeDoneMsg is a probe's result. It carries its step and run id: a
// result of a run that was superseded (r pressed again) is dropped.
type probeDoneMsg struct {
	step, idx, runID int
	rep              evidence.Reporter
}

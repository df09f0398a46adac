package ui

import (
	"bytes"
	"context"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/playbook"
)

// traceGrace swallows a second t typed before the question could be read.
const traceGrace = 400 * time.Millisecond

// traceState is the view's trace of the flow's path (t). It sends packets,
// so the first t asks and a second t sends; once answered, the question is
// not asked again in this session.
type traceState struct {
	asked     bool      // the person agreed to send probes in this session
	askedAt   time.Time // when the question was put; zero when none is pending
	running   bool
	runID     int
	cancel    context.CancelFunc
	tr        *evidence.Trace
	findings  []playbook.Finding
	err       string
	shown     bool
	tracedFor string // the flow the shown trace is of
}

type traceDoneMsg struct {
	runID    int
	tr       evidence.Trace
	findings []playbook.Finding
	err      error
}

func (t *traceState) stop() {
	if t.cancel != nil {
		t.cancel()
		t.cancel = nil
	}
}

// traceKey handles t: the question the first time, the trace after.
func (m *Model) traceKey() tea.Cmd {
	t := &m.trace
	switch {
	case m.prober == nil:
		return nil
	case t.running:
		m.setFlash("the trace is still running", false)
		return nil
	case !t.asked && t.askedAt.IsZero():
		t.askedAt = m.opt.Now()
		m.setFlash("t sends probes with this flow's tuple from this end"+m.peerWords()+" (3 per TTL, 20 a second, never on an established connection's tuple): press t again to send them, esc not to", false)
		return nil
	case !t.asked && m.opt.Now().Sub(t.askedAt) < traceGrace:
		return nil
	}
	t.asked, t.askedAt = true, time.Time{}
	return m.runTrace()
}

func (m *Model) peerWords() string {
	if m.opt.Session.PeerCommand() != "" {
		return " and the peer"
	}
	return ""
}

func (m *Model) runTrace() tea.Cmd {
	t := &m.trace
	t.stop()
	m.nextRun++
	t.runID, t.running, t.shown, t.err = m.nextRun, true, true, ""
	m.showFind, m.focus, m.scroll = false, paneDetail, 0
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	s, f, id := m.opt.Session, m.flow, t.runID // copied: the command must not touch the model
	t.tracedFor = f.String()
	cmds := []tea.Cmd{func() tea.Msg {
		tr, fs, err := s.TraceFlow(ctx, f)
		return traceDoneMsg{runID: id, tr: tr, findings: fs, err: err}
	}}
	if !m.spinning {
		m.spinning = true
		cmds = append(cmds, m.spin.Tick)
	}
	return tea.Batch(cmds...)
}

func (m *Model) traceDone(msg traceDoneMsg) tea.Cmd {
	t := &m.trace
	if msg.runID != t.runID {
		return nil // superseded
	}
	t.running = false
	t.stop()
	t.tr, t.findings = &msg.tr, msg.findings
	if msg.err != nil {
		t.tr, t.err = nil, playbook.Clean(msg.err.Error())
	}
	m.spinning = m.anyRunning()
	return nil
}

// traceLines are the trace as asym trace prints it, wrapped to the pane.
func (m *Model) traceLines(width int) []string {
	t := &m.trace
	switch {
	case t.running:
		return []string{m.st.Run.Render(m.spin.View() + " tracing the flow's path hop by hop…")}
	case t.err != "":
		return wrap(m.st.FlashErr.Render("! "+t.err), width)
	case t.tr == nil:
		return nil
	}
	var b bytes.Buffer
	playbook.WriteTraceText(&b, t.tr, t.findings, m.info)
	var out []string
	for _, l := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		out = append(out, wrap(l, width)...)
	}
	return out
}

// Package ui is asym's terminal interface: it renders the playbook's state
// and dispatches probe runs as commands. It holds no diagnosis logic.
package ui

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
	"asym/playbook"
)

// Session is what the view drives: the diagnosis of one target.
// session.Session implements it; tests replay recorded evidence. The view
// holds no diagnosis logic of its own: it renders what the session returns
// and dispatches its calls as commands, off the UI goroutine.
type Session interface {
	// Info says where the diagnosis runs, for the header and pasted commands.
	Info() evidence.TargetInfo
	// Prober makes the prober of a flow (the form calls it once the person
	// has typed one).
	Prober(f flow.Flow) evidence.Prober
	// Live says whether the live view can run; Watch streams the flow's
	// conntrack events and counters, Capture its packets, Drops the
	// kernel's drops of them with its reasons (nil: none).
	Live() bool
	Watch(ctx context.Context, f flow.Flow) <-chan evidence.WatchUpdate
	Capture(ctx context.Context, f flow.Flow, forms []flow.Flow) <-chan evidence.CaptureUpdate
	Drops(ctx context.Context, f flow.Flow, forms []flow.Flow) <-chan evidence.DropUpdate
	// PeerCommand is the --peer command ("" for one end only); Peer
	// collects the far end's evidence, with a live window of watch when not
	// zero. It runs when the First step runs, with a window when the live
	// view opens.
	PeerCommand() string
	Peer(ctx context.Context, f flow.Flow, watch time.Duration) evidence.PeerResult
	// CanApply says whether fixes may be applied from the view. ApplyFix
	// re-probes with the gateways the person confirmed or named, checks
	// that the fix of findingID still is what was shown, applies it with
	// the revert armed, and re-checks; DecideFix keeps or reverts it.
	CanApply() bool
	ApplyFix(ctx context.Context, f flow.Flow, findingID string, shown []string, gateways map[string]netip.Addr) (*playbook.FixOutcome, error)
	DecideFix(ctx context.Context, keep bool) error
	// Persist shows how to make a fix survive a reboot with the host's
	// network manager: a title and the lines (rendered by the session).
	Persist(fx *fix.Fix) (title string, lines []string)
	// TraceFlow sends the flow's own packets with growing TTLs from this
	// end (and the peer's) and judges the two paths (asym trace).
	TraceFlow(ctx context.Context, f flow.Flow) (evidence.Trace, []playbook.Finding, error)
}

// Options configure the UI.
type Options struct {
	Session Session
	Flow    *flow.Flow // nil: ask for it
	// Lab is set by `asym lab run`: its traffic's results are shown, so a
	// fix visibly turns failures into successes.
	Lab         *LabInfo
	NotesPath   string
	HistoryPath string
	Plain       bool             // no colour or attributes (golden tests)
	Now         func() time.Time // clock, for notes; time.Now when nil
}

// LabInfo describes the lab scenario the view runs on.
type LabInfo struct {
	Name, Story string
	Traffic     <-chan error // one result per attempt of the failing flow
}

type stepStatus int

const (
	stepNotRun stepStatus = iota
	stepRunning
	stepClean
	stepFinding
)

type probeState struct {
	id      evidence.ProbeID
	running bool
	rep     evidence.Reporter
}

type stepState struct {
	status  stepStatus
	runID   int
	probes  []probeState
	verdict playbook.Judgement // what the step proved, once it ran
}

type pane int

const (
	paneSteps pane = iota
	paneFindings
	paneDetail
)

// Model is the root model: it owns focus, layout and routing.
type Model struct {
	opt    Options
	keys   KeyMap
	st     Styles
	w, h   int
	start  time.Time
	prober evidence.Prober
	info   evidence.TargetInfo
	flow   flow.Flow
	form   *formModel

	steps    []stepState
	sel      int  // selected step
	runAll   bool // keep going to the next step after this one
	nextRun  int  // run ids, to drop stale results
	findings []playbook.Finding
	verdict  playbook.Judgement // the whole check's, from the steps run so far
	fsel     int
	focus    pane
	showFind bool // the detail pane shows the selected finding instead of the step
	showFix  bool
	scroll   int
	help     bool
	spin     spinner.Model
	spinning bool

	live  *liveState
	fix   fixState
	peer  peerState
	trace traceState
	labT  labTally

	flash    string
	flashErr bool
}

// New builds the root model.
func New(opt Options) *Model {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	m := &Model{opt: opt, keys: DefaultKeyMap(), st: NewStyles(opt.Plain), start: opt.Now(), w: 80, h: 24, info: opt.Session.Info()}
	m.spin = spinner.New(spinner.WithSpinner(spinner.Line))
	m.steps = make([]stepState, len(playbook.Steps))
	if m.opt.NotesPath == "" {
		m.opt.NotesPath = DefaultNotesPath(m.info.Hostname, m.start)
	}
	if opt.Flow != nil {
		m.setFlow(*opt.Flow)
	} else {
		m.form = newForm(LoadHistory(opt.HistoryPath), opt.Plain)
	}
	return m
}

func (m *Model) setFlow(f flow.Flow) {
	m.flow = f
	m.form = nil
	m.prober = m.opt.Session.Prober(f)
	RememberFlow(m.opt.HistoryPath, f)
	for i := range m.steps {
		m.steps[i] = stepState{}
	}
	m.findings = nil
	m.fix.ask, m.fix.named = nil, nil
	m.peer.stop()
	m.peer = peerState{runID: m.peer.runID}
}

// Init starts nothing on the kernel: the person decides when probes run.
// In a lab it starts reading the lab's traffic results.
func (m *Model) Init() tea.Cmd {
	if m.opt.Lab != nil && m.opt.Lab.Traffic != nil {
		return waitTraffic(m.opt.Lab.Traffic)
	}
	return nil
}

// labTally counts the lab traffic's attempts: the recent ones matter most,
// so that the moment a fix heals the flow shows at once.
type labTally struct {
	ok, failed int
	recent     []bool // newest last, at most 10
	last       string
	done       bool
}

type trafficMsg struct {
	err error
	ok  bool
}

func waitTraffic(ch <-chan error) tea.Cmd {
	return func() tea.Msg {
		err, ok := <-ch
		return trafficMsg{err, ok}
	}
}

// Messages. Results carry their step and run id: a result of a run that was
// superseded (r pressed again) is dropped.
type probeDoneMsg struct {
	step, idx, runID int
	rep              evidence.Reporter
}

type notesMsg struct {
	path string
	err  error
}

// Update routes messages.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.w, m.h = msg.Width, msg.Height
		return m, nil
	case spinner.TickMsg:
		if !m.spinning {
			return m, nil // idle: stop ticking, so nothing redraws over a slow link
		}
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	case probeDoneMsg:
		return m, m.probeDone(msg)
	case peerDoneMsg:
		return m, m.peerDone(msg)
	case traceDoneMsg:
		return m, m.traceDone(msg)
	case notesMsg:
		if msg.err != nil {
			m.setFlash(fmt.Sprintf("notes not written: %v — they are kept: press e to retry or y to copy them", msg.err), true)
		} else {
			m.setFlash("notes appended to "+msg.path, false)
		}
		return m, nil
	case liveMsg:
		return m, m.liveUpdate(msg)
	case packetsMsg:
		return m, m.packetsUpdate(msg)
	case dropsMsg:
		return m, m.dropsUpdate(msg)
	case appliedMsg:
		return m, m.fixApplied(msg)
	case decidedMsg:
		return m, m.fixDecided(msg)
	case countdownMsg:
		return m, m.countdownTick()
	case trafficMsg:
		t := &m.labT
		if !msg.ok {
			t.done = true
			return m, nil
		}
		worked := msg.err == nil
		if worked {
			t.ok++
			t.last = ""
		} else {
			t.failed++
			t.last = playbook.Clean(msg.err.Error())
		}
		t.recent = append(t.recent, worked)
		if len(t.recent) > 10 {
			t.recent = t.recent[1:]
		}
		return m, waitTraffic(m.opt.Lab.Traffic)
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	if m.form != nil {
		return m, m.form.update(msg)
	}
	return m, nil
}

func (m *Model) key(k tea.KeyPressMsg) tea.Cmd {
	if k.String() == "ctrl+c" {
		return m.quit()
	}
	if m.form != nil {
		return m.formKey(k)
	}
	if m.fix.ask != nil {
		return m.askKey(k)
	}
	if m.help {
		if key.Matches(k, m.keys.Help, m.keys.Back) {
			m.help = false
			return nil
		}
		if key.Matches(k, m.keys.Quit) {
			return m.quit()
		}
		return nil
	}
	m.flash = ""
	if !m.trace.askedAt.IsZero() && !key.Matches(k, m.keys.Trace) {
		m.trace.askedAt = time.Time{} // any other key declines
		if key.Matches(k, m.keys.Back) {
			return nil
		}
	}
	// A pending fix owns y and n wherever the person is: the countdown is
	// on the status line.
	if m.fix.outcome != nil && m.fix.result == "" && (k.String() == "y" || k.String() == "n") {
		cmd, _ := m.fixKey(k)
		return cmd
	}
	if m.showFix && len(m.findings) > 0 {
		if cmd, handled := m.fixKey(k); handled {
			return cmd
		}
	}
	switch {
	case key.Matches(k, m.keys.Quit):
		return m.quit()
	case key.Matches(k, m.keys.Help):
		m.help = true
	case key.Matches(k, m.keys.Back):
		switch {
		case m.showFix:
			m.showFix, m.fix.confirming = false, false
		case m.showFind:
			m.showFind, m.focus = false, paneFindings
		case m.trace.shown:
			m.trace.shown = false
		case m.live != nil && m.live.shown:
			m.live.shown = false
		}
		m.scroll = 0
	case key.Matches(k, m.keys.Tab):
		if k.String() == "shift+tab" {
			m.focus = (m.focus + 2) % 3
		} else {
			m.focus = (m.focus + 1) % 3
		}
		if m.focus == paneFindings && len(m.findings) == 0 {
			m.focus = paneDetail
		}
		m.showFind = m.focus != paneSteps && len(m.findings) > 0 && (m.focus == paneFindings || m.showFind)
		m.scroll = 0
	case key.Matches(k, m.keys.Up):
		m.move(-1)
	case key.Matches(k, m.keys.Down):
		m.move(1)
	case key.Matches(k, m.keys.PageUp):
		m.scroll = max(0, m.scroll-m.detailHeight())
	case key.Matches(k, m.keys.PageDn):
		m.scroll += m.detailHeight()
	case key.Matches(k, m.keys.Next):
		if m.focus == paneFindings && len(m.findings) > 0 {
			m.showFind, m.focus, m.scroll = true, paneDetail, 0
			return nil
		}
		return m.runNext()
	case key.Matches(k, m.keys.Rerun):
		return m.runStep(m.sel)
	case key.Matches(k, m.keys.All):
		m.runAll = true
		if cmd := m.runNext(); cmd != nil {
			return cmd
		}
		m.runAll = false
	case key.Matches(k, m.keys.Fix):
		if len(m.findings) > 0 {
			m.showFind, m.showFix, m.focus, m.scroll = true, true, paneDetail, 0
			m.fix.openedAt, m.fix.confirming = m.opt.Now(), false
		}
	case key.Matches(k, m.keys.Live):
		m.trace.shown = false
		return m.toggleLive()
	case key.Matches(k, m.keys.Trace):
		return m.traceKey()
	case key.Matches(k, m.keys.Notes):
		return m.exportNotes()
	case key.Matches(k, m.keys.Copy):
		md := m.notesMarkdown()
		m.setFlash(fmt.Sprintf("copied %d bytes of notes with OSC 52 (in tmux: set -g set-clipboard on)", len(md)), false)
		return tea.SetClipboard(string(md))
	}
	return nil
}

func (m *Model) quit() tea.Cmd {
	if m.live != nil {
		m.live.stop()
	}
	m.peer.stop()
	m.trace.stop()
	return tea.Quit
}

func (m *Model) move(d int) {
	switch m.focus {
	case paneSteps:
		m.sel = clamp(m.sel+d, 0, len(m.steps)-1)
		m.showFind, m.scroll = false, 0
	case paneFindings:
		m.fsel = clamp(m.fsel+d, 0, max(0, len(m.findings)-1))
		m.showFind, m.showFix, m.scroll = true, false, 0
	case paneDetail:
		m.scroll = max(0, m.scroll+d)
	}
}

func clamp(v, lo, hi int) int { return max(lo, min(v, hi)) }

// runNext runs the first step that has not run, or returns nil when all
// have run.
func (m *Model) runNext() tea.Cmd {
	for i, s := range m.steps {
		if s.status == stepNotRun {
			return m.runStep(i)
		}
	}
	return nil
}

// runStep starts a step: its probes run one after the other, each as a
// command off the UI goroutine, each bounded by the prober's timeout.
func (m *Model) runStep(i int) tea.Cmd {
	if m.prober == nil {
		return nil
	}
	m.nextRun++
	st := &m.steps[i]
	st.runID, st.status = m.nextRun, stepRunning
	st.probes = nil
	for _, id := range playbook.Steps[i].Probes {
		st.probes = append(st.probes, probeState{id: id})
	}
	m.sel, m.showFind, m.scroll = i, false, 0
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
	m.analyze()
	if m.runAll {
		if cmd := m.runNext(); cmd != nil {
			return cmd
		}
		m.runAll = false
		// Done: show the first step that found something.
		for i, s := range m.steps {
			if s.status == stepFinding {
				m.sel, m.scroll = i, 0
				break
			}
		}
	}
	m.spinning = m.anyRunning()
	return nil
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
	// the peer) reorders the list under it.
	var selID, selSide string
	if m.fsel < len(m.findings) && (m.focus == paneFindings || m.showFind || m.showFix) {
		selID, selSide = string(m.findings[m.fsel].ID), m.findings[m.fsel].Side
	}
	ev := m.prober.Evidence()
	ev.NameGateways(m.fix.named)
	if m.live != nil {
		ev.Live = m.live.evidence(m.opt.Now())
	}
	m.findings = playbook.Analyze(&ev, last)
	m.joinPeer(&ev)
	if selID == "" {
		m.fsel = 0 // not looking at findings: the cursor waits on the first
	}
	for i, f := range m.findings {
		if string(f.ID) == selID && f.Side == selSide {
			m.fsel = i
		}
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

func allDone(s stepState) bool {
	for _, p := range s.probes {
		if p.rep == nil {
			return false
		}
	}
	return true
}

func (m *Model) setFlash(s string, isErr bool) { m.flash, m.flashErr = playbook.Clean(s), isErr }

// report assembles what has been seen so far.
func (m *Model) report() playbook.Report {
	ran := map[evidence.ProbeID]evidence.Reporter{}
	for _, s := range m.steps {
		for _, p := range s.probes {
			if p.rep != nil {
				ran[p.id] = p.rep
			}
		}
	}
	var ev evidence.Evidence
	if m.prober != nil {
		ev = m.prober.Evidence()
	}
	ev.NameGateways(m.fix.named)
	ev.Flow = m.flow
	if m.live != nil {
		ev.Live = m.live.evidence(m.opt.Now()) // what the joined findings rest on
	}
	var local []playbook.Finding
	for _, f := range m.findings {
		if f.Side == "" {
			local = append(local, f)
		}
	}
	r := playbook.NewReport(m.opt.Now(), &ev, m.info.Prefix, ran, local)
	if m.peer.res != nil {
		r.AddPeer(playbook.AnalyzePeer(&ev, *m.peer.res))
	}
	return r
}

func (m *Model) notesMarkdown() []byte {
	var b bytes.Buffer
	m.report().WriteMarkdown(&b)
	if m.live != nil {
		m.live.writeMarkdown(&b)
	}
	m.fix.writeMarkdown(&b, m.findings, m.info.Prefix)
	return b.Bytes()
}

// exportNotes writes the notes off the UI goroutine.
func (m *Model) exportNotes() tea.Cmd {
	// Built from the model's state, so a failed write loses nothing: the
	// next e or y builds them again.
	md := m.notesMarkdown()
	path := m.opt.NotesPath
	m.setFlash("writing notes to "+path+"…", false)
	return func() tea.Msg { return notesMsg{path: path, err: AppendNotes(path, md)} }
}

func (m *Model) detailHeight() int { return max(3, m.h-6) }

// role is the host's role once the host probe has run.
func (m *Model) role() string {
	if m.prober == nil {
		return ""
	}
	if h := m.prober.Evidence().Host; h != nil && h.OK() {
		return h.Role.Describe()
	}
	return ""
}

func (m *Model) privileges() string {
	if m.prober == nil {
		return ""
	}
	h := m.prober.Evidence().Host
	switch {
	case h == nil:
		return ""
	case h.Privileged:
		return "full privileges"
	}
	return "missing " + h.Missing
}

// Package ui is asym's terminal interface: it renders the playbook's state
// and dispatches probe runs as commands. It holds no diagnosis logic.
package ui

import (
	"context"
	"net/netip"
	"time"

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
	// It returns as soon as the fix is pending (FixOutcome.After is nil):
	// the view re-runs its steps itself, with the fix pending on screen.
	DecideFix(ctx context.Context, keep bool) error
	// PendingFix is the fix asym applied to the target that waits for a
	// decision, as its journal says (nil: none). The view asks when it
	// starts, so a fix left pending by a session that dropped shows at
	// once, and again while one waits.
	PendingFix() *playbook.PendingFix
	// KeptFix is the last fix applied to the target when it was kept (nil:
	// none); UndoKept undoes it, each change only while it is as asym left
	// it (asym fix --undo).
	KeptFix() *playbook.KeptFix
	UndoKept(ctx context.Context) error
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
	// Operator is who runs asym (the user, and who they sudo'd from), for
	// the notes' timeline.
	Operator string
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
	ranAt   time.Time          // when its last run finished
	epoch   int                // Model.epoch when it started: older is stale
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

	steps  []stepState
	sel    int  // selected step
	runAll bool // keep going to the next step after this one
	// background: the steps run again by themselves (after a change to the
	// host), so the view stays where the person is.
	background bool
	nextRun    int // run ids, to drop stale results
	// epoch counts the changes made to the host from here (a fix applied,
	// reverted, or ended by its watchdog): a step run before the last one
	// is stale.
	epoch    int
	findings []playbook.Finding
	verdict  playbook.Judgement // the whole check's, from the steps run so far
	fsel     int
	pick     findingKey // the finding the cursor is on, while findings change under it
	focus    pane
	showFind bool // the detail pane shows the selected finding instead of the step
	showFix  bool
	scroll   int
	help     bool
	search   searchState
	lastKey  string // the key being routed (tab or shift+tab)
	spin     spinner.Model
	spinning bool
	ticks    int // countdown ticks, to ask the journal every few
	tick     func(time.Duration, func(time.Time) tea.Msg) tea.Cmd

	live  *liveState
	fix   fixState
	peer  peerState
	trace traceState
	labT  labTally

	events []event // the incident's timeline

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
	m.tick = tea.Tick
	m.steps = make([]stepState, len(playbook.Steps))
	if m.opt.NotesPath == "" {
		m.opt.NotesPath = DefaultNotesPath(m.info.Hostname, m.start)
	}
	m.noteAt(m.start, "asym opened%s on %s (%s)", m.by(), m.info.Target, m.info.Hostname)
	if opt.Flow != nil {
		m.setFlow(*opt.Flow)
	} else {
		m.form = newForm(LoadHistory(opt.HistoryPath, m.info.Target), opt.Plain)
	}
	return m
}

func (m *Model) setFlow(f flow.Flow) {
	m.flow = f
	m.form = nil
	m.prober = m.opt.Session.Prober(f)
	RememberFlow(m.opt.HistoryPath, m.info.Target, f)
	m.note("flow: `%s`", f)
	for i := range m.steps {
		m.steps[i] = stepState{}
	}
	m.findings = nil
	m.fix.ask, m.fix.named = nil, nil
	m.peer.stop()
	m.peer = peerState{runID: m.peer.runID}
	// The trace was of the old flow, and agreeing to send probes was for
	// its tuple: a new flow asks again.
	m.trace.stop()
	m.trace = traceState{runID: m.trace.runID}
}

// Init runs no probe: the person decides when probes run. It reads the
// journal (a fix left pending shows on the first screen) and, in a lab,
// starts reading the lab's traffic results.
func (m *Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.readPending()}
	if m.opt.Lab != nil && m.opt.Lab.Traffic != nil {
		cmds = append(cmds, waitTraffic(m.opt.Lab.Traffic))
	}
	return tea.Batch(cmds...)
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

// trafficResult counts one attempt of the lab's failing flow.
func (m *Model) trafficResult(msg trafficMsg) tea.Cmd {
	t := &m.labT
	if !msg.ok {
		t.done = true
		return nil
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
	return waitTraffic(m.opt.Lab.Traffic)
}

func waitTraffic(ch <-chan error) tea.Cmd {
	return func() tea.Msg {
		err, ok := <-ch
		return trafficMsg{err, ok}
	}
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
		m.notesWritten(msg)
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
	case pendingMsg:
		return m, m.pendingRead(msg)
	case undoneMsg:
		return m, m.keptUndone(msg)
	case trafficMsg:
		return m, m.trafficResult(msg)
	case tea.KeyPressMsg:
		return m, m.key(msg)
	}
	switch {
	case m.form != nil:
		return m, m.form.update(msg)
	case m.search.editing:
		var cmd tea.Cmd
		m.search.input, cmd = m.search.input.Update(msg)
		return m, cmd
	}
	return m, nil
}

func (m *Model) quit() tea.Cmd {
	if m.live != nil {
		m.live.stop()
	}
	m.peer.stop()
	m.trace.stop()
	return tea.Quit
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

// detailHeight is about a page of the detail pane, for page up and down.
func (m *Model) detailHeight() int { return max(3, m.h-8) }

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

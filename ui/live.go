package ui

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"asym/evidence"
	"asym/playbook"
)

// liveMax bounds the events kept on screen and in the notes.
const liveMax = 200

// liveState is the live view: counters of the flow as rates, and its
// conntrack events, fed by a stream that a command reads one batch at a time.
type liveState struct {
	start   time.Time
	cancel  context.CancelFunc
	ch      <-chan evidence.WatchUpdate
	shown   bool
	first   *evidence.Sample
	prev    *evidence.Sample
	cur     *evidence.Sample
	rates   map[string]float64
	events  []evidence.CtEvent
	dropped int
	pch     <-chan evidence.CaptureUpdate
	packets []evidence.CapturedPacket
	pdrop   int
	capErr  bool // the capture reported an error: absent packets prove nothing
	errs    []string
	closed  bool
	// The kernel's drops of the flow (drops.go); dropErr says why the
	// witness does not run, dropHook how it is attached.
	dch      <-chan evidence.DropUpdate
	drops    []evidence.Drop
	dropLost int
	dropHook string
	dropErr  string
}

type liveMsg struct {
	u  evidence.WatchUpdate
	ok bool
}

type packetsMsg struct {
	u  evidence.CaptureUpdate
	ok bool
}

func waitPackets(ch <-chan evidence.CaptureUpdate) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		return packetsMsg{u, ok}
	}
}

func (m *Model) packetsUpdate(msg packetsMsg) tea.Cmd {
	l := m.live
	if l == nil || !msg.ok {
		return nil
	}
	l.packets = append(l.packets, msg.u.Packets...)
	if over := len(l.packets) - liveMax; over > 0 {
		l.packets = append(l.packets[:0], l.packets[over:]...)
		l.pdrop += over
	}
	l.pdrop += msg.u.Dropped
	if msg.u.Err != nil {
		l.capErr = true
	}
	if len(msg.u.Packets) > 0 {
		m.reanalyze()
	}
	if msg.u.Err != nil {
		l.addErr(msg.u.Err)
	}
	return waitPackets(l.pch)
}

// evidence is what the live view has seen so far, as the live evidence the
// analyzers read (the same as check --watch gathers over its window).
func (l *liveState) evidence(now time.Time) *evidence.LiveEvidence {
	le := &evidence.LiveEvidence{
		Report: evidence.Report{Probe: evidence.ProbeLive, Title: "Live view", Status: evidence.StatusOK},
		Start:  l.start, End: now, Deltas: map[string]int64{},
		Events: l.events, Packets: l.packets, EventsDropped: l.dropped, PacketsDropped: l.pdrop,
		// Packets trimmed to the last liveMax count as dropped: the window
		// then holds only a sample, and absences are not concluded from it.
		Captured: l.pch != nil && !l.capErr,
		Drops:    l.drops, DropHook: l.dropHook, DropsLost: l.dropLost, DropsUnavailable: l.dropErr,
	}
	if l.first != nil && l.cur != nil {
		for k, v := range l.cur.Counters {
			if p, ok := l.first.Counters[k]; ok {
				le.Deltas[k] = int64(v) - int64(p)
			}
		}
	}
	return le
}

// reanalyze runs the analyzers again once steps have run, so that what the
// live view sees joins the findings as it happens.
func (m *Model) reanalyze() {
	if m.prober != nil && m.anyRun() {
		m.analyze()
	}
}

func (l *liveState) stop() {
	if l.cancel != nil {
		l.cancel()
	}
}

// waitLive reads one batch; the model re-issues it after each, so the stream
// never outruns the screen (the watcher batches and counts what it drops).
func waitLive(ch <-chan evidence.WatchUpdate) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		return liveMsg{u, ok}
	}
}

func (m *Model) toggleLive() tea.Cmd {
	m.trace.shown = false
	if !m.opt.Session.Live() || m.prober == nil {
		m.setFlash("the live view is not available here", true)
		return nil
	}
	if m.live != nil {
		m.live.shown = !m.live.shown
		m.showFind, m.scroll = false, 0
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := m.opt.Session.Watch(ctx, m.flow)
	m.live = &liveState{start: m.opt.Now(), cancel: cancel, ch: ch, shown: true}
	m.showFind, m.scroll = false, 0
	m.setFlash("live view: reproduce the failure now; the flow's packets, counters and events appear as they happen", false)
	cmds := []tea.Cmd{waitLive(ch)}
	if m.hasPeer() {
		// Both ends watch: the peer's packets over a window inside this
		// host's are compared when it answers.
		cmds = append(cmds, m.runPeer(peerWatch))
		if !m.spinning {
			m.spinning = true
			cmds = append(cmds, m.spin.Tick)
		}
	}
	ev := m.prober.Evidence()
	if m.live.pch = m.opt.Session.Capture(ctx, m.flow, ev.Forms()); m.live.pch != nil {
		cmds = append(cmds, waitPackets(m.live.pch))
	}
	if m.live.dch = m.opt.Session.Drops(ctx, m.flow, ev.Forms()); m.live.dch != nil {
		cmds = append(cmds, waitDrops(m.live.dch))
	}
	return tea.Batch(cmds...)
}

func (m *Model) liveUpdate(msg liveMsg) tea.Cmd {
	l := m.live
	if l == nil {
		return nil
	}
	if !msg.ok {
		l.closed = true
		return nil
	}
	u := msg.u
	if u.Sample != nil {
		if l.first == nil {
			l.first = u.Sample
		}
		l.prev, l.cur = l.cur, u.Sample
		if l.prev != nil {
			l.rates = evidence.Rates(l.prev, l.cur)
		}
	}
	l.events = append(l.events, u.Events...)
	m.reanalyze() // the live analyzers read the packets, events and counter changes
	if over := len(l.events) - liveMax; over > 0 {
		l.events = append(l.events[:0], l.events[over:]...)
		l.dropped += over
	}
	l.dropped += u.Dropped
	if u.Err != nil {
		l.addErr(u.Err)
	}
	return waitLive(l.ch)
}

// addErr keeps each of the errors err holds once, as a line of its own: a
// joined error's text has a line break between them, which Clean would
// show as an escape.
func (l *liveState) addErr(err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		e := playbook.Clean(strings.TrimSpace(line))
		if e != "" && !slices.Contains(l.errs, e) {
			l.errs = append(l.errs, e)
		}
	}
}

// counterLabel names a counter for people.
func counterLabel(k string) string {
	switch k {
	case "TcpExt:IPReversePathFilter":
		return "rp_filter drops (IPReversePathFilter)"
	case "TcpExt:TCPSynRetrans":
		return "SYN retransmits (TCPSynRetrans)"
	case "Tcp:RetransSegs":
		return "TCP retransmits (RetransSegs)"
	case "nf_conntrack:invalid":
		return "conntrack invalid"
	case "rt_cache:in_martian_src":
		return "martian sources (kernel-wide)"
	}
	return strings.TrimPrefix(k, "rule:") + " (rule counter)"
}

func (l *liveState) lines(st Styles, width int) []string {
	var out []string
	out = append(out, st.Title.Render("Live: this flow's counters and conntrack events"), "")
	if l.cur == nil {
		out = append(out, st.Dim.Render("waiting for the first sample…"))
	} else {
		keys := make([]string, 0, len(l.cur.Counters))
		for k := range l.cur.Counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		// The label column gives way on a narrow pane: the numbers are
		// what the live view is for.
		lw := clamp(width-22, 12, 42)
		out = append(out, st.Bold.Render(fmt.Sprintf("  %-*s %9s %9s", lw, "counter", "per sec", "since on")))
		for _, k := range keys {
			total := int64(l.cur.Counters[k]) - int64(l.first.Counters[k])
			rate := l.rates[k]
			label := ansi.Truncate(counterLabel(k), lw, "…")
			line := fmt.Sprintf("%-*s %9s %9s", lw, label, fmt.Sprintf("%+.1f", rate), fmt.Sprintf("%+d", total))
			if rate > 0 || total > 0 {
				line = st.Highlight.Render("▶ " + line)
			} else {
				line = "  " + line
			}
			out = append(out, line)
		}
	}
	if l.pch != nil {
		out = append(out, "", st.Bold.Render(fmt.Sprintf("packets of the flow (interface, direction; newest last; %d not kept)", l.pdrop)))
		if len(l.packets) == 0 {
			out = append(out, st.Dim.Render("none yet"))
		}
		for _, p := range l.packets[max(0, len(l.packets)-12):] {
			line := playbook.Clean(p.Text)
			if p.Reply {
				out = append(out, hang(st.Highlight, "◀ ", line, width)...)
			} else {
				out = append(out, hang(st.Pane, "▶ ", line, width)...)
			}
		}
	}
	out = append(out, l.dropLines(st, width)...)
	out = append(out, "", st.Bold.Render(fmt.Sprintf("conntrack events for the flow (newest last; %d dropped)", l.dropped)))
	if len(l.events) == 0 {
		out = append(out, hang(st.Dim, "", "none yet: a flow that never gets a conntrack entry while invalid climbs is the silent-conntrack signature", width)...)
	}
	from := max(0, len(l.events)-12)
	for _, e := range l.events[from:] {
		out = append(out, e.Time.UTC().Format("15:04:05.000")+" "+playbook.Clean(e.Entry.Text))
	}
	for _, e := range l.errs {
		out = append(out, st.Bad.Render("! "+e))
	}
	if l.closed {
		out = append(out, st.Dim.Render("the live stream has ended"))
	}
	return out
}

func (l *liveState) writeMarkdown(w io.Writer) {
	if l.cur == nil && len(l.events) == 0 && len(l.packets) == 0 && len(l.drops) == 0 {
		return
	}
	fmt.Fprintf(w, "### Live view\n\n")
	if l.cur != nil {
		fmt.Fprintf(w, "Counter changes from %s to %s (UTC):\n\n", l.first.Time.UTC().Format("15:04:05"), l.cur.Time.UTC().Format("15:04:05"))
		keys := make([]string, 0, len(l.cur.Counters))
		for k := range l.cur.Counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var lines []string
		for _, k := range keys {
			lines = append(lines, fmt.Sprintf("%-44s %+d", k, int64(l.cur.Counters[k])-int64(l.first.Counters[k])))
		}
		writeFence(w, lines)
	}
	if len(l.packets) > 0 {
		fmt.Fprintf(w, "Packets of the flow (%d seen, %d not kept by the view):\n\n", len(l.packets)+l.pdrop, l.pdrop)
		var lines []string
		for i, p := range l.packets {
			if len(l.packets) > 2*notesPackets && i == notesPackets {
				lines = append(lines, fmt.Sprintf("… %d packets not shown …", len(l.packets)-2*notesPackets))
			}
			if i < notesPackets || i >= len(l.packets)-notesPackets {
				lines = append(lines, p.Text)
			}
		}
		writeFence(w, lines)
	}
	l.dropMarkdown(w)
	if len(l.events) > 0 {
		fmt.Fprintf(w, "Conntrack events for the flow (%d dropped; the last %d):\n\n", l.dropped, min(len(l.events), notesEvents))
		var lines []string
		for _, e := range l.events[max(0, len(l.events)-notesEvents):] {
			lines = append(lines, e.Time.UTC().Format("15:04:05.000")+" "+e.Entry.Text)
		}
		writeFence(w, lines)
	}
}

// The notes keep an excerpt of the packets (the first and the last) and
// the last events: the whole window stays in the view, and the findings
// quote the packets that prove them.
const (
	notesPackets = 10
	notesEvents  = 20
)

// writeFence writes lines in a Markdown code block nothing inside closes.
func writeFence(w io.Writer, lines []string) {
	var b strings.Builder
	playbook.WriteFence(&b, lines)
	io.WriteString(w, b.String())
}

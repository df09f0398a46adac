package ui

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	tea "charm.land/bubbletea/v2"

	"asym/playbook"
	"asym/probes"
)

// liveMax bounds the events kept on screen and in the notes.
const liveMax = 200

// liveState is the live view: counters of the flow as rates, and its
// conntrack events, fed by a stream that a command reads one batch at a time.
type liveState struct {
	cancel  context.CancelFunc
	ch      <-chan probes.WatchUpdate
	shown   bool
	first   *probes.Sample
	prev    *probes.Sample
	cur     *probes.Sample
	rates   map[string]float64
	events  []probes.CtEvent
	dropped int
	errs    []string
	closed  bool
}

type liveMsg struct {
	u  probes.WatchUpdate
	ok bool
}

func (l *liveState) stop() {
	if l.cancel != nil {
		l.cancel()
	}
}

// waitLive reads one batch; the model re-issues it after each, so the stream
// never outruns the screen (the watcher batches and counts what it drops).
func waitLive(ch <-chan probes.WatchUpdate) tea.Cmd {
	return func() tea.Msg {
		u, ok := <-ch
		return liveMsg{u, ok}
	}
}

func (m *Model) toggleLive() tea.Cmd {
	if m.opt.Watch == nil || m.prober == nil {
		m.setFlash("the live view is not available here", true)
		return nil
	}
	if m.live != nil {
		m.live.shown = !m.live.shown
		m.showFind, m.scroll = false, 0
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	ch := m.opt.Watch(ctx, m.flow)
	m.live = &liveState{cancel: cancel, ch: ch, shown: true}
	m.showFind, m.scroll = false, 0
	m.setFlash("live view: reproduce the failure now; counters and events of this flow appear every second", false)
	return waitLive(ch)
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
			l.rates = probes.Rates(l.prev, l.cur)
		}
	}
	l.events = append(l.events, u.Events...)
	if over := len(l.events) - liveMax; over > 0 {
		l.events = append(l.events[:0], l.events[over:]...)
		l.dropped += over
	}
	l.dropped += u.Dropped
	if u.Err != nil {
		e := playbook.Clean(u.Err.Error())
		if len(l.errs) == 0 || l.errs[len(l.errs)-1] != e {
			l.errs = append(l.errs, e)
		}
	}
	return waitLive(l.ch)
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
		out = append(out, st.Bold.Render(fmt.Sprintf("%-42s %9s %9s", "counter", "per sec", "since on")))
		for _, k := range keys {
			total := int64(l.cur.Counters[k]) - int64(l.first.Counters[k])
			rate := l.rates[k]
			line := fmt.Sprintf("%-42s %9s %9s", counterLabel(k), fmt.Sprintf("%+.1f", rate), fmt.Sprintf("%+d", total))
			if rate > 0 || total > 0 {
				line = st.Highlight.Render("▶ " + line)
			} else {
				line = "  " + line
			}
			out = append(out, line)
		}
	}
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
	if l.cur == nil && len(l.events) == 0 {
		return
	}
	fmt.Fprintf(w, "### Live view\n\n")
	if l.cur != nil {
		fmt.Fprintf(w, "Counter changes from %s to %s (UTC):\n\n```\n", l.first.Time.UTC().Format("15:04:05"), l.cur.Time.UTC().Format("15:04:05"))
		keys := make([]string, 0, len(l.cur.Counters))
		for k := range l.cur.Counters {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%-44s %+d\n", playbook.Clean(k), int64(l.cur.Counters[k])-int64(l.first.Counters[k]))
		}
		fmt.Fprintf(w, "```\n\n")
	}
	if len(l.events) > 0 {
		fmt.Fprintf(w, "Conntrack events for the flow (%d dropped):\n\n```\n", l.dropped)
		for _, e := range l.events {
			fmt.Fprintf(w, "%s %s\n", e.Time.UTC().Format("15:04:05.000"), playbook.Clean(e.Entry.Text))
		}
		fmt.Fprintf(w, "```\n\n")
	}
}

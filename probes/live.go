package probes

import (
	"asym/evidence"
	"asym/probes/capture"
	"asym/probes/drops"
	"asym/probes/watch"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// liveMaxPackets, liveMaxEvents and liveMaxDrops bound what a window keeps.
const (
	liveMaxPackets = 2000
	liveMaxEvents  = 2000
	liveMaxDrops   = 2000
)

// WatchLive observes the flow for d: conntrack events and counters through
// watch.Start, packets through capture.Capture, and the kernel's drops of
// them through drops.Watch, all started together and bounded.
func (c *Collector) WatchLive(ctx context.Context, d time.Duration) *evidence.LiveEvidence {
	r, start := evidence.Begin("live", fmt.Sprintf("Live evidence over %s", d))
	l := &evidence.LiveEvidence{Report: r, Start: start, Deltas: map[string]int64{}}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	watch := watch.Start(ctx, c.T, c.Flow, watch.Options{Interval: min(time.Second, d/2)})
	ev := c.Evidence()
	packets := capture.Capture(ctx, c.T, c.Flow, capture.Options{Also: ev.Forms()})
	dropped := drops.Watch(ctx, c.T, c.Flow, drops.Options{Also: ev.Forms()})
	var first, last *evidence.Sample
	captureFailed := false
	for watch != nil || packets != nil || dropped != nil {
		select {
		case u, ok := <-watch:
			if !ok {
				watch = nil
				continue
			}
			if u.Sample != nil {
				if first == nil {
					first = u.Sample
				}
				last = u.Sample
			}
			l.Events = append(l.Events, u.Events...)
			l.EventsDropped += u.Dropped
			if u.Err != nil {
				problems(l, u.Err)
			}
		case u, ok := <-packets:
			if !ok {
				packets = nil
				continue
			}
			l.Packets = append(l.Packets, u.Packets...)
			l.PacketsDropped += u.Dropped
			if u.Err != nil {
				captureFailed = true
				problems(l, u.Err)
			}
		case u, ok := <-dropped:
			if !ok {
				dropped = nil
				continue
			}
			addDrops(l, u)
		}
	}
	if over := len(l.Packets) - liveMaxPackets; over > 0 {
		l.Packets, l.PacketsDropped = l.Packets[over:], l.PacketsDropped+over
	}
	if over := len(l.Events) - liveMaxEvents; over > 0 {
		l.Events, l.EventsDropped = l.Events[over:], l.EventsDropped+over
	}
	if over := len(l.Drops) - liveMaxDrops; over > 0 {
		l.Drops, l.DropsLost = l.Drops[over:], l.DropsLost+over
	}
	if first != nil && last != nil {
		for k, v := range last.Counters {
			if p, ok := first.Counters[k]; ok {
				l.Deltas[k] = int64(v) - int64(p)
			}
		}
	}
	l.End = time.Now()
	l.Captured = !captureFailed
	sortProblems(l.Problems)
	renderLive(l, c)
	l.Finish(start)
	// Without the capture, 0 packets proves nothing: the window is
	// unavailable, and says why, even when counters moved.
	if len(l.Packets) == 0 && len(l.Problems) > 0 && (captureFailed || first == nil) {
		l.Status, l.Reason = evidence.StatusUnavailable, strings.Join(l.Problems, "; ")
	}
	c.set(func(e *evidence.Evidence) { e.Live = l })
	return l
}

// addDrops takes one batch of the drop witness into the window. The hook
// arrives with the first batch; an error means the witness did not run
// (or stopped), and then no absence of drops may be read from the window.
func addDrops(l *evidence.LiveEvidence, u evidence.DropUpdate) {
	if u.Hook != "" {
		l.DropHook = u.Hook
	}
	l.Drops = append(l.Drops, u.Drops...)
	l.DropsLost += u.Lost + u.Skipped
	l.DropsUnattributed += u.Unattributed
	if u.Err != nil {
		l.DropHook, l.DropsUnavailable = "", u.Err.Error()
	}
}

// sortProblems puts the problems in an order that does not depend on
// which source failed first: the capture's first (without packets the
// window proves nothing), then the others by their text.
func sortProblems(ps []string) {
	rank := func(p string) int {
		if strings.HasPrefix(p, "packet capture") {
			return 0
		}
		return 1
	}
	slices.SortStableFunc(ps, func(a, b string) int {
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
}

// problems records each of the errors err holds as a problem of its own:
// a joined error's text has a line per error, and a line break inside a
// reason would reach the text as an escape.
func problems(l *evidence.LiveEvidence, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			l.Problem(line)
		}
	}
}

// renderLive writes the window's report lines: what tcpdump and
// conntrack -E would have shown, and the counters that moved.
func renderLive(l *evidence.LiveEvidence, c *Collector) {
	l.Command = c.T.Cmd("tcpdump", "-ni", "any", evidence.TcpdumpFilter(c.Flow)) + "; " + c.T.Cmd("conntrack", "-E", "-p", c.Flow.Proto.String(), "--orig-src", c.Flow.Src.Addr().String(), "--orig-dst", c.Flow.Dst.Addr().String())
	l.Add("# %d packets of the flow, %d conntrack events, over %s", len(l.Packets), len(l.Events), l.End.Sub(l.Start).Round(100*time.Millisecond))
	for _, p := range l.Packets[max(0, len(l.Packets)-40):] {
		l.Add("%s", p.Text)
	}
	for _, e := range l.Events[max(0, len(l.Events)-20):] {
		l.Add("%s %s", e.Time.UTC().Format("15:04:05.000"), e.Entry.Text)
	}
	renderDrops(l)
	keys := make([]string, 0, len(l.Deltas))
	for k, v := range l.Deltas {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		l.Add("# %s %+d", k, l.Deltas[k])
	}
	if l.EventsDropped+l.PacketsDropped > 0 {
		l.Add("# not kept: %d events, %d packets (limits or kernel drops): this is a sample", l.EventsDropped, l.PacketsDropped)
	}
	for _, p := range l.Problems {
		l.Add("# %s", p)
	}
}

// renderDrops writes what the kernel said of the flow's drops: the
// reasons counted, then the drops themselves (the last 20), as pwru or
// retis would have shown them.
func renderDrops(l *evidence.LiveEvidence) {
	switch {
	case l.DropsUnavailable != "":
		l.Add("# %s", l.DropsUnavailable)
		return
	case l.DropHook == "":
		return
	case len(l.Drops) == 0:
		l.Add("# the kernel dropped none of the flow's packets here (drop witness on %s)", l.DropHook)
	default:
		l.Add("# the kernel dropped %d of the flow's packets here: %s (drop witness on %s)", len(l.Drops), evidence.DropCounts(l.Drops), l.DropHook)
	}
	for _, d := range l.Drops[max(0, len(l.Drops)-20):] {
		l.Add("%s", d.Text)
	}
	if l.DropsLost > 0 {
		l.Add("# %d drops of the flow not kept (ring buffer or batch limits)", l.DropsLost)
	}
	if l.DropsUnattributed > 0 {
		l.Add("# %d drops with the flow's addresses had no device or socket to tell their namespace: not counted as this one's", l.DropsUnattributed)
	}
}

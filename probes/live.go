package probes

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// LiveEvidence is what the host showed while a person (or a script)
// reproduced the failure: counter changes, conntrack events and packets of
// the flow over a window.
type LiveEvidence struct {
	Report
	Start   time.Time        `json:"start"`
	End     time.Time        `json:"end"`
	Deltas  map[string]int64 `json:"deltas"` // counter changes from the first sample to the last
	Events  []CtEvent        `json:"events"`
	Packets []CapturedPacket `json:"packets"`
	// Dropped counts what the window could not keep (kernel or batch
	// limits): the evidence is then a sample, and says so.
	EventsDropped  int `json:"events_dropped"`
	PacketsDropped int `json:"packets_dropped"`
	// Captured says the packet capture ran over the whole window. Without
	// it (no privilege, the socket failed) the absence of a packet proves
	// nothing, and nothing may be concluded from one.
	Captured bool     `json:"captured"`
	Problems []string `json:"problems,omitempty"`
}

// liveMaxPackets and liveMaxEvents bound what a window keeps.
const (
	liveMaxPackets = 2000
	liveMaxEvents  = 2000
)

// WatchLive observes the flow for d: conntrack events and counters through
// Watch, packets through Capture, both started together and bounded.
func (c *Collector) WatchLive(ctx context.Context, d time.Duration) *LiveEvidence {
	r, start := begin("live", fmt.Sprintf("Live evidence over %s", d))
	l := &LiveEvidence{Report: r, Start: start, Deltas: map[string]int64{}}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	watch := Watch(ctx, c.T, c.Flow, WatchOptions{Interval: min(time.Second, d/2)})
	capture := Capture(ctx, c.T, c.Flow, CaptureOptions{})
	var first, last *Sample
	captureFailed := false
	for watch != nil || capture != nil {
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
				l.problem(u.Err.Error())
			}
		case u, ok := <-capture:
			if !ok {
				capture = nil
				continue
			}
			l.Packets = append(l.Packets, u.Packets...)
			l.PacketsDropped += u.Dropped
			if u.Err != nil {
				captureFailed = true
				l.problem(u.Err.Error())
			}
		}
	}
	if over := len(l.Packets) - liveMaxPackets; over > 0 {
		l.Packets, l.PacketsDropped = l.Packets[over:], l.PacketsDropped+over
	}
	if over := len(l.Events) - liveMaxEvents; over > 0 {
		l.Events, l.EventsDropped = l.Events[over:], l.EventsDropped+over
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
	l.render(c)
	l.finish(start)
	if first == nil && len(l.Packets) == 0 && len(l.Problems) > 0 {
		l.Status, l.Reason = StatusUnavailable, strings.Join(l.Problems, "; ")
	}
	c.set(func(e *Evidence) { e.Live = l })
	return l
}

func (l *LiveEvidence) problem(s string) {
	for _, p := range l.Problems {
		if p == s {
			return
		}
	}
	l.Problems = append(l.Problems, s)
}

func (l *LiveEvidence) render(c *Collector) {
	l.Command = c.T.Cmd("tcpdump", "-ni", "any", TcpdumpFilter(c.Flow)) + "; " + c.T.Cmd("conntrack", "-E", "-p", c.Flow.Proto.String(), "--orig-src", c.Flow.Src.Addr().String(), "--orig-dst", c.Flow.Dst.Addr().String())
	l.Add("# %d packets of the flow, %d conntrack events, over %s", len(l.Packets), len(l.Events), l.End.Sub(l.Start).Round(100*time.Millisecond))
	for _, p := range l.Packets[max(0, len(l.Packets)-40):] {
		l.Add("%s", p.Text)
	}
	for _, e := range l.Events[max(0, len(l.Events)-20):] {
		l.Add("%s %s", e.Time.UTC().Format("15:04:05.000"), e.Entry.Text)
	}
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

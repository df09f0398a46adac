// Package watch is the live watch of one flow: the counters that matter,
// sampled every interval, and the flow's conntrack events, batched into at
// most one evidence.WatchUpdate per interval (STYLE.md point 7).
//
// One file per concept, as in ti-mo/conntrack: the conntrack event socket
// (ctstream.go), its attributes (ctattr.go), the tuple matcher
// (ctmatch.go), decoding an event (ctevent.go); the batch and its delivery
// (batch.go, here); the counter sampler (sampler.go) and the nftables rule
// counters it reads (rules.go).
package watch

import (
	"context"
	"errors"
	"sync"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/firewall"
)

// Namespace is the network namespace watched. *probes.Target is one; the
// watch takes this interface rather than the Target because package probes
// imports this one.
type Namespace interface {
	firewall.Namespace
	// IsHost says the namespace is the one asym runs in: sockets for it
	// are made where we are, since entering even our own namespace needs
	// CAP_SYS_ADMIN.
	IsHost() bool
}

// Options tune Start; the zero value is fine.
type Options struct {
	Interval  time.Duration // sample period, default 1s, at least 100ms
	MaxEvents int           // per batch cap, default 256; beyond it count Dropped
}

const (
	defaultInterval  = time.Second
	minInterval      = 100 * time.Millisecond
	defaultMaxEvents = 256
)

// withDefaults fills in what the caller left zero.
func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = defaultInterval
	}
	o.Interval = max(o.Interval, minInterval)
	if o.MaxEvents <= 0 {
		o.MaxEvents = defaultMaxEvents
	}
	return o
}

// Start samples the counters every Interval and listens to conntrack
// events for the flow (both directions, and the flow's reverse and NAT'd
// forms, as the conntrack probe matches them; a flow without ports matches
// on addresses and protocol), delivering at most one WatchUpdate per
// Interval on the returned channel until ctx ends; then it closes the
// channel, after every goroutine it started has returned. It never blocks
// on a slow consumer: while the channel is full, updates are merged (events
// appended up to MaxEvents, Dropped counted, the newest sample kept).
//
// The event socket is open when Start returns, so events from then on are
// seen. ns must stay open until the channel is closed.
func Start(ctx context.Context, ns Namespace, f flow.Flow, opt Options) <-chan evidence.WatchUpdate {
	opt = opt.withDefaults()
	// One batch waits in the channel; later ones merge behind it, so a
	// consumer that comes back gets the newest sample on its second read.
	out := make(chan evidence.WatchUpdate, 1)
	b := &batch{max: opt.MaxEvents}
	if ns == nil {
		b.fail(errors.New("live watch: no namespace to watch"))
		b.flush(out)
		close(out)
		return out
	}
	w := &watcher{iv: opt.Interval, batch: b, sampler: newSampler(ns, f),
		reqs: make(chan struct{}, 1), done: make(chan struct{}, 1)}
	events, err := openCtStream(ns, f, b)
	if err != nil {
		b.fail(err)
	} else {
		w.events = events
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			events.run()
		}()
	}
	stopInterrupt := context.AfterFunc(ctx, w.sampler.interrupt)
	w.wg.Add(1)
	go w.sampleOnRequest(ctx)
	go w.deliver(ctx, out, stopInterrupt)
	return out
}

// watcher is one running watch.
type watcher struct {
	iv      time.Duration
	batch   *batch
	events  *ctStream // nil when the event socket could not be opened
	sampler *sampler
	reqs    chan struct{} // deliver asks for a sample
	done    chan struct{} // the sample is in the batch
	wg      sync.WaitGroup
}

// sampleOnRequest takes one sample per request into the batch, so that a
// slow /proc read delays the next sample, never the events.
func (w *watcher) sampleOnRequest(ctx context.Context) {
	defer w.wg.Done()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.reqs:
		}
		smp, errs := w.sampler.sample(ctx)
		if ctx.Err() != nil {
			return
		}
		w.batch.setSample(smp)
		for _, e := range errs {
			w.batch.fail(e)
		}
		w.done <- struct{}{} // one request at a time: never blocks
	}
}

// deliver hands the batch over once per tick until ctx ends. A batch
// leaves when its sample is in, or half an interval after the tick if the
// sample is late (a stuck /proc read must not hold the events back).
func (w *watcher) deliver(ctx context.Context, out chan<- evidence.WatchUpdate, stopInterrupt func() bool) {
	defer close(out)
	tick := time.NewTicker(w.iv)
	defer tick.Stop()
	due := time.NewTimer(w.iv / 2)
	defer due.Stop()
	w.reqs <- struct{}{} // the first sample at once: a baseline for rates
	// sampling: a sample was asked for and is not in yet. armed: this
	// tick's batch has not left yet.
	sampling, armed := true, true
	for {
		select {
		case <-ctx.Done():
			w.stop(stopInterrupt)
			return
		case <-tick.C:
			armed = true
			due.Reset(w.iv / 2)
			if !sampling {
				sampling = true
				w.reqs <- struct{}{}
			}
		case <-w.done:
			sampling = false
			armed = w.flushIfArmed(armed, out)
		case <-due.C:
			armed = w.flushIfArmed(armed, out)
		}
	}
}

// flushIfArmed hands this tick's batch over unless it has left already;
// either way the tick is then done.
func (w *watcher) flushIfArmed(armed bool, out chan<- evidence.WatchUpdate) bool {
	if armed {
		if w.events != nil {
			w.events.collectDrops()
		}
		w.batch.flush(out)
	}
	return false
}

// stop ends the goroutines Start started and releases the sockets.
func (w *watcher) stop(stopInterrupt func() bool) {
	if w.events != nil {
		w.events.close() // unblocks the reader
	}
	w.wg.Wait()
	stopInterrupt()
	w.sampler.close()
}

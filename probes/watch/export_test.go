package watch

// What the kernel tests in package watch_test need from inside: they take
// a *probes.Target, so they cannot be in this package (package probes
// imports it).

import (
	"context"

	"asym/evidence"
	"asym/flow"
)

// SetEventRcvBuf sets the event socket's receive buffer for the watches
// started until restore is called, to force overruns.
func SetEventRcvBuf(n int) (restore func()) {
	saved := eventRcvBuf
	eventRcvBuf = n
	return func() { eventRcvBuf = saved }
}

// CounterKeys are the kernel counters a sample keeps.
var CounterKeys = counterKeys

// Sampler is the watch's sampler on its own, for BenchmarkWatchSample.
type Sampler struct{ s *sampler }

// NewSampler makes the sampler a watch of ns would use, for no flow in
// particular: the firewall's walk then takes any packet.
func NewSampler(ns Namespace) Sampler { return Sampler{newSampler(ns, flow.Flow{})} }

// Sample takes one sample: the kernel counters and the watched rules'.
func (s Sampler) Sample(ctx context.Context) (*evidence.Sample, []error) { return s.s.sample(ctx) }

// ReadRules reads only the watched rules' counters.
func (s Sampler) ReadRules(ctx context.Context, into map[string]uint64) error {
	return s.s.rules.read(ctx, into)
}

// Close releases the sampler's sockets.
func (s Sampler) Close() { s.s.close() }

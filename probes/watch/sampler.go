package watch

// The counter sampler: the kernel's counters that matter for the flow and
// the packet counters of the firewall rules that drop it, every interval.

import (
	"context"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/counter"
)

// sampleTimeout bounds one sample, as probes.DefaultTimeout bounds one
// probe.
const sampleTimeout = 3 * time.Second

// counterKeys are the kernel counters a sample keeps.
var counterKeys = []string{
	evidence.CounterRPFilter,
	evidence.CounterSynRetrans,
	evidence.CounterRetrans,
	evidence.CounterCtInvalid,
	evidence.CounterMartianSrc,
}

// sampler takes samples; it runs on one goroutine at a time.
type sampler struct {
	ns      Namespace
	rules   *ruleWatch
	lastErr [2]string // counters, rules: report a failure once, not every interval
}

func newSampler(ns Namespace, f flow.Flow) *sampler {
	return &sampler{ns: ns, rules: newRuleWatch(ns, f)}
}

// sample reads the counters and the watched rules' counters. Errors come
// back only when they differ from the last ones.
func (s *sampler) sample(ctx context.Context) (*evidence.Sample, []error) {
	ctx, cancel := context.WithTimeout(ctx, sampleTimeout)
	defer cancel()
	smp := &evidence.Sample{Time: time.Now(), Counters: map[string]uint64{}}
	values, err := counter.Read(ctx, s.ns)
	for _, k := range counterKeys {
		if v, ok := values[k]; ok {
			smp.Counters[k] = v
		}
	}
	var errs []error
	errs = s.note(errs, 0, "kernel counters are unavailable", err)
	if ctx.Err() != nil {
		return smp, errs
	}
	errs = s.note(errs, 1, "firewall rule counters are unavailable", s.rules.read(ctx, smp.Counters))
	return smp, errs
}

// note adds err to errs, worded under what, unless source i failed with
// the same sentence last time; no error clears it.
func (s *sampler) note(errs []error, i int, what string, err error) []error {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if msg != s.lastErr[i] && err != nil {
		errs = append(errs, partFailed(what, err))
	}
	s.lastErr[i] = msg
	return errs
}

// interrupt unblocks a rule read the kernel does not answer; it runs when
// the watch's context ends.
func (s *sampler) interrupt() { s.rules.interrupt() }

// close releases the sampler's sockets once it has returned.
func (s *sampler) close() { s.rules.close() }

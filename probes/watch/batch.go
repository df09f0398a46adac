package watch

// The batch: what the event reader and the sampler gather between two
// deliveries.

import (
	"errors"
	"sync"

	"asym/evidence"
)

// maxErrs bounds the distinct errors merged into one batch that nobody
// reads.
const maxErrs = 4

// batch is the update being assembled. The event reader and the sampler
// add to it; the delivery loop hands it over when the channel has room and
// otherwise leaves it to grow, within max events.
type batch struct {
	mu   sync.Mutex
	max  int
	u    evidence.WatchUpdate
	errs []string
}

func (b *batch) event(e evidence.CtEvent) {
	b.mu.Lock()
	if len(b.u.Events) < b.max {
		b.u.Events = append(b.u.Events, e)
	} else {
		b.u.Dropped++
	}
	b.mu.Unlock()
}

func (b *batch) dropped(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.u.Dropped += n
	b.mu.Unlock()
}

func (b *batch) setSample(s *evidence.Sample) {
	if s == nil {
		return
	}
	b.mu.Lock()
	b.u.Sample = s // the newest wins: rates over a longer span are still right
	b.mu.Unlock()
}

// fail adds an error; the same sentence twice, or more than maxErrs
// distinct ones, are kept once, so a batch nobody reads stays small.
func (b *batch) fail(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	msg := err.Error()
	for _, m := range b.errs {
		if m == msg {
			return
		}
	}
	if len(b.errs) >= maxErrs {
		return
	}
	b.errs = append(b.errs, msg)
	if b.u.Err == nil {
		b.u.Err = err // a single error keeps its own type for errors.As
	} else {
		b.u.Err = errors.Join(b.u.Err, err)
	}
}

// flush hands the batch over if there is one and the channel has room.
func (b *batch) flush(out chan<- evidence.WatchUpdate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.u.Sample == nil && len(b.u.Events) == 0 && b.u.Dropped == 0 && b.u.Err == nil {
		return false
	}
	select {
	case out <- b.u:
		b.u, b.errs = evidence.WatchUpdate{}, nil
		return true
	default:
		return false
	}
}

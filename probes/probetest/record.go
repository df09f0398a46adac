package probetest

import (
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"testing"
	"time"
)

// Poll calls cond every 20ms until it holds or d has passed, and says
// whether it held. cond runs at least once, and once more at the deadline.
func Poll(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// Drain reads ch on a goroutine of its own until ch is closed, handing each
// value to each. The channel it returns is closed once ch is.
func Drain[T any](ch <-chan T, each func(T)) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for v := range ch {
			each(v)
		}
	}()
	return done
}

// WaitClosed reads ch, discarding what comes, until it is closed, and fails
// the test if that takes more than 3s: a stream must end promptly once its
// context is cancelled.
func WaitClosed[T any](t testing.TB, ch <-chan T, name string) {
	t.Helper()
	timeout := time.After(3 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-timeout:
			t.Fatalf("%s: the channel was not closed within 3s of cancelling", name)
		}
	}
}

// Recorder keeps everything a stream (a watch, a capture) delivers. It
// reads the stream's channel as fast as values come, so that the stream
// never waits for the test.
type Recorder[T any] struct {
	mu     sync.Mutex
	got    []T
	closed <-chan struct{}
}

// Record starts recording ch.
func Record[T any](ch <-chan T) *Recorder[T] {
	r := &Recorder[T]{}
	r.closed = Drain(ch, func(v T) {
		r.mu.Lock()
		r.got = append(r.got, v)
		r.mu.Unlock()
	})
	return r
}

// Got returns a copy of what has arrived so far.
func (r *Recorder[T]) Got() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]T(nil), r.got...)
}

// Until polls cond over what has arrived so far (see Poll) for up to d.
func (r *Recorder[T]) Until(d time.Duration, cond func([]T) bool) bool {
	return Poll(d, func() bool { return cond(r.Got()) })
}

// WaitClosed fails the test unless the stream's channel is closed within
// 3s, which it must be soon after the stream's context ends.
func (r *Recorder[T]) WaitClosed(t testing.TB, name string) {
	t.Helper()
	WaitClosed(t, r.closed, name)
}

// WaitGoroutines waits up to 3s for the number of goroutines to come back
// down to base (what a test counted before starting and cancelling
// streams), and fails the test with a dump of them if it does not. Waiting
// is needed: work abandoned at cancel, such as a /proc read on a thread
// inside a namespace (Target.InNS, Do), finishes on its own a little later.
func WaitGoroutines(t testing.TB, base int) {
	t.Helper()
	n := 0
	if Poll(3*time.Second, func() bool { n = runtime.NumGoroutine(); return n <= base }) {
		return
	}
	pprof.Lookup("goroutine").WriteTo(os.Stderr, 1)
	t.Errorf("%d goroutines after cancelling, %d before", n, base)
}

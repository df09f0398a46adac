// Package capture shows the flow's packets as they cross the target's
// interfaces, seen by one AF_PACKET socket with an in-kernel filter and
// batched like the live watch (STYLE.md point 7). It answers the question
// the other probes can only infer: which interface did the request come in
// on, and which one did the reply leave by.
//
// The package is cut the way cilium/pwru keeps filter compiling apart from
// tracing apart from output: socket.go reads the kernel, filter.go (with
// asm.go) builds the classic BPF program for the flow, decode.go turns what
// the filter kept into an evidence.CapturedPacket, and text.go writes the
// line tcpdump would print. match.go is the flow as the filter and the
// decoder both see it.
package capture

import (
	"context"
	"errors"
	"fmt"
	"time"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

// Namespace is the network namespace to capture in, as far as the capture
// needs it. probes.Target is one; the capture takes this instead so that
// package probes can import it.
type Namespace interface {
	// InNS runs fn on a locked OS thread that has entered the namespace
	// and is discarded afterwards: the packet socket is created there.
	InNS(ctx context.Context, fn func() error) error
	// IfName names the interface with this index inside the namespace.
	IfName(index int) string
	// String names the namespace for people ("netns asym-lab"), in errors.
	String() string
}

// Options tune Capture; the zero value is fine.
type Options struct {
	Interval time.Duration // batch period, default 200ms, at least 20ms
	MaxBatch int           // per update cap, default 512; beyond it count Dropped
	// Also are other forms of the same flow to capture: as NAT translated
	// it, or as sent from another source address than the typed one. Their
	// packets carry the form in CapturedPacket.As.
	Also []flow.Flow
}

const (
	defaultInterval = 200 * time.Millisecond
	minInterval     = 20 * time.Millisecond
	defaultMaxBatch = 512
)

// Capture captures the flow's packets on every interface of ns at once
// (AF_PACKET, SOCK_RAW, ETH_P_ALL, ifindex 0) with an in-kernel classic BPF
// filter matching the flow in both directions (Filter), and delivers at
// most one CaptureUpdate per Interval until ctx ends; then it closes the
// channel, after its goroutine has closed the socket. A capture that fails
// (no root, the socket breaks) delivers the error in its last update and
// closes the channel at once. It never blocks on a slow reader: while the
// channel is full, packets are merged into the waiting batch up to MaxBatch
// and counted in Dropped beyond it.
//
// The socket is open when Capture returns, so packets from then on are seen.
// ns must stay open until the channel is closed (interface names are looked
// up through it).
func Capture(ctx context.Context, ns Namespace, f flow.Flow, opt Options) <-chan evidence.CaptureUpdate {
	iv := opt.Interval
	if iv <= 0 {
		iv = defaultInterval
	}
	iv = max(iv, minInterval)
	maxB := opt.MaxBatch
	if maxB <= 0 {
		maxB = defaultMaxBatch
	}
	// One batch waits in the channel; later ones merge behind it.
	out := make(chan evidence.CaptureUpdate, 1)
	fail := func(err error) <-chan evidence.CaptureUpdate {
		out <- evidence.CaptureUpdate{Err: err}
		close(out)
		return out
	}
	if ns == nil {
		return fail(errors.New("packet capture: no namespace to capture in"))
	}
	if ctx.Err() != nil {
		close(out)
		return out
	}
	forms, err := newMatches(f, opt.Also)
	if err != nil {
		return fail(fmt.Errorf("packet capture: %w", err))
	}
	prog, err := Filter(f, opt.Also...)
	if err != nil {
		return fail(fmt.Errorf("packet capture: %w", err))
	}
	c, err := openSocket(ns, prog)
	if err != nil {
		return fail(failure(err))
	}
	c.forms, c.max = forms, maxB
	go c.run(ctx, out, iv)
	return out
}

// captureError is an error as a sentence for the person, keeping the
// kernel's error underneath for errors.Is.
type captureError struct {
	what, why string
	err       error
}

func (e *captureError) Error() string { return e.what + ": " + e.why }
func (e *captureError) Unwrap() error { return e.err }

// failure turns an error into a sentence under a heading that says the
// capture stopped. A missing privilege is CAP_NET_RAW here, not the
// CAP_NET_ADMIN that Classify names for netlink.
func failure(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return &captureError{what: "packet capture is unavailable",
			why: "needs root (CAP_NET_RAW): run asym with sudo (" + err.Error() + ")", err: err}
	}
	st, why := evidence.Classify(err)
	what := "packet capture failed"
	if st == evidence.StatusUnavailable {
		what = "packet capture is unavailable"
	}
	return &captureError{what: what, why: why, err: err}
}

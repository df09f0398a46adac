package evidence

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Status is how a probe ended.
type Status string

const (
	StatusOK          Status = "ok"
	StatusUnavailable Status = "unavailable" // cannot run here: not root, module absent, no nftables…
	StatusTimedOut    Status = "timed out"
	StatusFailed      Status = "failed" // ran, but the kernel answered with an error we did not expect
)

// Report is what every probe shows a person, whatever its data: the command
// they would have typed, its output in that command's familiar format, and
// how the probe ended. Probe results embed it.
type Report struct {
	Probe   ProbeID       `json:"probe"`             // stable id, e.g. "route.request"
	Title   string        `json:"title"`             // one line, e.g. "Request route decision"
	Command string        `json:"command,omitempty"` // equivalent command, quoted so that pasting it is safe
	Lines   []string      `json:"output,omitempty"`  // output in the familiar format
	Status  Status        `json:"status"`
	Reason  string        `json:"reason,omitempty"` // for unavailable, timed out, failed: why, as a sentence
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Rep returns the report itself; it lets code handle every probe result alike.
func (r *Report) Rep() *Report { return r }

// Reporter is implemented by every probe result.
type Reporter interface{ Rep() *Report }

// OK says whether the probe produced data.
func (r *Report) OK() bool { return r.Status == StatusOK }

// Add appends output lines.
func (r *Report) Add(format string, args ...any) {
	r.Lines = append(r.Lines, fmt.Sprintf(format, args...))
}

// Fail records why a probe could not do its work, classifying the error so
// that a missing privilege or module reads as "unavailable", not a failure.
func (r *Report) Fail(err error) {
	if err == nil {
		return
	}
	r.Status, r.Reason = Classify(err)
}

// Begin starts a report; Finish stamps its time.
func Begin(probe ProbeID, title string) (Report, time.Time) {
	return Report{Probe: probe, Title: title, Status: StatusOK}, time.Now()
}

// Finish stamps how long the probe took.
func (r *Report) Finish(start time.Time) { r.Elapsed = time.Since(start) }

// Classify turns an error into a status and a sentence. The errno values
// come from the standard library's syscall package, which names the same
// numbers the kernel returns.
func Classify(err error) (Status, string) {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return StatusTimedOut, "the kernel did not answer in time (" + msg + ")"
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES), errors.Is(err, os.ErrPermission):
		return StatusUnavailable, "needs root (CAP_NET_ADMIN): run asym with sudo (" + msg + ")"
	case errors.Is(err, syscall.EPROTONOSUPPORT), errors.Is(err, syscall.EAFNOSUPPORT):
		return StatusUnavailable, "the kernel lacks the module for this (" + msg + ")"
	case errors.Is(err, syscall.EOPNOTSUPP):
		return StatusUnavailable, "the kernel does not support this query (" + msg + ")"
	}
	var u *UnavailableError
	if errors.As(err, &u) {
		return StatusUnavailable, u.Why
	}
	return StatusFailed, msg
}

// UnavailableError says a probe cannot run here and why, in a sentence.
type UnavailableError struct{ Why string }

func (e *UnavailableError) Error() string { return "unavailable: " + e.Why }

// Unavailable builds an UnavailableError.
func Unavailable(format string, args ...any) error {
	return &UnavailableError{Why: fmt.Sprintf(format, args...)}
}

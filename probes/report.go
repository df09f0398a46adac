package probes

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
	Probe   string        `json:"probe"`             // stable id, e.g. "route.forward"
	Title   string        `json:"title"`             // one line, e.g. "Forward route decision"
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

// Classify turns an error into a status and a sentence.
func Classify(err error) (Status, string) {
	msg := err.Error()
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return StatusTimedOut, "the kernel did not answer in time (" + msg + ")"
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, os.ErrPermission):
		return StatusUnavailable, "needs root (CAP_NET_ADMIN): run asym with sudo (" + msg + ")"
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EAFNOSUPPORT):
		return StatusUnavailable, "the kernel lacks the module for this (" + msg + ")"
	case errors.Is(err, unix.EOPNOTSUPP):
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

// begin starts a report; finish stamps its status and time.
func begin(probe, title string) (Report, time.Time) {
	return Report{Probe: probe, Title: title, Status: StatusOK}, time.Now()
}

func (r *Report) finish(start time.Time) { r.Elapsed = time.Since(start) }

// Quote makes one word safe to paste into a POSIX shell, whatever it holds:
// interface names may contain $ ; ( ) and backquotes.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./-_", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command joins words into a command line, quoting each.
func Command(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// Clean strips terminal control sequences from text that came from the
// kernel, a person or another host (interface names may hold an ESC; a
// peer's stderr anything): C0 and C1 controls and DEL become visible
// escapes, tabs become spaces.
func Clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r == '\u2028' || r == '\u2029' || r == '\ufeff' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			// Line separators and bidi overrides can reorder what is shown.
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

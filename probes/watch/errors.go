package watch

import "asym/evidence"

// partError says which part of the watch stopped, and why, as a sentence
// for the person; it keeps the kernel's error for errors.Is.
type partError struct {
	what, why string
	err       error
}

func (e *partError) Error() string { return e.what + ": " + e.why }
func (e *partError) Unwrap() error { return e.err }

// partFailed classifies err (needs root, module missing…) under a heading
// that says which part of the watch stopped.
func partFailed(what string, err error) error {
	_, why := evidence.Classify(err)
	return &partError{what: what, why: why, err: err}
}

package capture

// What the kernel tests (package capture_test, which imports probes for a
// real namespace, so cannot be this package) reach inside for.

// RcvBuf is the packet socket's receive buffer, set small to make the
// kernel drop.
var RcvBuf = &rcvBuf

// Failure is failure: how a capture words the error it stops on.
var Failure = failure

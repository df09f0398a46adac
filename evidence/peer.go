package evidence

import "time"

// CollectFormat is the version of the wire format `asym collect` prints and
// --peer reads; a peer with another format is incompatible. Raise it
// whenever a change to Collection or Evidence would make an older asym
// misread a newer one's output.
const CollectFormat = 1

// Collection is what `asym collect --json` prints: one host's evidence for
// the flow.
type Collection struct {
	Format   int       `json:"asym_collect"` // first, so that a person reading the output knows what it is
	Version  string    `json:"version"`      // the collecting asym's version string
	Time     time.Time `json:"time"`
	Evidence Evidence  `json:"evidence"`
}

// PeerResult is one run of the peer. The JSON names follow Report's, for
// reports that include the peer's run.
type PeerResult struct {
	Prefix     []string      `json:"prefix"`               // the words before asym (--peer), for commands shown to run there
	Command    []string      `json:"command"`              // what ran
	Collection *Collection   `json:"collection,omitempty"` // nil on failure
	Failure    *PeerFailure  `json:"failure,omitempty"`    // nil on success
	Elapsed    time.Duration `json:"elapsed_ns"`
	Stderr     []string      `json:"stderr,omitempty"` // the last lines of the peer's stderr, cleaned, also on success
}

// PeerFailureKind says why the peer gave no evidence; stable, part of
// finding ids (peer_<kind>).
type PeerFailureKind string

const (
	PeerUnreachable  PeerFailureKind = "unreachable"  // the connection failed (ssh's status 255, a namespace that does not exist)
	PeerNoAsym       PeerFailureKind = "no_asym"      // the peer has no asym it can run
	PeerNoSudo       PeerFailureKind = "no_sudo"      // sudo on the peer wants a password or refuses
	PeerTimeout      PeerFailureKind = "timeout"      // the run did not end in time and was killed
	PeerIncompatible PeerFailureKind = "incompatible" // the peer's asym does not know collect, or speaks another format
	PeerFailed       PeerFailureKind = "failed"       // anything else, with the peer's last words
)

// PeerFailure says why the peer gave no evidence.
type PeerFailure struct {
	Kind     PeerFailureKind `json:"kind"`
	Reason   string          `json:"reason"`    // a sentence: what went wrong and what to do
	ExitCode int             `json:"exit_code"` // -1 when the command did not exit by itself (timeout, not started, signal)
}

package evidence

import (
	"time"
)

// CtEventType is what happened to a conntrack entry.
type CtEventType string

const (
	CtNew     CtEventType = "NEW"
	CtUpdate  CtEventType = "UPDATE"
	CtDestroy CtEventType = "DESTROY"
)

// CtEvent is one conntrack event for the watched flow.
type CtEvent struct {
	Time time.Time   `json:"time"` // when asym received it; the kernel does not stamp events
	Type CtEventType `json:"type"`
	// Entry is flattened as the conntrack probe does; its Text is the line
	// `conntrack -E` prints: "[NEW] tcp      6 120 SYN_SENT src=… [UNREPLIED] …".
	// An event carries only what the kernel sends: an UPDATE without a
	// state change has no TCP state, and kernels without "netfilter:
	// ctnetlink: add timeout and protoinfo to destroy events" send a
	// DESTROY with neither.
	Entry ConntrackEntry `json:"entry"`
}

// Sample is the counters that matter for the flow, at one instant.
type Sample struct {
	Time time.Time `json:"time"`
	// Counters: CounterRPFilter, CounterSynRetrans, CounterRetrans,
	// CounterCtInvalid (summed over CPUs), CounterMartianSrc (kernel-wide),
	// and one key per nftables ct-invalid or fib reverse-path rule that has
	// a counter, FirewallRule.CounterKey (its packet count). A key this
	// kernel or ruleset lacks is absent. iptables-legacy rules are left out:
	// reading their counters means running iptables-legacy-save, too heavy
	// to repeat every interval.
	Counters map[string]uint64 `json:"counters"`
}

// Rates turns two samples into per-second deltas, keyed like
// Sample.Counters (only keys in both). A counter that went backwards (the
// namespace re-created, a 32-bit per-CPU wrap) gives a negative rate rather
// than a huge one, as Counters.Delta does.
func Rates(prev, cur *Sample) map[string]float64 {
	out := map[string]float64{}
	if prev == nil || cur == nil {
		return out
	}
	dt := cur.Time.Sub(prev.Time).Seconds()
	if dt <= 0 {
		return out
	}
	for k, b := range cur.Counters {
		if a, ok := prev.Counters[k]; ok {
			out[k] = float64(int64(b-a)) / dt
		}
	}
	return out
}

// WatchUpdate is one batch of the live watch delivered to the consumer (one
// per interval at most).
type WatchUpdate struct {
	Sample *Sample   // nil if no sample in this batch
	Events []CtEvent // the flow's events since the last batch, in order
	// Dropped counts events lost since the last batch: beyond the batch cap
	// while the consumer was not reading, or dropped by the kernel because
	// the socket's buffer was full. The kernel does not say whose events
	// it dropped, so those may belong to any flow, the watched one included.
	Dropped int
	Err     error // a problem that stopped part of the watch; the rest goes on
}

// CaptureUpdate is one batch of captured packets (one per interval at most).
type CaptureUpdate struct {
	Packets []CapturedPacket // in the order the socket received them
	Dropped int              // packets lost since the last update: kernel drops (PACKET_STATISTICS tp_drops) plus ours (batch cap, unparseable)
	Err     error            // e.g. "packet capture is unavailable: needs root (CAP_NET_RAW)"
}

// LiveEvidence is what the host showed while a person (or a script)
// reproduced the failure: counter changes, conntrack events and packets of
// the flow over a window.
type LiveEvidence struct {
	Report
	Start   time.Time        `json:"start"`
	End     time.Time        `json:"end"`
	Deltas  map[string]int64 `json:"deltas"` // counter changes from the first sample to the last
	Events  []CtEvent        `json:"events"`
	Packets []CapturedPacket `json:"packets"`
	// Dropped counts what the window could not keep (kernel or batch
	// limits): the evidence is then a sample, and says so.
	EventsDropped  int `json:"events_dropped"`
	PacketsDropped int `json:"packets_dropped"`
	// Captured says the packet capture ran over the whole window. Without
	// it (no privilege, the socket failed) the absence of a packet proves
	// nothing, and nothing may be concluded from one.
	Captured bool     `json:"captured"`
	Problems []string `json:"problems,omitempty"`
	// Drops are the flow's packets the kernel dropped in the target
	// namespace over the window, each with the kernel's reason, from the
	// drop witness. DropHook says how the witness was attached, and is set
	// only when it ran over the window: then no drop means the kernel
	// dropped none of the flow's packets here (through kfree_skb).
	// DropsLost counts the flow's drops not kept: the kernel could not
	// hand them over, or beyond the window's limits. DropsUnavailable says
	// why the witness did not run ("kernel drop witness is unavailable:
	// …"); everything else of the window stands without it.
	Drops             []Drop `json:"drops,omitempty"`
	DropHook          string `json:"drop_hook,omitempty"`
	DropsLost         int    `json:"drops_lost,omitempty"`
	DropsUnattributed int    `json:"drops_unattributed,omitempty"`
	DropsUnavailable  string `json:"drops_unavailable,omitempty"`
}

// Problem records a problem of the window once.
func (l *LiveEvidence) Problem(s string) {
	for _, p := range l.Problems {
		if p == s {
			return
		}
	}
	l.Problems = append(l.Problems, s)
}

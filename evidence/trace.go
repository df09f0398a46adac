package evidence

import (
	"net/netip"
	"time"

	"asym/flow"
)

// TraceFormat is the version of what `asym trace --json` prints, which
// `asym trace --peer` reads from the far end. Raise it whenever a change to
// Trace would make an older asym misread a newer one's output.
const TraceFormat = 1

// TraceShape is what the probes look like beyond their tuple: the packet
// of the flow they imitate.
type TraceShape string

const (
	ShapeSYN    TraceShape = "tcp syn"     // the request's first segment
	ShapeSYNACK TraceShape = "tcp syn-ack" // the reply's first segment: what a stateful device without state drops
	ShapeUDP    TraceShape = "udp"
	ShapeEcho   TraceShape = "icmp echo"       // an echo request with a fixed identifier
	ShapeReply  TraceShape = "icmp echo-reply" // the reply's shape for an ICMP flow
)

// TraceObserving is the line a peer's `asym trace --observe-ids` writes
// to stderr once it listens for the other end's probes: the other end
// starts sending then.
const TraceObserving = "asym: observing the other end's probes"

// Trace directions: the request goes from the flow's client to its server,
// the reply back.
const (
	TraceRequest = "request"
	TraceReply   = "reply"
)

// Trace is the flow's path hop by hop in both directions: what `asym
// trace` prints and what a peer's `asym trace --json` sends back.
type Trace struct {
	Format  int       `json:"asym_trace"` // first, so that a person reading the output knows what it is
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Flow    flow.Flow `json:"flow"`
	// Role is this end's: the client traces the request, the server the
	// reply.
	Role    Role      `json:"role"`
	Target  string    `json:"target"` // where it ran: "netns asym-lab-client"
	Forward TracePath `json:"forward"`
	Reverse TracePath `json:"reverse"`
	// DivergesAt is the first hop of the request's path (counted from the
	// client) that the reply does not cross the same way; 0 when the two
	// paths do not part where both answered, or when that cannot be told.
	DivergesAt int    `json:"diverges_at"`
	Divergence string `json:"divergence"` // how DivergesAt was decided, in words
	// Boundary names the first stateful device without state for the flow,
	// with the reasoning; empty when the probes show none. BoundaryTTL and
	// BoundaryAddr locate it on the reply's path.
	Boundary     string     `json:"boundary"`
	BoundaryTTL  int        `json:"boundary_ttl,omitempty"`
	BoundaryAddr netip.Addr `json:"boundary_addr,omitzero"`
	Notes        []string   `json:"notes,omitempty"`
	// Peer is the far end's run (--peer), nil for one end only.
	Peer *TracePeer `json:"peer,omitempty"`
}

// Path returns the path of one direction.
func (t *Trace) Path(direction string) *TracePath {
	if direction == TraceReply {
		return &t.Reverse
	}
	return &t.Forward
}

// TracePath is one direction's path. Hop 0 is the sending host's own
// routing decision for the probes' tuple; hops from 1 on are the TTLs the
// probes were sent with.
type TracePath struct {
	Direction string `json:"direction"` // TraceRequest or TraceReply
	// From is the end that traced it: SideHere or SidePeer in a joined
	// trace, "" in a peer's own output.
	From string `json:"from,omitempty"`
	// Traced says probes were sent; false when the path is the sending
	// host's routing decision only (no peer, --no-send, or unavailable).
	Traced bool       `json:"traced"`
	Tuple  flow.Flow  `json:"tuple"` // what the probes carry, in the direction they travel
	Shape  TraceShape `json:"shape"`
	Hops   []TraceHop `json:"hops"`
	// Reached says the destination answered a probe (or, with Arrived,
	// saw one).
	Reached bool `json:"reached"`
	// Stopped says why the trace ended: the destination answered, max
	// hops, silent hops, a cap, the time limit.
	Stopped string `json:"stopped,omitempty"`
	// Control holds request-shaped probes sent in this direction with the
	// same tuple (a SYN from the reply's source port), which a stateful
	// device without state lets pass; only where the reply-shaped probes
	// stopped early.
	Control *TracePath `json:"control,omitempty"`
	// Arrived are this path's probes as the destination saw them arrive
	// (the far end listened while they were sent).
	Arrived []TraceArrival `json:"arrived,omitempty"`
	// Prefixes are the sending host's own subnets: hops on its links are
	// recognised by them.
	Prefixes []netip.Prefix `json:"prefixes,omitempty"`
	// Held says what holds the flow's tuple on the sending host (a socket,
	// a conntrack entry), which decides whether probes may carry it.
	Held string `json:"held,omitempty"`
	// HeldBySocket says a connection's socket (of any state) holds the
	// tuple the probes carried: a request-shaped probe arriving here with
	// it would be taken by that socket.
	HeldBySocket bool `json:"held_by_socket,omitempty"`
	Sent         int  `json:"sent"`
	// IDBase is the high byte of the probes' IP IDs; the low byte holds
	// the TTL a probe was sent with (and its index), which lets the far end
	// count the hops an arriving probe took.
	IDBase int      `json:"ip_id_base"`
	Notes  []string `json:"notes,omitempty"`
	// Plan is what would be sent (--no-send), one line per probe group.
	Plan        []string      `json:"plan,omitempty"`
	Unavailable string        `json:"unavailable,omitempty"`
	Elapsed     time.Duration `json:"elapsed_ns"`
}

// Hop returns the hop with this TTL, nil when there is none.
func (p *TracePath) Hop(ttl int) *TraceHop {
	for i := range p.Hops {
		if p.Hops[i].TTL == ttl {
			return &p.Hops[i]
		}
	}
	return nil
}

// LastAnswered is the highest TTL that any probe got an answer for (0:
// none).
func (p *TracePath) LastAnswered() int {
	last := 0
	for _, h := range p.Hops {
		if h.TTL > 0 && h.Addr.IsValid() && h.TTL > last {
			last = h.TTL
		}
	}
	return last
}

// Answers say who answered a probe and how.
const (
	AnswerRoute        = "route"         // hop 0: the kernel's routing decision, no packet
	AnswerTimeExceeded = "time-exceeded" // a router on the way
	AnswerDestination  = "destination"   // the destination itself (SYN-ACK, RST, echo reply, port unreachable)
	AnswerUnreachable  = "unreachable"   // a device refused it with ICMP destination unreachable
)

// TraceHop is one TTL of a path.
type TraceHop struct {
	TTL int `json:"ttl"`
	// Addr is who answered; empty when nothing did. Hop 0: the next hop
	// the kernel chose (the gateway, or the destination on-link).
	Addr  netip.Addr `json:"addr"`
	RTTms float64    `json:"rtt_ms"` // the fastest answer
	// Iface is, for hop 0, the interface the kernel sends the probes by;
	// for the others, the interface their answer came in on.
	Iface    string `json:"iface"`
	Answer   string `json:"answer,omitempty"` // Answer* constant; "" when nothing answered
	Code     int    `json:"icmp_code,omitempty"`
	Sent     int    `json:"sent"`
	Answered int    `json:"answered"`
	// Others are other addresses that answered the same TTL (per-packet
	// balancing, or a path that changed while probing).
	Others []netip.Addr `json:"others,omitempty"`
	// NAT says the header the answer quotes differs from what was sent: a
	// translator before this hop rewrote it.
	NAT string `json:"nat,omitempty"`
}

// ProbeTTL decodes the TTL a trace's probe was sent with from its IP ID:
// the high byte is the run's base (TracePath.IDBase), the low byte the TTL
// shifted left by two and the probe's index. ok is false for an IP ID that
// is not one of the run's.
func ProbeTTL(base int, id uint16) (ttl int, ok bool) {
	if int(id>>8) != base {
		return 0, false
	}
	ttl = int(id&0xff) >> 2
	return ttl, ttl > 0
}

// ArrivedHops is how many hops the path's probes took to reach the
// destination, from what the destination saw arrive: a probe sent with TTL
// s that arrives with TTL l crossed s-l routers, so it arrived at hop
// s-l+1. 0 when none of the run's probes arrived.
func (p *TracePath) ArrivedHops() int {
	best := 0
	for _, a := range p.Arrived {
		if a.Port != 0 && p.Tuple.Src.Port() != 0 && a.Port != p.Tuple.Src.Port() {
			continue
		}
		if s, ok := ProbeTTL(p.IDBase, a.ID); ok && s >= a.TTL {
			if n := s - a.TTL + 1; best == 0 || n < best {
				best = n
			}
		}
	}
	return best
}

// TraceArrival is one probe the destination saw arrive: its IP ID and the
// TTL left, from which the sender counts the hops it took.
type TraceArrival struct {
	ID    uint16 `json:"ip_id"`
	TTL   int    `json:"ttl_left"`
	Port  uint16 `json:"src_port"` // the sender's port: it may have probed from a fresh one
	Iface string `json:"iface"`
}

// TracePeer is the far end's run of `asym trace`.
type TracePeer struct {
	Command []string      `json:"command"`
	Role    Role          `json:"role,omitempty"`
	Target  string        `json:"target,omitempty"`
	Trace   *Trace        `json:"trace,omitempty"`   // nil on failure
	Failure *PeerFailure  `json:"failure,omitempty"` // nil on success
	Stderr  []string      `json:"stderr,omitempty"`
	Elapsed time.Duration `json:"elapsed_ns"`
}

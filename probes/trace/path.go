package trace

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"

	"github.com/vishvananda/netlink"
)

// Request is one direction for this host to trace: the request from the
// client, or the reply from the server.
type Request struct {
	Flow      flow.Flow // as the client sent it
	Direction string    // evidence.TraceRequest (this host is the client) or evidence.TraceReply (the server)
	// Options bound the run (MaxHops, Wait, ...); Path sets the tuple, the
	// shape and the interface.
	Options Options
	NoSend  bool // plan only: say what would be sent
	// DestHeld says a socket holds the tuple at the destination (its end
	// said so): a request-shaped probe reaching it would be taken as a new
	// connection by that socket (a SYN on a SYN_SENT socket is a
	// simultaneous open), so those probes stop below it.
	DestHeld bool
	// DestHops is how far the destination is, when known (the other
	// direction's probes arrived there, or reached it); 0: unknown.
	DestHops int
}

// Shape is the probes' shape for a flow's direction: the flow's first
// packet for the request, the answer to it for the reply.
func Shape(p flow.Proto, direction string) evidence.TraceShape {
	reply := direction == evidence.TraceReply
	switch {
	case p == flow.TCP && reply:
		return evidence.ShapeSYNACK
	case p == flow.TCP:
		return evidence.ShapeSYN
	case p == flow.UDP:
		return evidence.ShapeUDP
	case reply:
		return evidence.ShapeReply
	}
	return evidence.ShapeEcho
}

// requestShape is the shape a new connection in the same direction has:
// what a stateful device lets pass without state.
func requestShape(s evidence.TraceShape) (evidence.TraceShape, bool) {
	switch s {
	case evidence.ShapeSYNACK:
		return evidence.ShapeSYN, true
	case evidence.ShapeReply:
		return evidence.ShapeEcho, true
	}
	return s, false
}

// Prepared is a direction ready to be traced: the tuple its probes carry,
// what holds it here, hop 0, and how far the probes may go. Path is what
// is known so far (Unavailable when nothing can be sent).
type Prepared struct {
	Path evidence.TracePath
	req  Request
	opts Options
	hop0 evidence.RouteDecision
}

// Prepare decides everything a trace needs before a probe is sent. It
// checks what holds the tuple here (a connection's tuple is never used: a
// fresh client port is, and the path says so), asks the kernel where it
// sends the tuple (hop 0; the probes leave by that interface) and decides
// how far the probes may go.
func Prepare(ctx context.Context, t *probes.Target, r Request) Prepared {
	tuple := r.Flow
	if r.Direction == evidence.TraceReply {
		tuple = r.Flow.Reverse()
	}
	p := Prepared{req: r, Path: evidence.TracePath{Direction: r.Direction, Tuple: tuple, Shape: Shape(r.Flow.Proto, r.Direction), Prefixes: prefixes(t)}}
	path := &p.Path
	if !tuple.Src.Addr().Is4() {
		path.Unavailable = "asym trace sends IPv4 probes only (IPv6 has no IP ID to tell its probes apart by)"
		return p
	}
	hop0, err := t.RouteGet(ctx, routeQuery(tuple))
	if err != nil {
		path.Unavailable = "the kernel's routing decision could not be read: " + err.Error()
		return p
	}
	p.hop0 = hop0
	path.Hops = []evidence.TraceHop{decisionHop(hop0)}
	path.Notes = append(path.Notes, "hop 0: $ "+t.IPCmd(routeQuery(tuple).Words()...)+" → "+hop0.Text)
	if hop0.Failed() || hop0.Refused() {
		path.Unavailable = "the kernel does not send this tuple anywhere (" + hop0.Text + "): there is no path to trace"
		return p
	}
	h := held(ctx, t, tuple)
	path.Held = h.what
	if h.live {
		path.Tuple, path.Notes = keepOffConnection(ctx, t, *path, h, hop0)
		if path.Tuple == tuple {
			path.Unavailable = "the flow's tuple belongs to a live connection here (" + h.what + ") and no free client port takes the flow's next hop: asym does not send probes that would land in that connection"
			return p
		}
	} else if h.what != "" {
		path.HeldBySocket = h.socket
		path.Notes = append(path.Notes, "the tuple is held here by "+h.what+", not by an established connection: the probes carry the flow's own tuple")
	}
	p.opts = r.Options
	p.opts.Tuple, p.opts.Shape, p.opts.Dev = path.Tuple, path.Shape, hop0.Dev
	if capped, why := capBeforeDestination(path.Shape); capped {
		p.opts.StopAtSilence = true
		path.Notes = append(path.Notes, why)
	}
	if r.NoSend {
		path.Plan = plan(p.opts.withDefaults(), hop0)
	}
	return p
}

// Send sends what Prepare decided (nothing with NoSend, or when the path
// is unavailable). Where reply-shaped probes stop early, request-shaped
// probes with the same tuple (the control) go one hop further.
func (p Prepared) Send(ctx context.Context, t *probes.Target) evidence.TracePath {
	start := time.Now()
	path := p.Path
	if path.Unavailable != "" || p.req.NoSend {
		return path
	}
	run := Run(ctx, t, p.opts)
	path.Traced, path.Reached, path.Stopped, path.Sent, path.IDBase = run.Traced, run.Reached, run.Stopped, run.Sent, run.IDBase
	path.Unavailable = run.Unavailable
	path.Hops = append(path.Hops, run.Hops...)
	if run.Traced && !run.Reached {
		path.Control, path.Notes = control(ctx, t, p.req, path, p.opts)
	}
	path.Elapsed = time.Since(start)
	return path
}

// Path prepares one direction and traces it.
func Path(ctx context.Context, t *probes.Target, r Request) evidence.TracePath {
	return Prepare(ctx, t, r).Send(ctx, t)
}

// keepOffConnection picks a fresh client port when the flow's tuple is a
// live connection's, and says what that costs.
func keepOffConnection(ctx context.Context, t *probes.Target, path evidence.TracePath, h holding, hop0 evidence.RouteDecision) (flow.Flow, []string) {
	clientIsSrc := path.Direction == evidence.TraceRequest
	fresh, ok := freshTuple(ctx, t, path.Tuple, clientIsSrc, hop0)
	if !ok {
		return path.Tuple, path.Notes
	}
	port := func(f flow.Flow) uint16 {
		if clientIsSrc {
			return f.Src.Port()
		}
		return f.Dst.Port()
	}
	note := fmt.Sprintf("the flow's tuple belongs to a live connection here (%s): the probes use client port %d instead of %d, "+
		"which this host's kernel also sends via %s (asked with the ports, so its own multipath hash agrees); routers after it that hash ports may send the fresh port another way than the flow",
		h.what, port(fresh), port(path.Tuple), hopText(hop0))
	return fresh, append(path.Notes, note)
}

// capBeforeDestination says whether a probe that reaches the destination
// could disturb a service there, and so whether the trace must stop before
// it. The destination's own kernel answers a TCP SYN (SYN-ACK or RST: the
// handshake never completes, because this host resets the answer, so no
// application sees it), a SYN-ACK (RST, or a challenge ACK on a live
// connection), and an echo request; a UDP datagram is data for whatever
// listens on the port. asym cannot know how far the destination is before
// it answers, so a UDP trace stops at the first hop no router answers: at
// most one TTL's probes, as many datagrams as the flow's own retries, can
// reach the service.
func capBeforeDestination(s evidence.TraceShape) (bool, string) {
	if s != evidence.ShapeUDP {
		return false, ""
	}
	return true, "capped: a UDP probe that reaches the destination is read by the service on its port, so the trace stops at the first hop no router answers (at most one TTL's probes can reach it)"
}

// control sends request-shaped probes one TTL past the last hop that
// answered the reply-shaped ones: a stateful device without state for the
// flow drops a SYN-ACK but lets a SYN with the same tuple pass (and ECMP
// hashes both alike). It stops below a destination that holds a socket for
// the tuple, which would take the SYN as a simultaneous open.
func control(ctx context.Context, t *probes.Target, r Request, path evidence.TracePath, o Options) (*evidence.TracePath, []string) {
	shape, ok := requestShape(path.Shape)
	if !ok {
		return nil, path.Notes
	}
	ttl := path.LastAnswered() + 1
	if ttl > o.withDefaults().MaxHops {
		return nil, path.Notes
	}
	if r.DestHeld && (r.DestHops == 0 || ttl >= r.DestHops) {
		return nil, append(path.Notes, fmt.Sprintf("no request-shaped probe sent at TTL %d: a socket at the destination holds the tuple and TTL %d may reach it (a SYN there is a simultaneous open on the flow's own socket)", ttl, ttl))
	}
	// Its own IP ID base: a late answer to the reply-shaped probes of the
	// same TTL must not count as the control's.
	o.Shape, o.FirstTTL, o.MaxHops, o.GapLimit, o.IDBase = shape, ttl, ttl, 1, path.IDBase%255+1
	c := Run(ctx, t, o)
	c.Direction, c.Tuple = path.Direction, path.Tuple
	return &c, path.Notes
}

// decisionHop is hop 0: where the kernel sends the tuple.
func decisionHop(d evidence.RouteDecision) evidence.TraceHop {
	return evidence.TraceHop{TTL: 0, Addr: d.NextHop(), Iface: d.Dev, Answer: evidence.AnswerRoute}
}

func hopText(d evidence.RouteDecision) string {
	if d.Gateway.IsValid() {
		return d.Gateway.String() + " dev " + d.Dev
	}
	return "dev " + d.Dev
}

// routeQuery is `ip route get` for the probes' tuple, ports included: the
// kernel hashes them (multipath) and rules may select on them.
func routeQuery(tuple flow.Flow) evidence.RouteQuery {
	q := evidence.RouteQuery{Dst: tuple.Dst.Addr(), Src: tuple.Src.Addr(), Proto: uint8(tuple.Proto)}
	if tuple.Proto.HasPorts() {
		q.Sport, q.Dport = tuple.Src.Port(), tuple.Dst.Port()
	}
	return q
}

// prefixes are this host's own IPv4 subnets: a hop on one of them is on a
// link of this host.
func prefixes(t *probes.Target) []netip.Prefix {
	addrs, err := t.Netlink().AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.IPNet == nil || ip.IsLoopback() {
			continue
		}
		bits, _ := a.Mask.Size()
		out = append(out, netip.PrefixFrom(ip.Unmap(), bits).Masked())
	}
	return out
}

func netipPort(ap netip.AddrPort, p uint16) netip.AddrPort { return netip.AddrPortFrom(ap.Addr(), p) }

// plan says what Run would send, for --no-send.
func plan(o Options, hop0 evidence.RouteDecision) []string {
	t := o.Tuple
	lines := []string{
		fmt.Sprintf("%s probes %s, leaving by %s (hop 0: %s)", o.Shape, t.Arrow(), o.Dev, hop0.Text),
		fmt.Sprintf("TTL %d to %d, %d probes per TTL, one every %s (at most %d probes), each TTL waiting up to %s for answers",
			o.FirstTTL, o.MaxHops, o.PerTTL, o.Interval, (o.MaxHops-o.FirstTTL+1)*o.PerTTL, o.Wait),
		fmt.Sprintf("stops when the destination answers, after %d silent TTLs in a row, or after %s in all", o.GapLimit, o.Budget),
		"each probe is told apart by its IP ID (and for TCP its sequence number): fields no ECMP hash reads",
	}
	if o.StopAtSilence {
		lines = append(lines, "capped: stops at the first TTL no router answers")
	}
	if s, ok := requestShape(o.Shape); ok {
		lines = append(lines, fmt.Sprintf("if the %s probes stop answering before the destination: %d %s probes with the same tuple, one TTL further", o.Shape, o.PerTTL, s))
	}
	return lines
}

package session

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/peer"
	"asym/probes/trace"
)

// TraceOptions say what a trace may send: asym trace's flags, and what a
// peer run of it is told by the asym that started it.
type TraceOptions struct {
	Probes trace.Options // MaxHops, Wait: the rest are the defaults
	NoSend bool
	// Peer traces the other direction on the far end (needs Config.Peer).
	Peer    bool
	Version string // this asym's, for the output
	// ObserveBase makes this end, as the peer of another asym, listen for
	// that asym's probes (whose IP IDs have this high byte) until Until is
	// closed, before it traces its own direction; -1: it does not.
	// Observing is called once it listens.
	ObserveBase int
	Observing   func()
	Until       <-chan struct{}
	// DestHeld and DestHops are what the other end knows as the
	// destination of this end's trace (trace.Request).
	DestHeld bool
	DestHops int
}

// observeMax bounds how long this end listens for the other end's probes
// when nothing tells it they are sent: longer than any trace.
const observeMax = 2 * trace.DefaultBudget

// readyTimeout bounds how long this end waits for the peer to listen
// before it sends anyway (the peer then sees fewer probes arrive).
const readyTimeout = 15 * time.Second

// Trace traces the flow hop by hop: from this end, the direction that
// leaves it (the request from the client, the reply from the server); with
// the peer, the other direction from the other end, the request first. The
// far end listens while the request's probes travel, so that the request's
// length is known even when its answers never come back. It returns the
// trace judged (where the paths part, which device has no state) and its
// findings.
func (s *Session) Trace(ctx context.Context, f flow.Flow, o TraceOptions) (evidence.Trace, []playbook.Finding, error) {
	c := s.collector(f)
	h, ok := c.Run(ctx, evidence.ProbeHost).(*evidence.HostView)
	if !ok || !h.OK() {
		return evidence.Trace{}, nil, fmt.Errorf("asym cannot read this host's addresses in %s, so it cannot tell which end of the flow it is on", s.t)
	}
	role, form, note := traceEnd(ctx, c, h, f)
	if role == evidence.RoleMiddle {
		return evidence.Trace{}, nil, fmt.Errorf("asym trace sends from an end of the flow, and %s holds neither %s nor %s: run it on the client or the server (both with --peer)", s.t, f.Src.Addr(), f.Dst.Addr())
	}
	tr := evidence.Trace{Format: evidence.TraceFormat, Version: o.Version, Time: time.Now().UTC(), Flow: f, Role: role, Target: s.info.Target}
	if note != "" {
		tr.Notes = append(tr.Notes, note)
	}
	withPeer := o.Peer && s.cfg.Peer != nil
	switch {
	case !withPeer:
		s.traceAlone(ctx, c, &tr, form, role, o)
	case role == evidence.RoleClient:
		s.traceFromClient(ctx, c, &tr, form, o)
	default:
		s.traceFromServer(ctx, c, &tr, form, o)
	}
	return tr, playbook.JudgeTrace(&tr), nil
}

// traceEnd says which end of the flow this host is, and the form of the
// flow its packets carry here: the flow itself, or as NAT translates it
// (a server behind a DNAT holds the translated address, not the one the
// client sent to).
func traceEnd(ctx context.Context, c *probes.Collector, h *evidence.HostView, f flow.Flow) (evidence.Role, flow.Flow, string) {
	if h.Role != evidence.RoleMiddle {
		return h.Role, f, ""
	}
	c.Run(ctx, evidence.ProbeFirewall)
	c.Run(ctx, evidence.ProbeConntrack)
	ev := c.Evidence()
	for _, g := range ev.Forms() {
		switch {
		case h.Owner(g.Src.Addr()) != nil:
			return evidence.RoleClient, g, "traced as NAT translates the flow on this host: " + g.Arrow()
		case h.Owner(g.Dst.Addr()) != nil:
			return evidence.RoleServer, g, "traced as NAT translates the flow on this host: " + g.Arrow()
		}
	}
	return evidence.RoleMiddle, f, ""
}

func direction(role evidence.Role) (here, there string) {
	if role == evidence.RoleServer {
		return evidence.TraceReply, evidence.TraceRequest
	}
	return evidence.TraceRequest, evidence.TraceReply
}

// traceAlone traces this end's direction; the other is this host's own
// decision for it, unless this end is another asym's peer: then it first
// listens for that asym's probes.
func (s *Session) traceAlone(ctx context.Context, c *probes.Collector, tr *evidence.Trace, f flow.Flow, role evidence.Role, o TraceOptions) {
	here, there := direction(role)
	other := tr.Path(there)
	*other = s.decisionOnly(ctx, c, there)
	if o.ObserveBase >= 0 {
		arrived, err := s.observe(ctx, f, o)
		other.IDBase, other.Arrived = o.ObserveBase, arrived
		if err != nil {
			other.Notes = append(other.Notes, "the other end's probes could not be observed here: "+err.Error())
		}
		if n := other.ArrivedHops(); n > 0 && o.DestHops == 0 {
			o.DestHops = n
		}
	}
	p := trace.Path(ctx, s.t, trace.Request{Flow: f, Direction: here, Options: o.Probes, NoSend: o.NoSend, DestHeld: o.DestHeld, DestHops: o.DestHops})
	p.From = playbook.SideHere
	*tr.Path(here) = p
}

// observe listens for the other end's probes until it says it has sent
// them (or ctx ends).
func (s *Session) observe(ctx context.Context, f flow.Flow, o TraceOptions) ([]evidence.TraceArrival, error) {
	obs, err := trace.Observe(ctx, s.t, f)
	if o.Observing != nil {
		o.Observing() // also when it failed: the other end must not wait for nothing
	}
	if err != nil {
		return nil, err
	}
	select {
	case <-o.Until:
	case <-ctx.Done():
	case <-time.After(observeMax):
	}
	return obs.Stop(), nil
}

// traceFromClient traces the request here while the server listens, then
// has the server trace the reply.
func (s *Session) traceFromClient(ctx context.Context, c *probes.Collector, tr *evidence.Trace, f flow.Flow, o TraceOptions) {
	o.Probes.IDBase = randomBase()
	prep := trace.Prepare(ctx, s.t, trace.Request{Flow: f, Direction: evidence.TraceRequest, Options: o.Probes, NoSend: o.NoSend})
	asked := prep.Path.Tuple // the flow, or with a fresh client port
	args := peer.TraceArgs{MaxHops: o.Probes.MaxHops, Wait: o.Probes.Wait, NoSend: o.NoSend, ObserveBase: -1, DestHeld: prep.Path.HeldBySocket}
	sending := !o.NoSend && prep.Path.Unavailable == ""
	if sending {
		args.ObserveBase = o.Probes.IDBase
	}
	run := peer.StartTrace(ctx, s.tracePeerOptions(asked), args)
	if sending {
		select {
		case <-run.Ready():
		case <-ctx.Done():
		case <-time.After(readyTimeout):
		}
	}
	fwd := prep.Send(ctx, s.t)
	run.Release()
	fwd.From = playbook.SideHere
	res := run.Wait()
	tr.Forward = fwd
	if res.Trace == nil {
		tr.Reverse = s.decisionOnly(ctx, c, evidence.TraceReply)
		tr.Peer = peerRun(res)
		return
	}
	tr.Forward.Arrived = res.Trace.Forward.Arrived
	tr.Reverse = res.Trace.Reverse
	tr.Reverse.From = playbook.SidePeer
	tr.Notes = append(tr.Notes, peerNotes(res.Trace)...)
	tr.Peer = peerRun(res)
}

// peerRun is the peer's run as the joined trace keeps it: its paths are in
// the trace already, the rest would repeat them.
func peerRun(res evidence.TracePeer) *evidence.TracePeer {
	p := res
	if res.Trace != nil {
		p.Role, p.Target, p.Trace = res.Trace.Role, res.Trace.Target, nil
	}
	return &p
}

// traceFromServer has the client trace the request while this end
// listens for its probes, then traces the reply here.
func (s *Session) traceFromServer(ctx context.Context, c *probes.Collector, tr *evidence.Trace, f flow.Flow, o TraceOptions) {
	obs, obsErr := trace.Observe(ctx, s.t, f)
	run := peer.StartTrace(ctx, s.tracePeerOptions(f), peer.TraceArgs{MaxHops: o.Probes.MaxHops, Wait: o.Probes.Wait, NoSend: o.NoSend, ObserveBase: -1})
	res := run.Wait()
	var arrived []evidence.TraceArrival
	if obsErr == nil {
		arrived = obs.Stop()
	}
	req := trace.Request{Flow: f, Direction: evidence.TraceReply, Options: o.Probes, NoSend: o.NoSend}
	if res.Trace != nil {
		tr.Forward = res.Trace.Forward
		tr.Forward.From = playbook.SidePeer
		tr.Forward.Arrived = arrived
		// The client may have probed from a fresh port: the reply is
		// traced to that one.
		req.Flow, req.DestHeld = withClientPort(f, tr.Forward.Tuple.Src.Port()), tr.Forward.HeldBySocket
		req.DestHops = tr.Forward.ArrivedHops()
		if req.DestHops == 0 && tr.Forward.Reached {
			req.DestHops = tr.Forward.LastAnswered()
		}
		tr.Notes = append(tr.Notes, peerNotes(res.Trace)...)
		tr.Peer = peerRun(res)
	} else {
		tr.Peer = peerRun(res)
		tr.Forward = s.decisionOnly(ctx, c, evidence.TraceRequest)
	}
	rev := trace.Path(ctx, s.t, req)
	rev.From = playbook.SideHere
	tr.Reverse = rev
}

// tracePeerOptions are the far end's options for a trace: its time limit
// covers both directions' runs (the far end listens while this end traces,
// then traces), on top of --peer-timeout.
func (s *Session) tracePeerOptions(f flow.Flow) peer.Options {
	o := s.peerOptions(f, 0)
	o.Timeout += 2 * trace.DefaultBudget
	return o
}

// decisionOnly is the direction this end does not send: the kernel's
// decision for it here (the reply as it comes back to the client, the
// request as it arrives at the server), with a note that it was not
// traced.
func (s *Session) decisionOnly(ctx context.Context, c *probes.Collector, dir string) evidence.TracePath {
	id := evidence.ProbeReply
	if dir == evidence.TraceRequest {
		id = evidence.ProbeRequest
	}
	f := c.Flow
	p := evidence.TracePath{Direction: dir, Tuple: f, Shape: trace.Shape(f.Proto, dir)}
	if dir == evidence.TraceReply {
		p.Tuple = f.Reverse()
	}
	pv, ok := c.Run(ctx, id).(*evidence.PathView)
	if ok && pv.OK() {
		p.Hops = []evidence.TraceHop{decisionHop(pv)}
		p.Notes = append(p.Notes, "$ "+pv.Command)
		p.Notes = append(p.Notes, pv.Lines...)
	}
	p.Notes = append(p.Notes, "not traced: this is this host's own decision for the "+dir+" only (asym trace --peer traces it from the other end)")
	return p
}

// decisionHop is a route decision as hop 0: where the packet arrives (an
// input lookup) or leaves, and its next hop unless it is delivered here.
func decisionHop(pv *evidence.PathView) evidence.TraceHop {
	h := evidence.TraceHop{Iface: pv.Egress, Answer: evidence.AnswerRoute}
	if pv.Input() {
		h.Iface = pv.Ingress
	}
	if !pv.Decision.Failed() && !pv.Decision.Local() {
		h.Addr = pv.Decision.NextHop()
	}
	return h
}

// peerNotes are the peer's own notes, marked as its.
func peerNotes(t *evidence.Trace) []string {
	var out []string
	for _, n := range t.Notes {
		out = append(out, "peer: "+n)
	}
	return out
}

func withClientPort(f flow.Flow, port uint16) flow.Flow {
	if port != 0 {
		f.Src = netip.AddrPortFrom(f.Src.Addr(), port)
	}
	return f
}

// randomBase picks the IP ID base of this end's probes (1 to 255), told to
// the far end so it can count the hops of what arrives there.
func randomBase() int {
	var b [1]byte
	rand.Read(b[:])
	return int(b[0])%255 + 1
}

// TraceFlow is the view's trace (t): the defaults, both ends when there is
// a peer.
func (s *Session) TraceFlow(ctx context.Context, f flow.Flow) (evidence.Trace, []playbook.Finding, error) {
	o := TraceOptions{Peer: s.cfg.Peer != nil, ObserveBase: -1}
	if s.cfg.Peer != nil {
		o.Version = s.cfg.Peer.LocalVersion
	}
	return s.Trace(ctx, f, o)
}

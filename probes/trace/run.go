// Package trace sends the flow's own packets with growing TTLs and reads
// who answers: a traceroute that keeps the flow's whole tuple (so every
// ECMP hash on the way sends the probes where it sends the flow), in the
// shape of the request or of the reply (a SYN-ACK is what a stateful device
// without state drops), over raw sockets opened in the target namespace.
//
// It sends packets, so it runs only when a person asks (asym trace, or the
// view's key after a question), few and slowly: per TTL three probes,
// twenty a second at most, a bounded total time, and never with the tuple
// of a connection established on the host (Path checks the socket table and
// conntrack first).
package trace

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Defaults: what asym trace sends when not told otherwise.
const (
	DefaultMaxHops  = 30
	DefaultPerTTL   = 3
	DefaultInterval = 50 * time.Millisecond // 20 probes a second
	DefaultWait     = time.Second
	DefaultGapLimit = 3
	DefaultBudget   = 30 * time.Second
)

// Options say what one run sends and how much.
type Options struct {
	Tuple flow.Flow // the probes' tuple, in the direction they travel: Src is this host's
	Shape evidence.TraceShape
	// Dev is where the kernel sends the tuple (hop 0): the probes leave by
	// it. Empty lets the raw socket's own route lookup choose.
	Dev      string
	FirstTTL int // 1 when 0
	MaxHops  int // the last TTL sent; DefaultMaxHops when 0, at most 63
	PerTTL   int // probes per TTL; DefaultPerTTL when 0, at most 4
	// Interval spaces two probes (the rate); Wait is how long answers to a
	// TTL's probes may take after its last one.
	Interval, Wait time.Duration
	GapLimit       int           // stop after this many TTLs in a row that nothing answered
	Budget         time.Duration // the whole run; DefaultBudget when 0
	// StopAtSilence stops at the first TTL that no router answers: a probe
	// one TTL further could reach a destination whose service would read it.
	StopAtSilence bool
	// IDBase is the high byte of the probes' IP IDs: 1 to 255 to choose it
	// (the far end is told it, to count the hops of what arrives there), 0
	// for a random one.
	IDBase int
}

func (o Options) withDefaults() Options {
	if o.FirstTTL <= 0 {
		o.FirstTTL = 1
	}
	if o.MaxHops <= 0 {
		o.MaxHops = DefaultMaxHops
	}
	o.MaxHops = min(o.MaxHops, maxTTL)
	if o.PerTTL <= 0 {
		o.PerTTL = DefaultPerTTL
	}
	o.PerTTL = min(o.PerTTL, maxPerTTL)
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Wait <= 0 {
		o.Wait = DefaultWait
	}
	if o.GapLimit <= 0 {
		o.GapLimit = DefaultGapLimit
	}
	if o.Budget <= 0 {
		o.Budget = DefaultBudget
	}
	return o
}

// sentProbe is one probe and what answered it.
type sentProbe struct {
	spec    packetSpec
	at      time.Time
	answers []answer
}

// prober holds one run's probes.
type prober struct {
	tuple   flow.Flow
	shape   evidence.TraceShape
	base    uint8  // the IP IDs' high byte
	seqBase uint32 // TCP numbers are seqBase + the IP ID
	sent    map[uint16]*sentProbe
	order   []uint16 // IP IDs in the order sent
}

func newProber(o Options) *prober {
	var b [5]byte
	rand.Read(b[:])
	if o.IDBase > 0 && o.IDBase < 256 {
		b[0] = uint8(o.IDBase)
	}
	return &prober{tuple: o.Tuple, shape: o.Shape, base: b[0], seqBase: binary.BigEndian.Uint32(b[1:]) &^ 0xffff, sent: map[uint16]*sentProbe{}}
}

func (p *prober) proto() uint8 {
	switch p.shape {
	case evidence.ShapeSYN, evidence.ShapeSYNACK:
		return 6
	case evidence.ShapeUDP:
		return 17
	}
	return 1
}

// record files an answer under its probe; false when it answers none.
func (p *prober) record(a answer) bool {
	id := a.id
	switch {
	case id == 0 && a.seq != 0:
		n := a.seq - p.seqBase
		if n > 0xffff {
			return false
		}
		id = uint16(n)
	case id == 0 && len(p.order) > 0:
		// A service's answer names no probe: the latest one reached it.
		id = p.order[len(p.order)-1]
	}
	sp, ok := p.sent[id]
	if !ok {
		return false
	}
	sp.answers = append(sp.answers, a)
	return true
}

// Run sends the probes and reads their answers. Hops from FirstTTL on are
// filled in; hop 0 and the notes are the caller's (Path). It never fails:
// what kept it from sending is the path's Unavailable.
func Run(ctx context.Context, t *probes.Target, o Options) evidence.TracePath {
	o = o.withDefaults()
	start := time.Now()
	path := evidence.TracePath{Tuple: o.Tuple, Shape: o.Shape}
	pr := newProber(o)
	path.IDBase = int(pr.base)
	if !o.Tuple.Src.Addr().Is4() {
		path.Unavailable = "asym trace sends IPv4 probes only (IPv6 has no IP ID to tell its probes apart by)"
		return path
	}
	ctx, cancel := context.WithTimeout(ctx, o.Budget)
	defer cancel()
	snd, err := openSender(ctx, t, o.Dev)
	if err != nil {
		path.Unavailable = err.Error()
		return path
	}
	defer snd.close()
	rctx, stopReading := context.WithCancel(ctx)
	defer stopReading()
	in := make(chan packet, 256)
	filters := map[int][]bpf.Instruction{unix.IPPROTO_ICMP: icmpFilter(pr.proto(), pr.base, icmpEchoID(o.Tuple))}
	switch pr.proto() {
	case 6:
		filters[unix.IPPROTO_TCP] = tupleFilter(o.Tuple.Dst, o.Tuple.Src)
	case 17:
		filters[unix.IPPROTO_UDP] = tupleFilter(o.Tuple.Dst, o.Tuple.Src)
	}
	for proto, f := range filters {
		r, err := openReceiver(ctx, t, proto, f)
		if err != nil {
			path.Unavailable = err.Error()
			return path
		}
		defer r.close()
		go r.run(rctx, in)
	}
	path.Stopped = pr.loop(ctx, snd, in, o)
	stopReading()
	path.Sent = len(pr.order)
	path.Hops, path.Reached = pr.hops(t)
	path.Traced = true
	path.Elapsed = time.Since(start)
	return path
}

// loop sends TTL after TTL and says why it stopped.
func (pr *prober) loop(ctx context.Context, snd *sender, in <-chan packet, o Options) string {
	next := time.Now()
	silent := 0
	for ttl := o.FirstTTL; ttl <= o.MaxHops; ttl++ {
		for i := range o.PerTTL {
			if !pr.drain(ctx, in, next, nil) {
				return "the time limit ended it"
			}
			spec := packetSpec{tuple: o.Tuple, shape: o.Shape, ttl: ttl, id: probeID(pr.base, ttl, i)}
			spec.seq = pr.seqBase + uint32(spec.id)
			pr.sent[spec.id] = &sentProbe{spec: spec, at: time.Now()}
			pr.order = append(pr.order, spec.id)
			if err := snd.send(build(spec), o.Tuple.Dst.Addr()); err != nil {
				return fmt.Sprintf("sending failed at TTL %d: %v", ttl, err)
			}
			next = time.Now().Add(o.Interval)
		}
		if !pr.drain(ctx, in, time.Now().Add(o.Wait), func() bool { return pr.allAnswered(ttl, o.PerTTL) }) {
			return "the time limit ended it"
		}
		seen := pr.answeredTTL(ttl)
		switch {
		case pr.reached():
			return "the destination answered"
		case seen[evidence.AnswerUnreachable]:
			return fmt.Sprintf("hop %d refused the probes (ICMP unreachable)", ttl)
		case len(seen) == 0:
			silent++
		default:
			silent = 0
		}
		switch {
		case silent >= o.GapLimit:
			return fmt.Sprintf("nothing answered %d hops in a row", silent)
		case o.StopAtSilence && !seen[evidence.AnswerTimeExceeded]:
			return fmt.Sprintf("capped: no router answered hop %d, which may be the destination", ttl)
		}
	}
	return fmt.Sprintf("max hops (%d) reached", o.MaxHops)
}

// drain files answers until the deadline, or until done says enough; false
// when ctx ended first.
func (pr *prober) drain(ctx context.Context, in <-chan packet, until time.Time, done func() bool) bool {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	for {
		if done != nil && done() {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case p := <-in:
			if a, ok := parseAnswer(p.b, pr); ok {
				a.at, a.ifidx = p.at, p.ifidx
				pr.record(a)
			}
		}
	}
}

func (pr *prober) allAnswered(ttl, per int) bool {
	for i := range per {
		if sp := pr.sent[probeID(pr.base, ttl, i)]; sp == nil || len(sp.answers) == 0 {
			return false
		}
	}
	return true
}

// answeredTTL says which kinds of answer a TTL's probes got.
func (pr *prober) answeredTTL(ttl int) map[string]bool {
	seen := map[string]bool{}
	for i := range maxPerTTL {
		if sp := pr.sent[probeID(pr.base, ttl, i)]; sp != nil {
			for _, a := range sp.answers {
				seen[a.kind] = true
			}
		}
	}
	return seen
}

func (pr *prober) reached() bool {
	for _, sp := range pr.sent {
		for _, a := range sp.answers {
			if a.kind == evidence.AnswerDestination {
				return true
			}
		}
	}
	return false
}

// hops turns the probes and their answers into one hop per TTL sent.
func (pr *prober) hops(t *probes.Target) ([]evidence.TraceHop, bool) {
	byTTL := map[int][]*sentProbe{}
	var ttls []int
	for _, id := range pr.order {
		sp := pr.sent[id]
		if _, ok := byTTL[sp.spec.ttl]; !ok {
			ttls = append(ttls, sp.spec.ttl)
		}
		byTTL[sp.spec.ttl] = append(byTTL[sp.spec.ttl], sp)
	}
	slices.Sort(ttls)
	var out []evidence.TraceHop
	reached := false
	for _, ttl := range ttls {
		h := hopOf(ttl, byTTL[ttl], t)
		out = append(out, h)
		if h.Answer == evidence.AnswerDestination {
			reached = true
			break // probes past the destination answer from it again
		}
	}
	return out, reached
}

// hopOf summarises one TTL: the address most answers came from, the
// fastest answer, and a rewritten header if one was quoted.
func hopOf(ttl int, sps []*sentProbe, t *probes.Target) evidence.TraceHop {
	h := evidence.TraceHop{TTL: ttl, Sent: len(sps)}
	count := map[netip.Addr]int{}
	var best *answer
	var bestRTT time.Duration
	for _, sp := range sps {
		if len(sp.answers) > 0 {
			h.Answered++
		}
		for i := range sp.answers {
			a := &sp.answers[i]
			count[a.from]++
			if rtt := a.at.Sub(sp.at); better(a, rtt, best, bestRTT) {
				best, bestRTT = a, rtt
			}
			if h.NAT == "" {
				h.NAT = natSeen(sp.spec, a)
			}
		}
	}
	if best == nil {
		return h
	}
	h.Addr, h.Answer, h.Code = best.from, best.kind, best.code
	h.RTTms = float64(bestRTT.Microseconds()) / 1000
	if best.ifidx > 0 {
		h.Iface = t.IfName(best.ifidx)
	}
	for a := range count {
		if a != h.Addr {
			h.Others = append(h.Others, a)
		}
	}
	slices.SortFunc(h.Others, netip.Addr.Compare)
	return h
}

// better says whether answer a (after rtt) describes a hop better than
// best: the destination's own answer wins over anything else, then the
// fastest.
func better(a *answer, rtt time.Duration, best *answer, bestRTT time.Duration) bool {
	if best == nil {
		return true
	}
	aDst, bestDst := a.kind == evidence.AnswerDestination, best.kind == evidence.AnswerDestination
	if aDst != bestDst {
		return aDst
	}
	return rtt < bestRTT
}

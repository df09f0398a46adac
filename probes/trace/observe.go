package trace

import (
	"context"
	"errors"
	"sync"

	"asym/evidence"
	"asym/flow"
	"asym/probes"

	"golang.org/x/sys/unix"
)

// maxArrivals bounds what an observer keeps: a trace sends at most 63 TTLs
// of 4 probes.
const maxArrivals = 512

// Observer listens, at the destination, for the probes the other end sends
// with the flow's tuple: the TTL they arrive with tells how many hops they
// took, even when the destination's answers never make it back (a reply
// path that drops them is the point of asym).
type Observer struct {
	r      *receiver
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	got    []evidence.TraceArrival
}

// Observe starts listening for packets of tuple (as they travel: Src is
// the other end) arriving in the target, until Stop. The other end's port
// is not part of the filter: that end may probe from a fresh port when its
// own is taken by a live connection, and says which.
func Observe(ctx context.Context, t *probes.Target, tuple flow.Flow) (*Observer, error) {
	if !tuple.Proto.HasPorts() || !tuple.Src.Addr().Is4() {
		return nil, errors.New("asym observes arriving probes of IPv4 TCP and UDP flows only")
	}
	proto := unix.IPPROTO_TCP
	if tuple.Proto == flow.UDP {
		proto = unix.IPPROTO_UDP
	}
	r, err := openReceiver(ctx, t, proto, arrivalFilter(tuple.Src.Addr(), tuple.Dst))
	if err != nil {
		return nil, err
	}
	octx, cancel := context.WithCancel(context.Background())
	o := &Observer{r: r, cancel: cancel, done: make(chan struct{})}
	in := make(chan packet, 64)
	go r.run(octx, in)
	go func() {
		defer close(o.done)
		for {
			select {
			case <-octx.Done():
				return
			case p := <-in:
				o.add(t, p)
			}
		}
	}()
	return o, nil
}

func (o *Observer) add(t *probes.Target, p packet) {
	q, _, ok := parseIPv4(p.b)
	if !ok {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) < maxArrivals {
		o.got = append(o.got, evidence.TraceArrival{ID: q.id, TTL: q.ttl, Port: q.src.Port(), Iface: t.IfName(p.ifidx)})
	}
}

// Stop ends the listening and returns what arrived.
func (o *Observer) Stop() []evidence.TraceArrival {
	o.cancel()
	<-o.done
	o.r.close()
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got
}

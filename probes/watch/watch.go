package probes

// The live watch: counters sampled every interval and the flow's conntrack
// events, batched into at most one update per interval (STYLE.md point 7).

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"asym/evidence"
	"asym/flow"
	"asym/probes/ctentry"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// WatchOptions tune Watch; the zero value is fine.
type WatchOptions struct {
	Interval  time.Duration // sample period, default 1s, at least 100ms
	MaxEvents int           // per batch cap, default 256; beyond it count Dropped
}

const (
	watchDefaultInterval = time.Second
	watchMinInterval     = 100 * time.Millisecond
	watchDefaultMax      = 256
	// watchRediscover is how often the ruleset is listed again to find
	// rules added since; a vanished rule or chain (a reload renumbers
	// handles) triggers it sooner, but not more than once per watchRetry.
	watchRediscover = 30 * time.Second
	watchRetry      = 5 * time.Second
	// watchMaxErrs bounds the distinct errors merged into one batch that
	// nobody reads.
	watchMaxErrs = 4
)

// watchRcvBuf is the event socket's receive buffer. The kernel doubles it
// for bookkeeping, and an event takes 1,280 bytes of it: 8 MiB holds some
// 13,000 events, a quarter of a second of a firewall creating 50,000
// entries a second, enough to ride out a pause of the reader. Root gets it
// whatever net.core.rmem_max says (SO_RCVBUFFORCE). A variable so that
// tests can force overruns.
var watchRcvBuf = 8 << 20

// watchCounterKeys are the ProbeCounters keys a sample keeps.
var watchCounterKeys = []string{
	"TcpExt:IPReversePathFilter",
	"TcpExt:TCPSynRetrans",
	"Tcp:RetransSegs",
	"nf_conntrack:invalid",
	"rt_cache:in_martian_src",
}

// Watch samples the counters every Interval and listens to conntrack events
// for the flow (both directions, and the flow's reverse and NAT'd forms, as
// ProbeConntrack matches them; a flow without ports matches on addresses and
// protocol), delivering at most one WatchUpdate per Interval on the returned
// channel until ctx ends; then it closes the channel, after every goroutine
// it started has returned. It never blocks on a slow consumer: while the
// channel is full, updates are merged (events appended up to MaxEvents,
// Dropped counted, the newest sample kept).
//
// The event socket is open when Watch returns, so events from then on are
// seen. t must stay open until the channel is closed.
func Watch(ctx context.Context, t *Target, f flow.Flow, opt WatchOptions) <-chan evidence.WatchUpdate {
	iv := opt.Interval
	if iv <= 0 {
		iv = watchDefaultInterval
	}
	iv = max(iv, watchMinInterval)
	maxEv := opt.MaxEvents
	if maxEv <= 0 {
		maxEv = watchDefaultMax
	}
	// One batch waits in the channel; later ones merge behind it, so a
	// consumer that comes back gets the newest sample on its second read.
	out := make(chan evidence.WatchUpdate, 1)
	b := &watchBatch{max: maxEv}
	if t == nil {
		b.fail(errors.New("live watch: no namespace to watch"))
		b.flush(out)
		close(out)
		return out
	}

	var wg sync.WaitGroup
	ev, err := openCtWatch(t, f, b)
	if err != nil {
		b.fail(err)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev.run()
		}()
	}

	s := &watchSampler{t: t, fw: &fwWatch{t: t, fd: -1}}
	stopFw := context.AfterFunc(ctx, s.fw.interrupt)
	reqs := make(chan struct{}, 1)
	done := make(chan struct{}, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-reqs:
			}
			smp, errs := s.sample(ctx)
			if ctx.Err() != nil {
				return
			}
			b.setSample(smp)
			for _, e := range errs {
				b.fail(e)
			}
			done <- struct{}{} // one request at a time: never blocks
		}
	}()

	go func() {
		defer close(out)
		tick := time.NewTicker(iv)
		defer tick.Stop()
		// A batch leaves when its sample is in, or half an interval after
		// the tick if the sample is late (a stuck /proc read must not hold
		// the events back): one flush per tick.
		due := time.NewTimer(iv / 2)
		defer due.Stop()
		flush := func() {
			if ev != nil {
				ev.collectDrops()
			}
			b.flush(out)
		}
		reqs <- struct{}{} // the first sample at once: a baseline for rates
		sampling, armed := true, true
		for {
			select {
			case <-ctx.Done():
				if ev != nil {
					ev.close() // unblocks the reader
				}
				wg.Wait()
				stopFw()
				s.fw.close()
				return
			case <-tick.C:
				armed = true
				due.Reset(iv / 2)
				if !sampling {
					sampling = true
					reqs <- struct{}{}
				}
			case <-done:
				sampling = false
				if armed {
					armed = false
					flush()
				}
			case <-due.C:
				if armed {
					armed = false
					flush()
				}
			}
		}
	}()
	return out
}

// watchError is an error as a sentence for the person, keeping the kernel's
// error for errors.Is.
type watchError struct {
	what, why string
	err       error
}

func (e *watchError) Error() string { return e.what + ": " + e.why }
func (e *watchError) Unwrap() error { return e.err }

// watchFail classifies err (needs root, module missing…) under a heading
// that says which part of the watch stopped.
func watchFail(what string, err error) error {
	_, why := evidence.Classify(err)
	return &watchError{what: what, why: why, err: err}
}

// watchBatch is the update being assembled. The event reader and the
// sampler add to it; the delivery loop hands it over when the channel has
// room and otherwise leaves it to grow, within max events.
type watchBatch struct {
	mu   sync.Mutex
	max  int
	u    evidence.WatchUpdate
	errs []string
}

func (b *watchBatch) event(e evidence.CtEvent) {
	b.mu.Lock()
	if len(b.u.Events) < b.max {
		b.u.Events = append(b.u.Events, e)
	} else {
		b.u.Dropped++
	}
	b.mu.Unlock()
}

func (b *watchBatch) dropped(n int) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.u.Dropped += n
	b.mu.Unlock()
}

func (b *watchBatch) setSample(s *evidence.Sample) {
	if s == nil {
		return
	}
	b.mu.Lock()
	b.u.Sample = s // the newest wins: rates over a longer span are still right
	b.mu.Unlock()
}

// fail adds an error; the same sentence twice, or more than watchMaxErrs
// distinct ones, are kept once, so a batch nobody reads stays small.
func (b *watchBatch) fail(err error) {
	if err == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	msg := err.Error()
	for _, m := range b.errs {
		if m == msg {
			return
		}
	}
	if len(b.errs) >= watchMaxErrs {
		return
	}
	b.errs = append(b.errs, msg)
	if b.u.Err == nil {
		b.u.Err = err // a single error keeps its own type for errors.As
	} else {
		b.u.Err = errors.Join(b.u.Err, err)
	}
}

// flush hands the batch over if there is one and the channel has room.
func (b *watchBatch) flush(out chan<- evidence.WatchUpdate) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.u.Sample == nil && len(b.u.Events) == 0 && b.u.Dropped == 0 && b.u.Err == nil {
		return false
	}
	select {
	case out <- b.u:
		b.u, b.errs = evidence.WatchUpdate{}, nil
		return true
	default:
		return false
	}
}

// The conntrack event stream.
//
// Events come from a netlink socket of our own rather than from
// conntrack.Conn.Listen (ti-mo/conntrack v0.6.0), for three reasons found in
// its conn.go and checked here:
//   - its worker stops for good on the first ENOBUFS (it sends the error
//     and returns) and Listen cannot be called again on the Conn: after a
//     burst of 3,000 entries into a small buffer, the next 100 events never
//     arrived. Recovering would need a new socket, discarding everything
//     still queued in the old one;
//   - it hides the socket, so the kernel's exact drop count (SO_MEMINFO)
//     and NETLINK_NO_ENOBUFS are out of reach: an overrun could count as 1;
//   - it decodes every event of every flow (a Flow, its attributes, a
//     channel send; about 3µs and 56 allocations) before we could look at
//     the tuple.
// Here the tuples are compared in the receive buffer itself, without
// allocating, and only the flow's events are decoded, with the library's
// own Event.Unmarshal, and flattened with ctentry.Flatten, as the conntrack probe does.

// ctnetlink attribute numbers (include/uapi/linux/netfilter/nfnetlink_conntrack.h);
// x/sys/unix does not define them.
const (
	ctaTupleOrig     = 1 // CTA_TUPLE_ORIG
	ctaTupleReply    = 2 // CTA_TUPLE_REPLY
	ctaTupleIP       = 1 // CTA_TUPLE_IP
	ctaTupleProto    = 2 // CTA_TUPLE_PROTO
	ctaIPv4Src       = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst       = 2 // CTA_IP_V4_DST
	ctaIPv6Src       = 3 // CTA_IP_V6_SRC
	ctaIPv6Dst       = 4 // CTA_IP_V6_DST
	ctaProtoNum      = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort  = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDstPort  = 3 // CTA_PROTO_DST_PORT
	ipctnlMsgCtNew   = 0 // IPCTNL_MSG_CT_NEW (NEW and UPDATE events)
	ipctnlMsgCtDel   = 2 // IPCTNL_MSG_CT_DELETE (DESTROY events)
	nlaTypeMask      = 0x3fff
	nlmsgHdrLen      = unix.SizeofNlMsghdr
	nfgenmsgLen      = 4
	ctWatchReadBytes = 64 << 10 // an event is well under a page (ctnetlink_nlmsg_size)
)

// ctHit says which of an entry's tuples the watched flow matched, and how.
type ctHit uint8

const (
	ctNoHit       ctHit = iota
	ctHitOrig           // the original tuple is the flow
	ctHitReply          // the reply tuple is the flow
	ctHitReplyRev       // the reply tuple is the flow reversed: the flow goes the original way, seen after NAT
	ctHitOrigRev        // the original tuple is the flow reversed: the flow is the reply, seen before NAT
)

// ctMatcher compares raw ctnetlink event messages with the watched flow.
type ctMatcher struct {
	family       uint8  // AF_INET or AF_INET6, as in nfgenmsg
	proto        uint8  // IPPROTO_*
	src, dst     []byte // the flow's addresses, 4 or 16 bytes, network order
	sport, dport uint16 // 0 matches any port: a flow given without ports
}

func newCtMatcher(f flow.Flow) (*ctMatcher, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return nil, fmt.Errorf("the flow %q needs a source and a destination of the same IP version", f)
	}
	m := &ctMatcher{proto: uint8(f.Proto), family: unix.AF_INET6}
	if src.Is4() {
		m.family = unix.AF_INET
	}
	m.src, m.dst = src.AsSlice(), dst.AsSlice()
	if ctentry.HasPorts(f.Proto) {
		m.sport, m.dport = f.Src.Port(), f.Dst.Port()
	}
	return m, nil
}

// ctRawTuple points into a message: no copies.
type ctRawTuple struct {
	src, dst     []byte
	proto        uint8
	sport, dport uint16
}

// nlAttr splits the first netlink attribute off b. Headers are host-endian
// (struct nlattr); the nested and byte-order flags are masked off the type.
func nlAttr(b []byte) (typ uint16, val, rest []byte, ok bool) {
	if len(b) < unix.SizeofNlAttr {
		return 0, nil, nil, false
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < unix.SizeofNlAttr || l > len(b) {
		return 0, nil, nil, false
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	val = b[unix.SizeofNlAttr:l]
	next := min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b))
	return typ, val, b[next:], true
}

// ctParseTuple reads CTA_TUPLE_IP and CTA_TUPLE_PROTO. Ports are
// big-endian (__be16). ICMP tuples have no ports and read as 0.
func ctParseTuple(b []byte) (t ctRawTuple, ok bool) {
	for len(b) > 0 {
		typ, val, rest, good := nlAttr(b)
		if !good {
			return t, false
		}
		b = rest
		switch typ {
		case ctaTupleIP:
			for len(val) > 0 {
				at, av, ar, good := nlAttr(val)
				if !good {
					return t, false
				}
				val = ar
				switch at {
				case ctaIPv4Src, ctaIPv6Src:
					t.src = av
				case ctaIPv4Dst, ctaIPv6Dst:
					t.dst = av
				}
			}
		case ctaTupleProto:
			for len(val) > 0 {
				at, av, ar, good := nlAttr(val)
				if !good {
					return t, false
				}
				val = ar
				switch {
				case at == ctaProtoNum && len(av) >= 1:
					t.proto = av[0]
				case at == ctaProtoSrcPort && len(av) >= 2:
					t.sport = binary.BigEndian.Uint16(av)
				case at == ctaProtoDstPort && len(av) >= 2:
					t.dport = binary.BigEndian.Uint16(av)
				}
			}
		}
	}
	return t, t.src != nil && t.dst != nil
}

// is reports whether tuple t is the flow (rev: the flow reversed).
func (m *ctMatcher) is(t *ctRawTuple, rev bool) bool {
	src, dst, sp, dp := m.src, m.dst, m.sport, m.dport
	if rev {
		src, dst, sp, dp = dst, src, dp, sp
	}
	return t.proto == m.proto && bytes.Equal(t.src, src) && bytes.Equal(t.dst, dst) &&
		(sp == 0 || t.sport == sp) && (dp == 0 || t.dport == dp)
}

// match decides whether one ctnetlink message (header included) is about
// the flow. It runs for every event in the namespace, so it only walks the
// attributes up to the two tuples and compares bytes in place: no
// allocation, no decoding of what does not match.
func (m *ctMatcher) match(msg []byte) ctHit {
	if len(msg) < nlmsgHdrLen+nfgenmsgLen || msg[nlmsgHdrLen] != m.family {
		return ctNoHit
	}
	var orig, reply ctRawTuple
	var haveOrig, haveReply bool
	b := msg[nlmsgHdrLen+nfgenmsgLen:]
	// ctnetlink puts both tuples first (ctnetlink_conntrack_event), so the
	// walk stops after two attributes.
	for len(b) > 0 && !(haveOrig && haveReply) {
		typ, val, rest, ok := nlAttr(b)
		if !ok {
			break
		}
		b = rest
		switch typ {
		case ctaTupleOrig:
			orig, haveOrig = ctParseTuple(val)
		case ctaTupleReply:
			reply, haveReply = ctParseTuple(val)
		}
	}
	// The order is ctentry.Flatten's, so both name the direction alike.
	switch {
	case haveOrig && m.is(&orig, false):
		return ctHitOrig
	case haveReply && m.is(&reply, false):
		return ctHitReply
	case haveReply && m.is(&reply, true):
		return ctHitReplyRev
	case haveOrig && m.is(&orig, true):
		return ctHitOrigRev
	}
	return ctNoHit
}

// ctWatch reads conntrack events in the target namespace.
type ctWatch struct {
	f     flow.Flow
	m     *ctMatcher
	c     *netlink.Conn
	rc    syscall.RawConn
	batch *watchBatch
	// exact is set when the kernel's drop count can be read (SO_MEMINFO);
	// then ENOBUFS is switched off and drops are counted from it.
	exact     bool
	lastDrops uint32
	closeOnce sync.Once
}

// openCtWatch opens the event socket: NETLINK_NETFILTER in the target
// namespace, joined to the NEW, UPDATE and DESTROY groups.
func openCtWatch(t *Target, f flow.Flow, b *watchBatch) (*ctWatch, error) {
	const what = "conntrack events are unavailable"
	m, err := newCtMatcher(f)
	if err != nil {
		return nil, &watchError{what: what, why: err.Error(), err: err}
	}
	cfg := &netlink.Config{}
	if t.Kind != "host" {
		// Entering even our own namespace needs CAP_SYS_ADMIN; for the
		// host's, the socket is simply made where we are.
		cfg.NetNS = int(t.NS())
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, watchFail(what, fmt.Errorf("open a conntrack netlink socket in %s: %w", t, err))
	}
	w := &ctWatch{f: f, m: m, c: c, batch: b}
	fail := func(err error) (*ctWatch, error) {
		c.Close()
		return nil, watchFail(what, err)
	}
	if w.rc, err = c.SyscallConn(); err != nil {
		return fail(fmt.Errorf("reach the conntrack netlink socket: %w", err))
	}
	// Best effort: without it the stream works with the default buffer
	// and overruns sooner, which Dropped then shows.
	_ = c.SetReadBuffer(watchRcvBuf)
	if d, err := w.drops(); err == nil {
		// With the exact count, ENOBUFS has nothing more to say, and
		// switching it off matters: after an overrun the kernel marks the
		// socket congested and drops every event until the queue is empty
		// (netlink_overrun, netlink_rcv_wake), whereas with NO_ENOBUFS it
		// drops only while the buffer is actually full.
		if err := c.SetOption(netlink.NoENOBUFS, true); err == nil {
			w.exact, w.lastDrops = true, d
		}
	}
	for _, g := range []uint32{unix.NFNLGRP_CONNTRACK_NEW, unix.NFNLGRP_CONNTRACK_UPDATE, unix.NFNLGRP_CONNTRACK_DESTROY} {
		if err := c.JoinGroup(g); err != nil {
			return fail(fmt.Errorf("join conntrack event group %d in %s: %w", g, t, err))
		}
	}
	return w, nil
}

// drops reads the socket's drop counter (SK_MEMINFO_DROPS: netlink_overrun
// counts every event the full buffer refused). x/sys/unix has no getter
// for SO_MEMINFO's u32 array, hence the raw getsockopt.
func (w *ctWatch) drops() (uint32, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err := w.rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(mem))
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err == nil {
		err = serr
	}
	return mem[unix.SK_MEMINFO_DROPS], err
}

// collectDrops adds the kernel's drops since the last call to the batch.
func (w *ctWatch) collectDrops() {
	if !w.exact {
		return
	}
	d, err := w.drops()
	if err != nil {
		return // closed under us at the end
	}
	w.batch.dropped(int(d - w.lastDrops)) // u32 arithmetic survives the wrap
	w.lastDrops = d
}

func (w *ctWatch) close() { w.closeOnce.Do(func() { w.c.Close() }) }

// run receives until the socket is closed. One read is one datagram, and a
// multicast datagram holds one event; the loop still walks every message
// in case a kernel batches them.
func (w *ctWatch) run() {
	buf := make([]byte, ctWatchReadBytes)
	var n int
	var rerr error
	// Built once: a closure made per read would escape to the heap.
	read := func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	}
	for {
		if err := w.rc.Read(read); err != nil {
			return // the socket was closed: the watch is ending
		}
		switch {
		case rerr == unix.EINTR:
			continue
		case rerr == unix.ENOBUFS:
			// Only without the exact count: the kernel says it dropped
			// something, not how much.
			w.batch.dropped(1)
			continue
		case rerr != nil:
			w.batch.fail(watchFail("conntrack events stopped", fmt.Errorf("read conntrack events: %w", rerr)))
			return
		}
		for b := buf[:n]; len(b) >= nlmsgHdrLen; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < nlmsgHdrLen || l > len(b) {
				// Cut short: it would not fit the buffer. Count it lost.
				w.batch.dropped(1)
				break
			}
			w.handle(b[:l])
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		}
	}
}

// handle filters one message and, for the flow, decodes and renders it.
func (w *ctWatch) handle(msg []byte) {
	typ := binary.NativeEndian.Uint16(msg[4:])
	if typ>>8 != unix.NFNL_SUBSYS_CTNETLINK || (typ&0xff != ipctnlMsgCtNew && typ&0xff != ipctnlMsgCtDel) {
		return
	}
	hit := w.m.match(msg)
	if hit == ctNoHit {
		return
	}
	now := time.Now()
	nm := netlink.Message{
		Header: netlink.Header{
			Length:   binary.NativeEndian.Uint32(msg),
			Type:     netlink.HeaderType(typ),
			Flags:    netlink.HeaderFlags(binary.NativeEndian.Uint16(msg[6:])),
			Sequence: binary.NativeEndian.Uint32(msg[8:]),
			PID:      binary.NativeEndian.Uint32(msg[12:]),
		},
		// The buffer is reused for the next read; the decoded flow may
		// keep slices of it.
		Data: bytes.Clone(msg[nlmsgHdrLen:]),
	}
	e, ok := ctDecode(nm, now, hit)
	if !ok {
		// One event that cannot be read is lost, not the stream.
		w.batch.dropped(1)
		return
	}
	w.batch.event(e)
}

// ctDecode decodes and flattens one event of the flow. A panic in the
// decoder on data it did not expect must not take the program down with
// it: the deferred recover costs nothing on the path of other flows.
func ctDecode(nm netlink.Message, now time.Time, hit ctHit) (e evidence.CtEvent, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	var ev conntrack.Event
	if err := ev.Unmarshal(nm); err != nil || ev.Flow == nil {
		return evidence.CtEvent{}, false
	}
	return ctWatchEvent(now, ev, hit), true
}

// ctWatchEvent flattens a decoded event of the flow with ctentry.Flatten. It hands
// Flatten the tuple that matched, taken from the event itself, so that a
// flow given without ports still gets its direction named.
func ctWatchEvent(now time.Time, ev conntrack.Event, hit ctHit) evidence.CtEvent {
	fl := *ev.Flow
	tuple := func(t conntrack.Tuple) flow.Flow {
		return flow.Flow{
			Proto: flow.Proto(t.Proto.Protocol),
			Src:   ctentry.AddrPort(t.IP.SourceAddress, t.Proto.SourcePort),
			Dst:   ctentry.AddrPort(t.IP.DestinationAddress, t.Proto.DestinationPort),
		}
	}
	var q flow.Flow
	switch hit {
	case ctHitReply:
		q = tuple(fl.TupleReply)
	case ctHitReplyRev:
		q = tuple(fl.TupleReply).Reverse()
	case ctHitOrigRev:
		q = tuple(fl.TupleOrig).Reverse()
	default:
		q = tuple(fl.TupleOrig)
	}
	e, _ := ctentry.Flatten(q, q, fl)
	typ := "UPDATE"
	switch ev.Type {
	case conntrack.EventNew:
		typ = "NEW"
	case conntrack.EventDestroy:
		typ = "DESTROY"
	}
	// Events carry no reference count (ctnetlink_conntrack_event sends no
	// CTA_USE), so conntrack -E prints no use=.
	e.Text = "[" + typ + "] " + strings.TrimSuffix(e.Text, " use=0")
	return evidence.CtEvent{Time: now, Type: evidence.CtEventType(typ), Entry: e}
}

// The counters.

// watchSampler takes samples; it runs on one goroutine at a time.
type watchSampler struct {
	t       *Target
	fw      *fwWatch
	lastErr [2]string // counters, rules: report a failure once, not every interval
}

// sample reads the counters and the watched rules' counters. Errors come
// back only when they differ from the last ones.
func (s *watchSampler) sample(ctx context.Context) (*evidence.Sample, []error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	defer cancel()
	smp := &evidence.Sample{Time: time.Now(), Counters: map[string]uint64{}}
	var errs []error
	note := func(i int, what string, err error) {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if msg != s.lastErr[i] && err != nil {
			errs = append(errs, watchFail(what, err))
		}
		s.lastErr[i] = msg
	}

	c := ProbeCounters(ctx, s.t)
	var cerr error
	if !c.OK() {
		cerr = errors.New(c.Reason)
	}
	for _, k := range watchCounterKeys {
		if v, ok := c.Values[k]; ok {
			smp.Counters[k] = v
		}
	}
	note(0, "kernel counters are unavailable", cerr)
	if ctx.Err() != nil {
		return smp, errs
	}
	note(1, "firewall rule counters are unavailable", s.fw.read(ctx, smp.Counters))
	return smp, errs
}

// fwWatch follows the packet counters of the ct-invalid and reverse-path
// rules ProbeFirewall finds: it lists the ruleset once (and again now and
// then), and every interval re-reads only the chains that hold those rules.
type fwWatch struct {
	t      *Target
	fd     int // a duplicate of the namespace fd, for the nftables socket; -1 when none
	conn   *nftables.Conn
	chains []fwWatchChain
	listed time.Time // last ProbeFirewall
	stale  bool      // a watched rule or chain is gone: list again

	mu     sync.Mutex // guards conn against interrupt
	closed bool
}

type fwWatchChain struct {
	family       nftables.TableFamily
	table, chain string
	keys         map[uint64]string // rule handle -> counter key
}

// watchRuleKey names a rule's counter in Sample.Counters.
func watchRuleKey(r evidence.FirewallRule) string {
	return fmt.Sprintf("rule:%s #%d", r.Where(), r.Handle)
}

// fwFamilyByName inverts fwFamilyName.
func fwFamilyByName(name string) (nftables.TableFamily, bool) {
	for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4, nftables.TableFamilyIPv6,
		nftables.TableFamilyBridge, nftables.TableFamilyNetdev, nftables.TableFamilyARP} {
		if fwFamilyName(f) == name {
			return f, true
		}
	}
	return 0, false
}

// discover lists the ruleset with ProbeFirewall and keeps the nftables
// rules that have a counter.
func (w *fwWatch) discover(ctx context.Context) error {
	v := ProbeFirewall(ctx, w.t)
	w.listed, w.stale = time.Now(), false
	var chains []fwWatchChain
	at := map[string]int{}
	for _, r := range v.Rules {
		if r.Source == fwSourceLegacy || !r.HasCounter {
			continue
		}
		fam, ok := fwFamilyByName(r.Family)
		if !ok {
			continue
		}
		i, ok := at[r.Where()]
		if !ok {
			i = len(chains)
			at[r.Where()] = i
			chains = append(chains, fwWatchChain{family: fam, table: r.Table, chain: r.Chain, keys: map[uint64]string{}})
		}
		chains[i].keys[r.Handle] = watchRuleKey(r)
	}
	w.chains = chains
	if !v.OK() {
		w.stale = true // try again after watchRetry, not watchRediscover
		if len(v.Rules) == 0 {
			return errors.New(v.Reason)
		}
	}
	return nil
}

// open makes the lasting nftables socket, once.
func (w *fwWatch) open() (*nftables.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, context.Canceled
	}
	if w.conn != nil {
		return w.conn, nil
	}
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if w.t.Kind != "host" {
		// A duplicate, as listNftBounded does: the library dials again with
		// it if the lasting socket was closed, and it must never be a
		// number the caller's Close has freed for something else.
		fd, err := unix.FcntlInt(uintptr(w.t.NS()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicate the namespace descriptor of %s: %w", w.t, err)
		}
		w.fd = fd
		opts = append(opts, nftables.WithNetNSFd(fd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fwNftErr("open nftables", err)
	}
	w.conn = c
	return c, nil
}

// read adds the watched rules' packet counters to into. Listing the
// ruleset again happens at most every watchRediscover, or watchRetry after
// a watched rule vanished.
func (w *fwWatch) read(ctx context.Context, into map[string]uint64) error {
	var derr error
	since := time.Since(w.listed)
	if w.listed.IsZero() || since >= watchRediscover || (w.stale && since >= watchRetry) {
		derr = w.discover(ctx)
	}
	if len(w.chains) == 0 || ctx.Err() != nil {
		return derr
	}
	c, err := w.open()
	if err != nil {
		return err
	}
	for _, ch := range w.chains {
		if ctx.Err() != nil {
			return nil
		}
		tb := &nftables.Table{Name: ch.table, Family: ch.family}
		rules, err := c.GetRules(tb, &nftables.Chain{Name: ch.chain, Table: tb})
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				w.stale = true // the chain went away (a reload): list again soon
				continue
			}
			return fwNftErr(fmt.Sprintf("list the rules of chain %s %s %s", fwFamilyName(ch.family), ch.table, ch.chain), err)
		}
		seen := 0
		var named map[string]*expr.Counter
		for _, r := range rules {
			key, ok := ch.keys[r.Handle]
			if !ok {
				continue
			}
			seen++
			// The same recognition as ProbeFirewall, so the counter is the
			// one that counts what the match selected; sets are read only
			// for `ct state { … }` and vmap rules.
			sc := scanFirewallRule(ch.family, r.Exprs, func(name string) (fwSet, bool) {
				s, err := readFwSet(c, tb, name)
				return s, err == nil
			})
			switch {
			case sc.counter != nil:
				into[key] = sc.counter.Packets
			case sc.counterName != "":
				if named == nil {
					named = readFwCounters(c, tb)
				}
				if ctr, ok := named[sc.counterName]; ok {
					into[key] = ctr.Packets
				}
			}
		}
		if seen < len(ch.keys) {
			w.stale = true // handles change when a ruleset is reloaded
		}
	}
	return derr
}

// interrupt closes the nftables socket under a read that the kernel does
// not answer; it runs when the watch's context ends.
func (w *fwWatch) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.conn != nil {
		w.conn.CloseLasting()
	}
}

// close releases what open made, once the sampler has returned.
func (w *fwWatch) close() {
	w.interrupt()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

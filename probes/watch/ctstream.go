package watch

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
// allocating (ctmatch.go), and only the flow's events are decoded, with the
// library's own Event.Unmarshal, and flattened with ctentry.Flatten, as
// the conntrack probe does (ctevent.go).

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"unsafe"

	"asym/flow"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// ctReadBytes is one read: an event is well under a page
// (ctnetlink_nlmsg_size).
const ctReadBytes = 64 << 10

// eventRcvBuf is the event socket's receive buffer. The kernel doubles it
// for bookkeeping, and an event takes 1,280 bytes of it: 8 MiB holds some
// 13,000 events, a quarter of a second of a firewall creating 50,000
// entries a second, enough to ride out a pause of the reader. Root gets it
// whatever net.core.rmem_max says (SO_RCVBUFFORCE). A variable so that
// tests can force overruns.
var eventRcvBuf = 8 << 20

// ctStream reads conntrack events in the watched namespace.
type ctStream struct {
	f     flow.Flow
	m     *ctMatcher
	c     *netlink.Conn
	rc    syscall.RawConn
	batch *batch
	// exact is set when the kernel's drop count can be read (SO_MEMINFO);
	// then ENOBUFS is switched off and drops are counted from it.
	exact     bool
	lastDrops uint32
	closeOnce sync.Once
}

// openCtStream opens the event socket: NETLINK_NETFILTER in the namespace,
// joined to the NEW, UPDATE and DESTROY groups.
func openCtStream(ns Namespace, f flow.Flow, b *batch) (*ctStream, error) {
	const what = "conntrack events are unavailable"
	m, err := newCtMatcher(f)
	if err != nil {
		return nil, &partError{what: what, why: err.Error(), err: err}
	}
	cfg := &netlink.Config{}
	if !ns.IsHost() {
		cfg.NetNS = int(ns.NS())
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, cfg)
	if err != nil {
		return nil, partFailed(what, fmt.Errorf("open a conntrack netlink socket in %s: %w", ns, err))
	}
	s := &ctStream{f: f, m: m, c: c, batch: b}
	if err := s.setUp(ns); err != nil {
		c.Close()
		return nil, partFailed(what, err)
	}
	return s, nil
}

// setUp sizes the socket, switches to exact drop counts when it can, and
// joins the event groups.
func (s *ctStream) setUp(ns Namespace) error {
	var err error
	if s.rc, err = s.c.SyscallConn(); err != nil {
		return fmt.Errorf("reach the conntrack netlink socket: %w", err)
	}
	// Best effort: without it the stream works with the default buffer
	// and overruns sooner, which Dropped then shows.
	_ = s.c.SetReadBuffer(eventRcvBuf)
	if d, err := s.drops(); err == nil {
		// With the exact count, ENOBUFS has nothing more to say, and
		// switching it off matters: after an overrun the kernel marks the
		// socket congested and drops every event until the queue is empty
		// (netlink_overrun, netlink_rcv_wake), whereas with NO_ENOBUFS it
		// drops only while the buffer is actually full.
		if err := s.c.SetOption(netlink.NoENOBUFS, true); err == nil {
			s.exact, s.lastDrops = true, d
		}
	}
	for _, g := range []uint32{unix.NFNLGRP_CONNTRACK_NEW, unix.NFNLGRP_CONNTRACK_UPDATE, unix.NFNLGRP_CONNTRACK_DESTROY} {
		if err := s.c.JoinGroup(g); err != nil {
			return fmt.Errorf("join conntrack event group %d in %s: %w", g, ns, err)
		}
	}
	return nil
}

// drops reads the socket's drop counter (SK_MEMINFO_DROPS: netlink_overrun
// counts every event the full buffer refused). x/sys/unix has no getter
// for SO_MEMINFO's u32 array, hence the raw getsockopt.
func (s *ctStream) drops() (uint32, error) {
	var mem [unix.SK_MEMINFO_VARS]uint32
	var serr error
	err := s.rc.Control(func(fd uintptr) {
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
func (s *ctStream) collectDrops() {
	if !s.exact {
		return
	}
	d, err := s.drops()
	if err != nil {
		return // closed under us at the end
	}
	s.batch.dropped(int(d - s.lastDrops)) // u32 arithmetic survives the wrap
	s.lastDrops = d
}

func (s *ctStream) close() { s.closeOnce.Do(func() { s.c.Close() }) }

// run receives until the socket is closed. One read is one datagram, and a
// multicast datagram holds one event; the loop still walks every message
// in case a kernel batches them.
func (s *ctStream) run() {
	buf := make([]byte, ctReadBytes)
	var n int
	var rerr error
	// Built once: a closure made per read would escape to the heap.
	read := func(fd uintptr) bool {
		n, rerr = unix.Read(int(fd), buf)
		return rerr != unix.EAGAIN
	}
	for {
		if err := s.rc.Read(read); err != nil {
			return // the socket was closed: the watch is ending
		}
		switch {
		case rerr == unix.EINTR:
		case rerr == unix.ENOBUFS:
			// Only without the exact count: the kernel says it dropped
			// something, not how much.
			s.batch.dropped(1)
		case rerr != nil:
			s.batch.fail(partFailed("conntrack events stopped", fmt.Errorf("read conntrack events: %w", rerr)))
			return
		default:
			s.messages(buf[:n])
		}
	}
}

// messages hands every netlink message of one datagram to handle.
func (s *ctStream) messages(b []byte) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			// Cut short: it would not fit the buffer. Count it lost.
			s.batch.dropped(1)
			return
		}
		s.handle(b[:l])
		b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
	}
}

// handle filters one message and, for the flow, decodes it into the batch.
func (s *ctStream) handle(msg []byte) {
	typ := binary.NativeEndian.Uint16(msg[4:])
	if typ>>8 != unix.NFNL_SUBSYS_CTNETLINK || (typ&0xff != ipctnlMsgCtNew && typ&0xff != ipctnlMsgCtDel) {
		return
	}
	hit := s.m.match(msg)
	if hit == ctNoHit {
		return
	}
	e, ok := ctDecode(msg, hit)
	if !ok {
		// One event that cannot be read is lost, not the stream.
		s.batch.dropped(1)
		return
	}
	s.batch.event(e)
}

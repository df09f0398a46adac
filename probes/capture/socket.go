package capture

// The socket: one raw AF_PACKET socket in the target namespace that sees
// every interface, the read loop, batching and the kernel's drop count.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"asym/evidence"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// readBytes is what one read takes: more than the snap, in case a kernel
// ignored it.
const readBytes = 2048

// rcvBuf is the socket's receive buffer. A queued packet costs its
// whole buffer (truesize, 1-2 KiB for a clone of a full-size frame) even
// though only snapLen bytes are read: 4 MiB holds some 2,000 of them,
// a good second of a busy flow between two reads. Root gets it whatever
// net.core.rmem_max says (SO_RCVBUFFORCE). A variable so that tests can
// force the kernel to drop.
var rcvBuf = 4 << 20

// capturer owns the packet socket; only its run goroutine touches it after
// openSocket.
type capturer struct {
	ns    Namespace
	file  *os.File // the socket, in the runtime's poller: deadlines wake the read
	rc    syscall.RawConn
	forms []flowMatch // the typed flow first, then its other forms
	max   int
	names map[int]string         // ifindex -> name in the target, including failures
	u     evidence.CaptureUpdate // the batch being assembled
}

// openSocket makes the socket. Only socket(2) runs inside the target
// namespace: a socket belongs to the namespace it was created in for life
// (sock_net), so binding to ifindex 0 covers the target's interfaces, not
// ours, and the thread that entered the namespace is discarded by InNS.
func openSocket(ns Namespace, prog []bpf.RawInstruction) (*capturer, error) {
	fd := -1
	// Not the caller's ctx: if it ended while fn ran, InNS would return
	// and the descriptor fn made would leak. socket(2) does not block.
	err := ns.InNS(context.Background(), func() error {
		// Protocol 0: the socket receives nothing until bind, so no packet
		// slips into its queue before the filter is attached (packet(7)).
		// SOCK_RAW keeps the link-layer header: an outgoing frame's
		// destination MAC says which next hop the kernel chose (a gateway,
		// or the neighbour itself), which no route lookup afterwards proves.
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("create a packet socket in %s: %w", ns, err)
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	closeFail := func(err error) (*capturer, error) {
		unix.Close(fd)
		return nil, err
	}
	filter := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}); err != nil {
		return closeFail(fmt.Errorf("attach the flow's filter to the packet socket in %s: %w", ns, err))
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBuf) != nil {
		// Not root in the socket's user namespace: take what rmem_max allows.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBuf)
	}
	// Best effort: without it the time is when we read the packet.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	// Where the network header starts in each frame (tp_net): the link
	// header's length depends on the link (Ethernet, a tunnel without one,
	// a VLAN tag in the data), and only the kernel knows it for sure.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return closeFail(fmt.Errorf("ask the packet socket in %s for header offsets: %w", ns, err))
	}
	// ETH_P_ALL, not ETH_P_IP: the kernel hands copies of outgoing packets
	// (dev_queue_xmit_nit) only to ETH_P_ALL taps, and the reply's way out
	// is the point. Ifindex 0: every interface of the namespace.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return closeFail(fmt.Errorf("bind the packet socket to every interface of %s: %w", ns, err))
	}
	file := os.NewFile(uintptr(fd), "packet socket")
	// A non-blocking descriptor goes into the runtime's poller; deadlines
	// then work, which is how the reader is woken for a batch or to stop.
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		file.Close()
		return nil, fmt.Errorf("the packet socket in %s cannot be polled: %w", ns, err)
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("the packet socket in %s: %w", ns, err)
	}
	return &capturer{ns: ns, file: file, rc: rc, names: map[int]string{}}, nil
}

// run reads until ctx ends or the socket fails, handing a batch over every
// iv. The read deadline is the next batch: reads past it return at once even
// while packets keep coming (the poller checks the deadline before reading),
// so a flood cannot hold batches back; ctx's end moves the deadline to the
// past to stop the read at once.
func (c *capturer) run(ctx context.Context, out chan<- evidence.CaptureUpdate, iv time.Duration) {
	defer close(out)
	stop := context.AfterFunc(ctx, func() { c.file.SetReadDeadline(time.Unix(1, 0)) })
	var (
		buf     = make([]byte, readBytes)
		oob     = make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Timespec{})))+unix.CmsgSpace(int(unsafe.Sizeof(unix.TpacketAuxdata{}))))
		n, oobn int
		from    unix.Sockaddr
		rerr    error
		fatal   error
		next    = time.Now().Add(iv)
	)
	// Built once: a closure made per read would escape to the heap.
	read := func(fd uintptr) bool {
		n, oobn, _, from, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	}
	if err := c.file.SetReadDeadline(next); err != nil {
		fatal = fmt.Errorf("set the packet socket's read deadline: %w", err)
	}
	for fatal == nil {
		err := c.rc.Read(read)
		switch {
		case err == nil && rerr == nil:
			c.packet(buf[:n], oob[:oobn], from)
			continue
		case err == nil && rerr == unix.EINTR:
			continue
		case err == nil:
			fatal = fmt.Errorf("read packets: %w", rerr)
			continue
		case !errors.Is(err, os.ErrDeadlineExceeded):
			fatal = fmt.Errorf("read packets: %w", err)
			continue
		}
		if ctx.Err() != nil {
			break
		}
		if now := time.Now(); !now.Before(next) {
			c.collectDrops()
			c.flush(out)
			next = now.Add(iv)
			if err := c.file.SetReadDeadline(next); err != nil {
				fatal = fmt.Errorf("set the packet socket's read deadline: %w", err)
			}
			// ctx may have ended, and its deadline been overwritten, just
			// before ours was set: look again, or the read would wait iv.
			if ctx.Err() != nil {
				break
			}
		}
	}
	stop()
	c.collectDrops()
	c.file.Close()
	if fatal != nil {
		c.u.Err = failure(fatal)
		// The last word: wait for room rather than lose the error, but not
		// past ctx.
		select {
		case out <- c.u:
		case <-ctx.Done():
		}
		return
	}
	c.flush(out) // what arrived since the last batch, if there is room
}

// packet adds one received packet to the batch. Beyond the cap it is only
// counted, before any decoding: a flood costs the read and nothing more.
func (c *capturer) packet(b, oob []byte, from unix.Sockaddr) {
	if len(c.u.Packets) >= c.max {
		c.u.Dropped++
		return
	}
	ll, ok := from.(*unix.SockaddrLinklayer)
	if !ok {
		c.u.Dropped++
		return
	}
	ts, tsOK, netOff, netOK := readControl(oob)
	if !netOK || int(netOff) > len(b) {
		c.u.Dropped++ // no offset: the IP header cannot be found
		return
	}
	d, err := decodePacket(b[netOff:])
	if err != nil {
		// The filter checked the header; a packet that still does not
		// parse is lost to the consumer, and counted so.
		c.u.Dropped++
		return
	}
	if !tsOK {
		ts = time.Now()
	}
	p := place(c.forms, d, ts, c.ifName(ll.Ifindex), ll.Pkttype)
	if ll.Hatype == unix.ARPHRD_ETHER && netOff >= 14 {
		p.DstMAC, p.SrcMAC = macString(b[0:6]), macString(b[6:12])
	}
	c.u.Packets = append(c.u.Packets, p)
}

// ifName names an interface of the target through the namespace, once per
// index: a failed lookup (the interface is gone) is not retried per
// packet. An index reused by a new interface keeps the old name, which a
// capture of a few minutes can live with.
func (c *capturer) ifName(idx int) string {
	if n, ok := c.names[idx]; ok {
		return n
	}
	n := c.ns.IfName(idx)
	c.names[idx] = n
	return n
}

// collectDrops adds the kernel's drops since the last call: reading
// PACKET_STATISTICS resets the counters (packet_getsockopt), so each read is
// a delta. A failure here (the socket closing under us) loses nothing the
// consumer could act on.
func (c *capturer) collectDrops() {
	var st *unix.TpacketStats
	var serr error
	if err := c.rc.Control(func(fd uintptr) {
		st, serr = unix.GetsockoptTpacketStats(int(fd), unix.SOL_PACKET, unix.PACKET_STATISTICS)
	}); err != nil || serr != nil {
		return
	}
	c.u.Dropped += int(st.Drops)
}

// flush hands the batch over if there is one and the channel has room.
func (c *capturer) flush(out chan<- evidence.CaptureUpdate) {
	if len(c.u.Packets) == 0 && c.u.Dropped == 0 && c.u.Err == nil {
		return
	}
	select {
	case out <- c.u:
		c.u = evidence.CaptureUpdate{}
	default:
	}
}

// readControl reads the control messages of one packet: SO_TIMESTAMPNS,
// when the kernel received the packet or handed it to the device (what
// tcpdump prints, not when we got round to reading it), and PACKET_AUXDATA's
// tp_net, where the network header starts in the frame. Parsed in place:
// unix.ParseSocketControlMessage would allocate per packet.
func readControl(oob []byte) (ts time.Time, tsOK bool, netOff uint16, netOK bool) {
	var h unix.Cmsghdr
	var tspec unix.Timespec
	var aux unix.TpacketAuxdata
	hdr := unix.CmsgLen(0)
	for len(oob) >= hdr {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h)), oob)
		l := int(h.Len)
		if l < hdr || l > len(oob) {
			break
		}
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && l-hdr >= int(unsafe.Sizeof(tspec)):
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&tspec)), unsafe.Sizeof(tspec)), oob[hdr:l])
			ts, tsOK = time.Unix(tspec.Unix()), true
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && l-hdr >= int(unsafe.Sizeof(aux)):
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&aux)), unsafe.Sizeof(aux)), oob[hdr:l])
			netOff, netOK = aux.Net, true
		}
		oob = oob[min(unix.CmsgSpace(l-hdr), len(oob)):]
	}
	return ts, tsOK, netOff, netOK
}

// htons puts a 16-bit value in network order, as sockaddr_ll's protocol wants.
func htons(v uint16) uint16 {
	return binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))
}

package probes

// Packet capture: the flow's packets as they cross the target's interfaces,
// seen by one AF_PACKET socket with an in-kernel filter and batched like
// Watch (STYLE.md point 7). It answers the question the other probes can
// only infer: which interface did the request come in on, and which one did
// the reply leave by.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// CaptureOptions tune Capture; the zero value is fine.
type CaptureOptions struct {
	Interval time.Duration // batch period, default 200ms, at least 20ms
	MaxBatch int           // per update cap, default 512; beyond it count Dropped
}

const (
	captureDefaultInterval = 200 * time.Millisecond
	captureMinInterval     = 20 * time.Millisecond
	captureDefaultMax      = 512
	// captureSnap is what the filter keeps of a packet: an IPv4 header with
	// options (60) and a TCP header up to its flags (14), or an ICMP error
	// with the header and ports it quotes (IPv4: 20+8+20+4 without options;
	// IPv6: 40+8+40+4 = 92). Payload is never needed, and a short snap keeps
	// a flood cheap.
	captureSnap = 128
	// captureL2Room is added to the snap for the link-layer header the raw
	// socket keeps in front (Ethernet 14, with a VLAN tag in the data 18).
	captureL2Room = 32
	// captureReadBytes is the receive buffer; more than the snap, in case a
	// kernel ignored it.
	captureReadBytes = 2048
)

// captureRcvBuf is the socket's receive buffer. A queued packet costs its
// whole buffer (truesize, 1-2 KiB for a clone of a full-size frame) even
// though only captureSnap bytes are read: 4 MiB holds some 2,000 of them,
// a good second of a busy flow between two reads. Root gets it whatever
// net.core.rmem_max says (SO_RCVBUFFORCE). A variable so that tests can
// force the kernel to drop.
var captureRcvBuf = 4 << 20

// Capture captures the flow's packets on every interface of the target at
// once (AF_PACKET, SOCK_RAW, ETH_P_ALL, ifindex 0) with an in-kernel
// classic BPF filter matching the flow in both directions (CaptureFilter),
// and delivers at most one CaptureUpdate per Interval until ctx ends; then it
// closes the channel, after its goroutine has closed the socket. A capture
// that fails (no root, the socket breaks) delivers the error in its last
// update and closes the channel at once. It never blocks on a slow reader:
// while the channel is full, packets are merged into the waiting batch up to
// MaxBatch and counted in Dropped beyond it.
//
// The socket is open when Capture returns, so packets from then on are seen.
// t must stay open until the channel is closed (interface names are looked
// up through it).
func Capture(ctx context.Context, t *Target, f flow.Flow, opt CaptureOptions) <-chan evidence.CaptureUpdate {
	iv := opt.Interval
	if iv <= 0 {
		iv = captureDefaultInterval
	}
	iv = max(iv, captureMinInterval)
	maxB := opt.MaxBatch
	if maxB <= 0 {
		maxB = captureDefaultMax
	}
	// One batch waits in the channel; later ones merge behind it.
	out := make(chan evidence.CaptureUpdate, 1)
	fail := func(err error) <-chan evidence.CaptureUpdate {
		out <- evidence.CaptureUpdate{Err: err}
		close(out)
		return out
	}
	if t == nil {
		return fail(errors.New("packet capture: no namespace to capture in"))
	}
	if ctx.Err() != nil {
		close(out)
		return out
	}
	m, err := newCaptureMatch(f)
	if err != nil {
		return fail(fmt.Errorf("packet capture: %w", err))
	}
	prog, err := CaptureFilter(f)
	if err != nil {
		return fail(fmt.Errorf("packet capture: %w", err))
	}
	c, err := openCapture(t, prog)
	if err != nil {
		return fail(captureFail(err))
	}
	c.m, c.max = m, maxB
	go c.run(ctx, out, iv)
	return out
}

// captureFail turns an error into a sentence under a heading that says the
// capture stopped. A missing privilege is CAP_NET_RAW here, not the
// CAP_NET_ADMIN that Classify names for netlink.
func captureFail(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return &watchError{what: "packet capture is unavailable",
			why: "needs root (CAP_NET_RAW): run asym with sudo (" + err.Error() + ")", err: err}
	}
	st, why := evidence.Classify(err)
	what := "packet capture failed"
	if st == evidence.StatusUnavailable {
		what = "packet capture is unavailable"
	}
	return &watchError{what: what, why: why, err: err}
}

// capturer owns the packet socket; only its run goroutine touches it after
// openCapture.
type capturer struct {
	t     *Target
	file  *os.File // the socket, in the runtime's poller: deadlines wake the read
	rc    syscall.RawConn
	m     captureMatch
	max   int
	names map[int]string         // ifindex -> name in the target, including failures
	u     evidence.CaptureUpdate // the batch being assembled
}

// openCapture makes the socket. Only socket(2) runs inside the target
// namespace: a socket belongs to the namespace it was created in for life
// (sock_net), so binding to ifindex 0 covers the target's interfaces, not
// ours, and the thread that entered the namespace is discarded by InNS.
func openCapture(t *Target, prog []bpf.RawInstruction) (*capturer, error) {
	fd := -1
	// Not the caller's ctx: if it ended while fn ran, InNS would return
	// and the descriptor fn made would leak. socket(2) does not block.
	err := t.InNS(context.Background(), func() error {
		// Protocol 0: the socket receives nothing until bind, so no packet
		// slips into its queue before the filter is attached (packet(7)).
		// SOCK_RAW keeps the link-layer header: an outgoing frame's
		// destination MAC says which next hop the kernel chose (a gateway,
		// or the neighbour itself), which no route lookup afterwards proves.
		s, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("create a packet socket in %s: %w", t, err)
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
		return closeFail(fmt.Errorf("attach the flow's filter to the packet socket in %s: %w", t, err))
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureRcvBuf) != nil {
		// Not root in the socket's user namespace: take what rmem_max allows.
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, captureRcvBuf)
	}
	// Best effort: without it the time is when we read the packet.
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	// Where the network header starts in each frame (tp_net): the link
	// header's length depends on the link (Ethernet, a tunnel without one,
	// a VLAN tag in the data), and only the kernel knows it for sure.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return closeFail(fmt.Errorf("ask the packet socket in %s for header offsets: %w", t, err))
	}
	// ETH_P_ALL, not ETH_P_IP: the kernel hands copies of outgoing packets
	// (dev_queue_xmit_nit) only to ETH_P_ALL taps, and the reply's way out
	// is the point. Ifindex 0: every interface of the namespace.
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)}); err != nil {
		return closeFail(fmt.Errorf("bind the packet socket to every interface of %s: %w", t, err))
	}
	file := os.NewFile(uintptr(fd), "packet socket")
	// A non-blocking descriptor goes into the runtime's poller; deadlines
	// then work, which is how the reader is woken for a batch or to stop.
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		file.Close()
		return nil, fmt.Errorf("the packet socket in %s cannot be polled: %w", t, err)
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("the packet socket in %s: %w", t, err)
	}
	return &capturer{t: t, file: file, rc: rc, names: map[int]string{}}, nil
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
		buf     = make([]byte, captureReadBytes)
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
		c.u.Err = captureFail(fatal)
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
	ts, tsOK, netOff, netOK := capControl(oob)
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
	p := c.m.finish(d, ts, c.ifName(ll.Ifindex), ll.Pkttype)
	if ll.Hatype == unix.ARPHRD_ETHER && netOff >= 14 {
		p.DstMAC, p.SrcMAC = macString(b[0:6]), macString(b[6:12])
	}
	c.u.Packets = append(c.u.Packets, p)
}

// macString formats a MAC the way ip(8) prints it.
func macString(b []byte) string {
	const hex = "0123456789abcdef"
	var s [17]byte
	for i, v := range b[:6] {
		if i > 0 {
			s[i*3-1] = ':'
		}
		s[i*3], s[i*3+1] = hex[v>>4], hex[v&0xf]
	}
	return string(s[:])
}

// ifName names an interface of the target through its netlink handle, once
// per index: a failed lookup (the interface is gone) is not retried per
// packet. An index reused by a new interface keeps the old name, which a
// capture of a few minutes can live with.
func (c *capturer) ifName(idx int) string {
	if n, ok := c.names[idx]; ok {
		return n
	}
	n := c.t.ifName(idx)
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

// capControl reads the control messages of one packet: SO_TIMESTAMPNS,
// when the kernel received the packet or handed it to the device (what
// tcpdump prints, not when we got round to reading it), and PACKET_AUXDATA's
// tp_net, where the network header starts in the frame. Parsed in place:
// unix.ParseSocketControlMessage would allocate per packet.
func capControl(oob []byte) (ts time.Time, tsOK bool, netOff uint16, netOK bool) {
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

// captureMatch is the flow as the filter and the parser see it.
type captureMatch struct {
	v6           bool
	proto        uint8 // IPPROTO_*: ICMPv6 for an IPv6 ICMP flow
	src, dst     netip.Addr
	sport, dport uint16 // 0 matches any port
}

func newCaptureMatch(f flow.Flow) (captureMatch, error) {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return captureMatch{}, fmt.Errorf("the flow %q needs a source and a destination of the same IP version", f)
	}
	if src == dst {
		return captureMatch{}, fmt.Errorf("the flow %q has the same address at both ends", f)
	}
	m := captureMatch{v6: src.Is6(), src: src, dst: dst}
	switch f.Proto {
	case flow.TCP, flow.UDP:
		m.proto, m.sport, m.dport = uint8(f.Proto), f.Src.Port(), f.Dst.Port()
	case flow.ICMP, flow.ICMPv6:
		m.proto = unix.IPPROTO_ICMP
		if m.v6 {
			m.proto = unix.IPPROTO_ICMPV6
		}
	default:
		return captureMatch{}, fmt.Errorf("packets of %s cannot be captured: give a tcp, udp or icmp flow", f.Proto)
	}
	return m, nil
}

func (m *captureMatch) hasPorts() bool { return m.sport != 0 || m.dport != 0 }

// CaptureFilter returns the classic BPF program (exported for tests and for a
// tcpdump-equivalent hand-off). Offsets are relative to the IP header
// (SKF_NET_OFF), so it works whatever link header the raw socket keeps in
// front, and it keeps captureSnap bytes (plus room for that header) of:
//   - the flow's packets in either direction: both addresses, the protocol,
//     and the ports where the flow has them (a port given as 0 matches any),
//     always paired the same way, so A:p > B:q and B:q > A:p match but
//     A:q > B:p does not;
//   - for an ICMP flow, echo requests and replies between the two addresses;
//   - ICMP errors (destination unreachable, IPv6 packet too big, time
//     exceeded: what a black hole, a PMTU problem or a routing loop sends)
//     whatever their outer addresses, when the packet they quote is the
//     flow's, in either direction.
//
// The protocol check reads skb->protocol (SKF_AD_PROTOCOL), so ARP and
// other frames whose bytes happen to look like IP never match.
func CaptureFilter(f flow.Flow) ([]bpf.RawInstruction, error) {
	m, err := newCaptureMatch(f)
	if err != nil {
		return nil, err
	}
	p := &bpfProg{labels: map[string]int{}, jumps: map[int][2]string{}}
	p.add(bpf.LoadExtension{Num: bpf.ExtProto})
	if m.v6 {
		p.jump(bpf.JumpEqual, unix.ETH_P_IPV6, "", "drop")
		m.filter6(p)
	} else {
		p.jump(bpf.JumpEqual, unix.ETH_P_IP, "", "drop")
		m.filter4(p)
	}
	// The socket is SOCK_RAW, so the packet starts with its link-layer
	// header, whose length depends on the link: every load is made relative
	// to the network header instead (SKF_NET_OFF), which the kernel knows.
	for i, in := range p.ins {
		switch v := in.(type) {
		case bpf.LoadAbsolute:
			v.Off += skfNetOff
			p.ins[i] = v
		case bpf.LoadIndirect:
			v.Off += skfNetOff
			p.ins[i] = v
		case bpf.LoadMemShift:
			v.Off += skfNetOff
			p.ins[i] = v
		}
	}
	p.label("accept")
	p.add(bpf.RetConstant{Val: captureSnap + captureL2Room})
	p.label("drop")
	p.add(bpf.RetConstant{Val: 0})
	return p.assemble()
}

// skfNetOff is SKF_NET_OFF (-0x100000) as a classic BPF offset: a load at
// skfNetOff+n reads byte n of the network header, wherever it starts.
const skfNetOff = 0xfff00000

// ICMP types the filter and the parser know.
const (
	icmp4EchoReply    = 0
	icmp4Unreachable  = 3
	icmp4Echo         = 8
	icmp4TimeExceeded = 11
	icmp6Unreachable  = 1
	icmp6TooBig       = 2
	icmp6TimeExceeded = 3
	icmp6Echo         = 128
	icmp6EchoReply    = 129
	icmpErrQuote      = 8 // the quoted packet follows the 8-byte ICMP header
)

// filter4 matches IPv4. The IP header length varies (options), so L4 fields
// are read relative to X, loaded from the IHL by LoadMemShift (ldxb 4*([0]&0xf)).
func (m *captureMatch) filter4(p *bpfProg) {
	// Only a first fragment carries the L4 header the ports are in; a later
	// one cannot be told from another flow's, and is left out.
	p.add(bpf.LoadAbsolute{Off: 6, Size: 2})
	p.jump(bpf.JumpBitsSet, 0x1fff, "drop", "")
	p.add(bpf.LoadAbsolute{Off: 9, Size: 1})
	fwd, rev := "fwd", "rev"
	if !m.hasPorts() {
		fwd, rev = "accept", "accept"
	}
	if m.proto == unix.IPPROTO_ICMP {
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMP, "", "drop")
		p.add(bpf.LoadMemShift{Off: 0})
		p.add(bpf.LoadIndirect{Off: 0, Size: 1}) // ICMP type
		p.jump(bpf.JumpEqual, icmp4Echo, "echo", "")
		p.jump(bpf.JumpEqual, icmp4EchoReply, "echo", "")
		p.jump(bpf.JumpEqual, icmp4Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp4TimeExceeded, "err", "drop")
		p.label("echo")
		m.addrs(p, bpfAbs, 12, 16, "accept", "accept", "ip")
	} else {
		p.jump(bpf.JumpEqual, uint32(m.proto), "l4", "")
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMP, "", "drop")
		p.add(bpf.LoadMemShift{Off: 0})
		p.add(bpf.LoadIndirect{Off: 0, Size: 1})
		p.jump(bpf.JumpEqual, icmp4Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp4TimeExceeded, "err", "drop")
		p.label("l4")
		m.addrs(p, bpfAbs, 12, 16, fwd, rev, "ip")
		if m.hasPorts() {
			p.label("fwd")
			p.add(bpf.LoadMemShift{Off: 0})
			bpfPorts(p, bpfInd, 0, m.sport, m.dport)
			p.label("rev")
			p.add(bpf.LoadMemShift{Off: 0})
			bpfPorts(p, bpfInd, 0, m.dport, m.sport)
		}
	}
	// An ICMP error: X is the outer header length, the quoted IPv4 header
	// starts at X+8 (RFC 792: it quotes the header and at least 8 bytes).
	p.label("err")
	p.add(bpf.LoadIndirect{Off: icmpErrQuote + 9, Size: 1})
	p.jump(bpf.JumpEqual, uint32(m.proto), "", "drop")
	efwd, erev := "quoted.fwd", "quoted.rev"
	if !m.hasPorts() {
		efwd, erev = "accept", "accept"
	}
	m.addrs(p, bpfInd, icmpErrQuote+12, icmpErrQuote+16, efwd, erev, "quoted")
	if m.hasPorts() {
		p.label("quoted.fwd")
		quotedL4(p)
		bpfPorts(p, bpfInd, icmpErrQuote, m.sport, m.dport)
		p.label("quoted.rev")
		quotedL4(p)
		bpfPorts(p, bpfInd, icmpErrQuote, m.dport, m.sport)
	}
}

// quotedL4 skips a quoted non-first fragment and moves X past the quoted
// IPv4 header, whose length has to be computed: LoadMemShift takes only a
// constant offset. X = outer header length + 4*(quoted IHL).
func quotedL4(p *bpfProg) {
	p.add(bpf.LoadIndirect{Off: icmpErrQuote + 6, Size: 2})
	p.jump(bpf.JumpBitsSet, 0x1fff, "drop", "")
	p.add(bpf.LoadIndirect{Off: icmpErrQuote, Size: 1})
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x0f})
	p.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 2})
	p.add(bpf.ALUOpX{Op: bpf.ALUOpAdd})
	p.add(bpf.TAX{})
}

// filter6 matches IPv6. The header is a fixed 40 bytes and the L4 header is
// read right after it: only packets whose first next header is TCP, UDP or
// ICMPv6 are seen. Extension headers (hop-by-hop, routing, fragment,
// destination options) are not followed: classic BPF cannot loop over a
// chain, and the flows asym diagnoses do not carry them. A fragmented
// IPv6 packet of the flow is therefore missed, first fragment included, and
// so is an ICMPv6 error whose quoted packet has extension headers.
func (m *captureMatch) filter6(p *bpfProg) {
	p.add(bpf.LoadAbsolute{Off: 6, Size: 1}) // next header
	fwd, rev := "fwd", "rev"
	if !m.hasPorts() {
		fwd, rev = "accept", "accept"
	}
	if m.proto == unix.IPPROTO_ICMPV6 {
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMPV6, "", "drop")
		p.add(bpf.LoadAbsolute{Off: 40, Size: 1}) // ICMPv6 type
		p.jump(bpf.JumpEqual, icmp6Echo, "echo", "")
		p.jump(bpf.JumpEqual, icmp6EchoReply, "echo", "")
		p.jump(bpf.JumpEqual, icmp6Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp6TooBig, "err", "")
		p.jump(bpf.JumpEqual, icmp6TimeExceeded, "err", "drop")
		p.label("echo")
		m.addrs(p, bpfAbs, 8, 24, "accept", "accept", "ip")
	} else {
		p.jump(bpf.JumpEqual, uint32(m.proto), "l4", "")
		p.jump(bpf.JumpEqual, unix.IPPROTO_ICMPV6, "", "drop")
		p.add(bpf.LoadAbsolute{Off: 40, Size: 1})
		p.jump(bpf.JumpEqual, icmp6Unreachable, "err", "")
		p.jump(bpf.JumpEqual, icmp6TooBig, "err", "")
		p.jump(bpf.JumpEqual, icmp6TimeExceeded, "err", "drop")
		p.label("l4")
		m.addrs(p, bpfAbs, 8, 24, fwd, rev, "ip")
		if m.hasPorts() {
			p.label("fwd")
			bpfPorts(p, bpfAbs, 40, m.sport, m.dport)
			p.label("rev")
			bpfPorts(p, bpfAbs, 40, m.dport, m.sport)
		}
	}
	// The quoted packet: its IPv6 header at 48, its ports at 88.
	const q = 40 + icmpErrQuote
	p.label("err")
	p.add(bpf.LoadAbsolute{Off: q + 6, Size: 1})
	p.jump(bpf.JumpEqual, uint32(m.proto), "", "drop")
	efwd, erev := "quoted.fwd", "quoted.rev"
	if !m.hasPorts() {
		efwd, erev = "accept", "accept"
	}
	m.addrs(p, bpfAbs, q+8, q+24, efwd, erev, "quoted")
	if m.hasPorts() {
		p.label("quoted.fwd")
		bpfPorts(p, bpfAbs, q+40, m.sport, m.dport)
		p.label("quoted.rev")
		bpfPorts(p, bpfAbs, q+40, m.dport, m.sport)
	}
}

// bpfLoad loads size bytes at off into A: absolute, or relative to X.
type bpfLoad func(off uint32, size int) bpf.Instruction

func bpfAbs(off uint32, size int) bpf.Instruction { return bpf.LoadAbsolute{Off: off, Size: size} }
func bpfInd(off uint32, size int) bpf.Instruction { return bpf.LoadIndirect{Off: off, Size: size} }

// addrs matches the source and destination addresses at srcOff and dstOff
// against the flow's, 32 bits at a time: it goes to fwd when they are the
// flow's Src and Dst, to rev when they are its Dst and Src, and drops
// anything else. name keeps its labels apart from another use.
func (m *captureMatch) addrs(p *bpfProg, ld bpfLoad, srcOff, dstOff uint32, fwd, rev, name string) {
	words := func(off uint32, addr []byte, match, miss string) {
		for i := 0; i < len(addr); i += 4 {
			p.add(ld(off+uint32(i), 4))
			next := ""
			if i+4 == len(addr) {
				next = match
			}
			p.jump(bpf.JumpEqual, binary.BigEndian.Uint32(addr[i:]), next, miss)
		}
	}
	a, b := m.src.AsSlice(), m.dst.AsSlice()
	words(srcOff, a, "", name+".reverse")
	words(dstOff, b, fwd, "drop")
	p.label(name + ".reverse")
	words(srcOff, b, "", "drop")
	words(dstOff, a, rev, "drop")
}

// bpfPorts accepts when the source and destination ports at off are first
// and second (0: any), and drops otherwise.
func bpfPorts(p *bpfProg, ld bpfLoad, off uint32, first, second uint16) {
	switch {
	case first != 0 && second != 0:
		p.add(ld(off, 4))
		p.jump(bpf.JumpEqual, uint32(first)<<16|uint32(second), "accept", "drop")
	case first != 0:
		p.add(ld(off, 2))
		p.jump(bpf.JumpEqual, uint32(first), "accept", "drop")
	case second != 0:
		p.add(ld(off+2, 2))
		p.jump(bpf.JumpEqual, uint32(second), "accept", "drop")
	default:
		p.goTo("accept")
	}
}

// bpfProg assembles a classic BPF program with named forward jumps, so the
// filter reads as its logic rather than as skip counts that break when an
// instruction is added.
type bpfProg struct {
	ins    []bpf.Instruction
	jumps  map[int][2]string // instruction index -> true and false labels ("" = next)
	labels map[string]int
	err    error
}

func (p *bpfProg) add(ins ...bpf.Instruction) { p.ins = append(p.ins, ins...) }

func (p *bpfProg) label(name string) {
	if _, dup := p.labels[name]; dup && p.err == nil {
		p.err = fmt.Errorf("the filter defines label %q twice", name)
	}
	p.labels[name] = len(p.ins)
}

func (p *bpfProg) jump(cond bpf.JumpTest, val uint32, ifTrue, ifFalse string) {
	p.jumps[len(p.ins)] = [2]string{ifTrue, ifFalse}
	p.add(bpf.JumpIf{Cond: cond, Val: val})
}

func (p *bpfProg) goTo(label string) {
	p.jumps[len(p.ins)] = [2]string{label, ""}
	p.add(bpf.Jump{})
}

// assemble resolves the labels: classic BPF jumps only forward, a
// conditional one by at most 255 instructions.
func (p *bpfProg) assemble() ([]bpf.RawInstruction, error) {
	if p.err != nil {
		return nil, p.err
	}
	skip := func(at int, label string) (int, error) {
		if label == "" {
			return 0, nil
		}
		to, ok := p.labels[label]
		if !ok {
			return 0, fmt.Errorf("the filter jumps to label %q, which it does not define", label)
		}
		if to <= at {
			return 0, fmt.Errorf("the filter jumps back to label %q: classic BPF jumps only forward", label)
		}
		return to - at - 1, nil
	}
	for at, l := range p.jumps {
		t, err := skip(at, l[0])
		if err != nil {
			return nil, err
		}
		f, err := skip(at, l[1])
		if err != nil {
			return nil, err
		}
		switch j := p.ins[at].(type) {
		case bpf.JumpIf:
			if t > 255 || f > 255 {
				return nil, fmt.Errorf("the filter is too long for a conditional jump to label %q or %q", l[0], l[1])
			}
			j.SkipTrue, j.SkipFalse = uint8(t), uint8(f)
			p.ins[at] = j
		case bpf.Jump:
			j.Skip = uint32(t)
			p.ins[at] = j
		}
	}
	raw, err := bpf.Assemble(p.ins)
	if err != nil {
		return nil, fmt.Errorf("assemble the flow's filter: %w", err)
	}
	return raw, nil
}

// The parser: what the filter kept of a packet, in user space.

// bigEndian reads network-order fields.
var bigEndian = binary.BigEndian

// capIPHdr is an IPv4 or IPv6 header, read.
type capIPHdr struct {
	v6       bool
	src, dst netip.Addr
	proto    uint8 // IPv4 protocol, or the IPv6 header's next header
	total    int   // IP total length, header included
	hlen     int
	frag     bool   // a non-first IPv4 fragment: no L4 header
	l4       []byte // what follows the header, as far as captured; nil for a fragment
}

func capIP(b []byte) (capIPHdr, error) {
	if len(b) == 0 {
		return capIPHdr{}, errors.New("the packet is empty")
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return capIPHdr{}, fmt.Errorf("the packet has %d bytes, less than an IPv4 header", len(b))
		}
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || hl > len(b) {
			return capIPHdr{}, fmt.Errorf("the IPv4 header length %d does not fit the %d bytes captured", hl, len(b))
		}
		h := capIPHdr{
			src: netip.AddrFrom4([4]byte(b[12:16])), dst: netip.AddrFrom4([4]byte(b[16:20])),
			proto: b[9], total: int(bigEndian.Uint16(b[2:])), hlen: hl,
		}
		if bigEndian.Uint16(b[6:])&0x1fff != 0 {
			h.frag = true
		} else {
			h.l4 = b[hl:]
		}
		return h, nil
	case 6:
		if len(b) < 40 {
			return capIPHdr{}, fmt.Errorf("the packet has %d bytes, less than an IPv6 header", len(b))
		}
		return capIPHdr{
			v6:  true,
			src: netip.AddrFrom16([16]byte(b[8:24])), dst: netip.AddrFrom16([16]byte(b[24:40])),
			proto: b[6], total: 40 + int(bigEndian.Uint16(b[4:])), hlen: 40, l4: b[40:],
		}, nil
	}
	return capIPHdr{}, fmt.Errorf("the packet's IP version is %d, neither 4 nor 6", b[0]>>4)
}

// capDecoded is a parsed packet before it is placed (time, interface,
// direction, text).
type capDecoded struct {
	p        evidence.CapturedPacket // Src, Dst, Proto, Flags, ICMP, Len
	v6, frag bool
	ports    bool   // Src and Dst carry ports
	payload  int    // TCP or UDP payload bytes, the ICMP message length; -1 when unknown
	icmpText string // the ICMP message as tcpdump words it, when that differs from p.ICMP
	quoted   capQuoted
}

// capQuoted is the packet an ICMP error is about.
type capQuoted struct {
	ok       bool
	proto    uint8
	src, dst netip.AddrPort
}

// decodePacket parses what the filter kept of a packet: IPv4 or IPv6, then
// TCP ports and flags, UDP ports, or the ICMP message and the packet an
// ICMP error quotes. A truncated L4 header leaves its fields empty.
func decodePacket(b []byte) (capDecoded, error) {
	h, err := capIP(b)
	if err != nil {
		return capDecoded{}, err
	}
	d := capDecoded{v6: h.v6, frag: h.frag, payload: -1}
	d.p = evidence.CapturedPacket{Src: netip.AddrPortFrom(h.src, 0), Dst: netip.AddrPortFrom(h.dst, 0), Proto: h.proto, Len: h.total}
	l4 := h.l4
	switch {
	case h.frag:
		d.payload = max(h.total-h.hlen, 0)
	case (h.proto == unix.IPPROTO_TCP || h.proto == unix.IPPROTO_UDP) && len(l4) >= 4:
		d.ports = true
		d.p.Src = netip.AddrPortFrom(h.src, bigEndian.Uint16(l4))
		d.p.Dst = netip.AddrPortFrom(h.dst, bigEndian.Uint16(l4[2:]))
		if h.proto == unix.IPPROTO_UDP {
			if len(l4) >= 6 {
				d.payload = max(int(bigEndian.Uint16(l4[4:]))-8, 0)
			}
		} else if len(l4) >= 14 {
			d.p.TCP = evidence.TCPFlags(l4[13])
			d.p.Flags = tcpFlags(l4[13], l4[12]&1 != 0)
			d.payload = max(h.total-h.hlen-int(l4[12]>>4)*4, 0)
		}
	case h.proto == unix.IPPROTO_ICMP && !h.v6 && len(l4) >= 4:
		d.payload = max(h.total-h.hlen, 0)
		d.icmp4(l4)
	case h.proto == unix.IPPROTO_ICMPV6 && h.v6 && len(l4) >= 4:
		d.payload = max(h.total-h.hlen, 0)
		d.icmp6(l4)
	}
	return d, nil
}

// tcpFlags renders TCP flags in tcpdump's order and letters (print-tcp.c
// tcp_flag_values): F S R P . U E W, and e for AE (AccECN); "none" for none.
func tcpFlags(f byte, ae bool) string {
	const letters = "FSRP.UEW"
	var b [9]byte
	n := 0
	for i := range 8 {
		if f&(1<<i) != 0 {
			b[n] = letters[i]
			n++
		}
	}
	if ae {
		b[n] = 'e'
		n++
	}
	if n == 0 {
		return "none"
	}
	return string(b[:n])
}

var icmp4Unreach = [...]string{
	"net", "host", "protocol", "port", "frag needed", "source route failed",
	"net unknown", "host unknown", "source host isolated", "net prohibited",
	"host prohibited", "net for tos", "host for tos", "admin prohibited",
	"host precedence violation", "precedence cutoff",
}

var icmp6Unreach = [...]string{
	"no route", "admin prohibited", "beyond scope", "address", "port",
	"source address failed policy", "reject route",
}

func icmpCode(names []string, code byte) string {
	if int(code) < len(names) {
		return names[code]
	}
	return "code " + strconv.Itoa(int(code))
}

func (d *capDecoded) icmp4(l4 []byte) {
	typ, code := l4[0], l4[1]
	d.p.ICMPMsg = &evidence.ICMPMessage{Type: typ, Code: code}
	switch typ {
	case icmp4Echo, icmp4EchoReply:
		d.echo(l4, typ == icmp4Echo)
	case icmp4Unreachable:
		why := icmpCode(icmp4Unreach[:], code)
		if code == 4 && len(l4) >= 8 {
			// RFC 1191: the next-hop MTU is the low 16 bits of the second word.
			d.p.ICMPMsg.MTU = int(bigEndian.Uint16(l4[6:]))
			why += ", mtu " + strconv.Itoa(d.p.ICMPMsg.MTU)
		}
		d.p.ICMP = "unreachable (" + why + ")"
		d.quote(l4)
	case icmp4TimeExceeded:
		d.p.ICMP = "time exceeded (" + icmpCode([]string{"in transit", "reassembly"}, code) + ")"
		d.quote(l4)
	default:
		d.p.ICMP = "type " + strconv.Itoa(int(typ)) + " code " + strconv.Itoa(int(code))
	}
}

func (d *capDecoded) icmp6(l4 []byte) {
	typ, code := l4[0], l4[1]
	d.p.ICMPMsg = &evidence.ICMPMessage{V6: true, Type: typ, Code: code}
	switch typ {
	case icmp6Echo, icmp6EchoReply:
		d.echo(l4, typ == icmp6Echo)
	case icmp6Unreachable:
		d.p.ICMP = "unreachable (" + icmpCode(icmp6Unreach[:], code) + ")"
		d.quote(l4)
	case icmp6TooBig:
		if len(l4) >= 8 {
			d.p.ICMPMsg.MTU = int(min(bigEndian.Uint32(l4[4:]), 1<<30))
			d.p.ICMP = "packet too big (mtu " + strconv.Itoa(d.p.ICMPMsg.MTU) + ")"
		} else {
			d.p.ICMP = "packet too big"
		}
		d.quote(l4)
	case icmp6TimeExceeded:
		d.p.ICMP = "time exceeded (" + icmpCode([]string{"hop limit", "reassembly"}, code) + ")"
		d.quote(l4)
	default:
		d.p.ICMP = "type " + strconv.Itoa(int(typ)) + " code " + strconv.Itoa(int(code))
	}
}

func (d *capDecoded) echo(l4 []byte, request bool) {
	name := "echo reply"
	if request {
		name = "echo request"
	}
	if len(l4) < 8 {
		d.p.ICMP = name
		return
	}
	id, seq := strconv.Itoa(int(bigEndian.Uint16(l4[4:]))), strconv.Itoa(int(bigEndian.Uint16(l4[6:])))
	d.p.ICMP = name + " id " + id + " seq " + seq
	d.icmpText = name + ", id " + id + ", seq " + seq
}

// quote reads the packet an ICMP error carries after its 8-byte header.
func (d *capDecoded) quote(l4 []byte) {
	if len(l4) < icmpErrQuote {
		return
	}
	h, err := capIP(l4[icmpErrQuote:])
	if err != nil {
		return
	}
	d.quoted = capQuoted{ok: true, proto: h.proto, src: netip.AddrPortFrom(h.src, 0), dst: netip.AddrPortFrom(h.dst, 0)}
	if (h.proto == unix.IPPROTO_TCP || h.proto == unix.IPPROTO_UDP) && len(h.l4) >= 4 {
		d.quoted.src = netip.AddrPortFrom(h.src, bigEndian.Uint16(h.l4))
		d.quoted.dst = netip.AddrPortFrom(h.dst, bigEndian.Uint16(h.l4[2:]))
	}
}

// finish places a decoded packet: when, where, which way, and its line.
func (m *captureMatch) finish(d capDecoded, ts time.Time, iface string, pkttype uint8) evidence.CapturedPacket {
	p := d.p
	p.Time, p.Iface = ts, iface
	p.Dir = "in"
	p.OtherHost = pkttype == unix.PACKET_OTHERHOST
	if pkttype == unix.PACKET_OUTGOING {
		p.Dir = "out"
	}
	if d.quoted.ok {
		// An error travels back to the quoted packet's source: from the
		// Dst side when that packet went the flow's way.
		p.Reply = d.quoted.src.Addr() == m.src
	} else {
		p.Reply = p.Src.Addr() == m.dst && p.Dst.Addr() == m.src
	}
	p.Text = d.text(ts, iface, pkttype)
	return p
}

// text renders the line tcpdump -n -i any prints for the packet (its
// default verbosity, without sequence numbers and TCP options). It is built
// in a stack buffer with append-style formatting: one allocation, the
// string, instead of one per field.
func (d *capDecoded) text(ts time.Time, iface string, pkttype uint8) string {
	var arr [192]byte
	b := ts.AppendFormat(arr[:0], "15:04:05.000000")
	b = append(b, ' ')
	if iface == "" {
		iface = "?"
	}
	b = append(b, iface...)
	b = append(b, ' ')
	// tcpdump's words for sll_pkttype (print-sll.c), padded as it pads them.
	switch pkttype {
	case unix.PACKET_OUTGOING:
		b = append(b, "Out"...)
	case unix.PACKET_BROADCAST:
		b = append(b, "B  "...)
	case unix.PACKET_MULTICAST:
		b = append(b, "M  "...)
	case unix.PACKET_OTHERHOST:
		b = append(b, "P  "...)
	default:
		b = append(b, "In "...)
	}
	if d.v6 {
		b = append(b, " IP6 "...)
	} else {
		b = append(b, " IP "...)
	}
	b = capEndpoint(b, d.p.Src, d.ports)
	b = append(b, " > "...)
	b = capEndpoint(b, d.p.Dst, d.ports)
	b = append(b, ": "...)
	switch {
	case d.frag:
		b = append(b, "ip-proto-"...)
		b = strconv.AppendUint(b, uint64(d.p.Proto), 10)
	case d.p.Proto == unix.IPPROTO_TCP && d.p.Flags != "":
		b = append(b, "Flags ["...)
		b = append(b, d.p.Flags...)
		b = append(b, ']')
	case d.p.Proto == unix.IPPROTO_UDP:
		b = append(b, "UDP"...)
	case d.p.ICMP != "":
		if d.v6 {
			b = append(b, "ICMP6, "...)
		} else {
			b = append(b, "ICMP "...)
		}
		if d.icmpText != "" {
			b = append(b, d.icmpText...)
		} else {
			b = append(b, d.p.ICMP...)
		}
		if q := d.quoted; q.ok {
			ports := q.src.Port() != 0 || q.dst.Port() != 0
			b = append(b, " for "...)
			b = append(b, flow.Proto(q.proto).String()...)
			b = append(b, ' ')
			b = capEndpoint(b, q.src, ports)
			b = append(b, " > "...)
			b = capEndpoint(b, q.dst, ports)
		}
	default:
		b = append(b, flow.Proto(d.p.Proto).String()...)
	}
	if d.payload >= 0 {
		b = append(b, ", length "...)
		b = strconv.AppendInt(b, int64(d.payload), 10)
	}
	return string(b)
}

// capEndpoint appends an address as tcpdump writes it: "192.0.2.1.443", "2001:db8::1.443".
func capEndpoint(b []byte, ap netip.AddrPort, port bool) []byte {
	b = ap.Addr().AppendTo(b)
	if port {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	}
	return b
}

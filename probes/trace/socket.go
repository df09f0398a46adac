package trace

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"
	"time"
	"unsafe"

	"asym/probes"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// rawSocket opens a raw socket on the calling thread (a test makes that
// thread give up root first).
var rawSocket = unix.Socket

// errNoRaw is the reason a trace cannot send: raw sockets need CAP_NET_RAW.
var errNoRaw = errors.New("needs CAP_NET_RAW to send probes on a raw socket (run asym as root)")

// sender sends probes, headers included, on a raw socket in the target
// bound to the interface the kernel chose for the flow. The binding matters:
// the kernel's route lookup for a raw socket sees neither ports nor, with
// IP_HDRINCL, the real protocol (raw_sendmsg builds the flow with protocol
// IPPROTO_RAW and no ports), so on a host with ECMP or port-selective rules
// it would pick a next hop the flow never takes. Bound to the flow's
// interface, the lookup keeps only next hops on it (fib_select_path with
// an oif), and the gateway is the one hop 0 names.
type sender struct{ fd int }

func openSender(ctx context.Context, t *probes.Target, dev string) (*sender, error) {
	var fd int
	err := t.InNS(ctx, func() error {
		s, err := rawSocket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		if err != nil {
			return rawErr(err, "open a raw socket")
		}
		if dev != "" {
			if err := unix.BindToDevice(s, dev); err != nil {
				unix.Close(s)
				return rawErr(err, "bind the raw socket to "+dev)
			}
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &sender{fd: fd}, nil
}

func (s *sender) send(pkt []byte, dst netip.Addr) error {
	return unix.Sendto(s.fd, pkt, 0, &unix.SockaddrInet4{Addr: dst.As4()})
}

func (s *sender) close() { unix.Close(s.fd) }

// rawErr classifies a raw socket error: EPERM and EACCES mean the
// capability is missing.
func rawErr(err error, what string) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return errNoRaw
	}
	return fmt.Errorf("%s: %w", what, err)
}

// receiver reads one protocol's packets that reach the target, through a
// filter that lets only answers to the probes through: a raw socket gets a
// copy of every packet of its protocol the namespace receives.
type receiver struct {
	file *os.File
	rc   syscall.RawConn
}

// recvBuf holds an ICMP error quoting a full probe (Linux quotes up to 576
// bytes) with room to spare.
const recvBuf = 2048

func openReceiver(ctx context.Context, t *probes.Target, proto int, filter []bpf.Instruction) (*receiver, error) {
	prog, err := bpf.Assemble(filter)
	if err != nil {
		return nil, fmt.Errorf("assemble the answer filter: %w", err)
	}
	var fd int
	err = t.InNS(ctx, func() error {
		s, err := rawSocket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return rawErr(err, "open a raw receive socket")
		}
		fd = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*receiver, error) {
		unix.Close(fd)
		return nil, err
	}
	ins := make([]unix.SockFilter, len(prog))
	for i, p := range prog {
		ins[i] = unix.SockFilter{Code: p.Op, Jt: p.Jt, Jf: p.Jf, K: p.K}
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}); err != nil {
		return fail(fmt.Errorf("attach the answer filter: %w", err))
	}
	// The interface each answer came in on: where the way back enters.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fail(fmt.Errorf("ask for the arrival interface: %w", err))
	}
	file := os.NewFile(uintptr(fd), "raw receive socket")
	if err := file.SetReadDeadline(time.Time{}); err != nil {
		file.Close()
		return nil, fmt.Errorf("the raw receive socket cannot be polled: %w", err)
	}
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	return &receiver{file: file, rc: rc}, nil
}

// packet is one packet read, with when and where it arrived.
type packet struct {
	b     []byte
	ifidx int
	at    time.Time
}

// run reads until ctx ends, handing each packet to out.
func (r *receiver) run(ctx context.Context, out chan<- packet) {
	stop := context.AfterFunc(ctx, func() { r.file.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, recvBuf)
	oob := make([]byte, unix.CmsgSpace(int(unsafe.Sizeof(unix.Inet4Pktinfo{}))))
	var n, oobn int
	var rerr error
	read := func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN
	}
	for ctx.Err() == nil {
		if err := r.rc.Read(read); err != nil || rerr != nil {
			return // the deadline (ctx ended) or a closed socket
		}
		p := packet{b: append([]byte(nil), buf[:n]...), at: time.Now(), ifidx: pktinfoIfindex(oob[:oobn])}
		select {
		case out <- p:
		case <-ctx.Done():
			return
		}
	}
}

func (r *receiver) close() { r.file.Close() }

func pktinfoIfindex(oob []byte) int {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return 0
	}
	for _, m := range msgs {
		if m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO && len(m.Data) >= int(unsafe.Sizeof(unix.Inet4Pktinfo{})) {
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&m.Data[0]))
			return int(info.Ifindex)
		}
	}
	return 0
}

package probetest

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Listen opens a TCP listener on addr (IPv4) inside ns, closed when the test
// ends. The socket stays in ns whatever thread later uses it.
func Listen(t testing.TB, ns NS, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	Do(t, ns.Handle, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Connect opens a TCP connection from a fixed source inside ns, accepts it
// on ln and bounces one message through it, so that the handshake's last
// ACK has certainly gone through conntrack. Both ends close with RST
// (SO_LINGER 0) when the test ends.
func Connect(t testing.TB, ns NS, ln net.Listener, src, dst string) (client, server *net.TCPConn) {
	t.Helper()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	Do(t, ns.Handle, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", dst)
		if err != nil {
			return err
		}
		client = c.(*net.TCPConn)
		return nil
	})
	var sc net.Conn
	select {
	case sc = <-accepted:
	case <-time.After(5 * time.Second):
	}
	if sc == nil {
		t.Fatal("the server did not accept the connection")
	}
	server = sc.(*net.TCPConn)
	for _, c := range []*net.TCPConn{client, server} {
		c.SetLinger(0)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		t.Cleanup(func() { c.Close() })
	}
	if _, err := client.Write([]byte("ping")); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatalf("server read: %v", err)
	}
	if _, err := server.Write(buf); err != nil {
		t.Fatalf("server write: %v", err)
	}
	if _, err := io.ReadFull(client, buf); err != nil {
		t.Fatalf("client read: %v", err)
	}
	return client, server
}

// SynAck builds a 20-byte TCP SYN-ACK segment from src to dst (IPv4), with
// a correct checksum. One that answers no SYN is what an asymmetric return
// path looks like to a stateful firewall: conntrack calls it invalid and
// creates no entry (nf_conntrack_proto_tcp.c: sNO -> sIV).
func SynAck(src, dst netip.Addr, sport, dport uint16, seq, ack uint32) []byte {
	return Segment(src, dst, sport, dport, seq, ack, 0x12)
}

// TCP flags for Segment.
const (
	SYN = 0x02
	ACK = 0x10
)

// Segment builds a 20-byte TCP segment from src to dst (IPv4) with the
// given flags, and a correct checksum.
func Segment(src, dst netip.Addr, sport, dport uint16, seq, ack uint32, flags byte) []byte {
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], sport)
	binary.BigEndian.PutUint16(h[2:], dport)
	binary.BigEndian.PutUint32(h[4:], seq)
	binary.BigEndian.PutUint32(h[8:], ack)
	h[12] = 5 << 4 // data offset: 5 words
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	binary.BigEndian.PutUint16(h[16:], tcpChecksum(src, dst, h))
	return h
}

// tcpChecksum is the TCP checksum of seg over the IPv4 pseudo-header.
func tcpChecksum(src, dst netip.Addr, seg []byte) uint16 {
	pseudo := append(src.AsSlice(), dst.AsSlice()...)
	pseudo = append(pseudo, 0, unix.IPPROTO_TCP, byte(len(seg)>>8), byte(len(seg)))
	var sum uint32
	for _, b := range [][]byte{pseudo, seg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// SendRawTCP sends TCP segments (built with their checksum, as SynAck does)
// from src to dst (IPv4) through a raw socket inside ns; the kernel adds
// the IP header. The socket is bound to src, so that the source the kernel
// writes is the one the checksum covers.
func SendRawTCP(t testing.TB, ns NS, src, dst netip.Addr, segs ...[]byte) {
	t.Helper()
	Do(t, ns.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.As4()}); err != nil {
			return fmt.Errorf("bind a raw socket to %s: %w", src, err)
		}
		for _, seg := range segs {
			if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst.As4()}); err != nil {
				return fmt.Errorf("send a TCP segment to %s: %w", dst, err)
			}
		}
		return nil
	})
}

package lab

// Background noise for a busy firewall: stray TCP segments of connections
// the firewall never saw, sent from a raw socket in one namespace so that
// they cross the firewall. A real firewall's `ct state invalid` counter
// climbs all day from such packets (replies of other asymmetric flows,
// late segments of expired entries); the lab's own flow must stay apart
// from them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// strayEvery and strayLimit bound the generator: 20 segments a second, and
// at most an hour of them in all, whatever keeps the lab up.
const (
	strayEvery = 50 * time.Millisecond
	strayLimit = 72000
)

// stray is one kind of segment the generator sends, in turn with the others.
type stray struct {
	src, dst netip.Addr
	sport    uint16
	dport    uint16 // first destination port; each segment takes the next one
	ports    uint16 // how many destination ports to cycle through
	flags    uint8  // TCP flags
}

// TCP flags.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpACK = 0x10
)

// segment builds the n-th segment of this kind: a 20-byte IPv4 header
// (length, id and checksum are left to the kernel, which fills them for an
// IP_HDRINCL socket: raw_send_hdrinc in net/ipv4/raw.c) and a 20-byte TCP
// header with its checksum.
func (s stray) segment(n uint32) []byte {
	dport := s.dport + uint16(n%uint32(max(s.ports, 1)))
	b := make([]byte, 40)
	b[0] = 0x45 // version 4, 5 words of header
	b[8] = 64   // TTL
	b[9] = unix.IPPROTO_TCP
	src, dst := s.src.As4(), s.dst.As4()
	copy(b[12:16], src[:])
	copy(b[16:20], dst[:])
	tcp := b[20:]
	binary.BigEndian.PutUint16(tcp[0:], s.sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	binary.BigEndian.PutUint32(tcp[4:], 0x5eed0000+n)
	binary.BigEndian.PutUint32(tcp[8:], 0x0ac00000+n)
	tcp[12] = 5 << 4
	tcp[13] = s.flags
	binary.BigEndian.PutUint16(tcp[14:], 64240)
	binary.BigEndian.PutUint16(tcp[16:], tcpChecksum(src, dst, tcp))
	return b
}

// tcpChecksum is the Internet checksum of the IPv4 pseudo-header and seg.
func tcpChecksum(src, dst [4]byte, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	sum += unix.IPPROTO_TCP + uint32(len(seg))
	add(seg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// strays starts sending the kinds in turn from a raw socket made in a
// role's namespace, until Down (or strayLimit segments). The socket keeps
// its namespace for life, so the sending goroutine runs anywhere. A failed
// send is not retried: noise that goes missing for a moment is still noise.
func (b *builder) strays(role string, kinds ...stray) error {
	if len(kinds) == 0 {
		return errors.New("stray traffic needs at least one kind of segment")
	}
	var fd int
	err := b.env.do(role, func() error {
		// IPPROTO_RAW implies IP_HDRINCL: the segments carry the sources
		// they claim, which need not be addresses of this namespace.
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
		return err
	})
	if err != nil {
		return fmt.Errorf("open a raw socket for stray traffic in namespace %s: %w", b.name(role), err)
	}
	e := b.env
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		unix.Close(fd)
		return errors.New("the lab was taken down while starting the stray traffic")
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer unix.Close(fd)
		t := time.NewTicker(strayEvery)
		defer t.Stop()
		for n := uint32(0); n < strayLimit; n++ {
			k := kinds[int(n)%len(kinds)]
			unix.Sendto(fd, k.segment(n/uint32(len(kinds))), 0, &unix.SockaddrInet4{Addr: k.dst.As4()})
			select {
			case <-e.life.Done():
				return
			case <-t.C:
			}
		}
	}()
	return nil
}

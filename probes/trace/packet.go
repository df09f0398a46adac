package trace

import (
	"encoding/binary"
	"net/netip"

	"asym/evidence"
	"asym/flow"
)

// A probe is told apart from the others by fields no ECMP hash reads: the
// IP ID, and for TCP the sequence number (SYN) or acknowledgement number
// (SYN-ACK). The IP ID's low byte also says which TTL it was sent with, so
// the far end can count the hops a probe took from the TTL it arrives with
// without knowing anything else about the run.
//
//	IP ID = base<<8 | ttl<<2 | index      (ttl 1..63, index 0..3)
const (
	maxTTL    = 63
	maxPerTTL = 4
)

// probeID is a probe's IP ID.
func probeID(base uint8, ttl, index int) uint16 {
	return uint16(base)<<8 | uint16(ttl&maxTTL)<<2 | uint16(index&(maxPerTTL-1))
}

// icmpEchoID is the identifier every echo probe of a flow carries: fixed,
// so that a balancer that hashes the echo identifier (or the ICMP checksum
// the identifier is part of) sees one flow, as Paris traceroute does.
func icmpEchoID(f flow.Flow) uint16 {
	a, b := f.Src.Addr().As4(), f.Dst.Addr().As4()
	h := uint16(0xa5)
	for _, x := range append(a[:], b[:]...) {
		h = h*31 + uint16(x)
	}
	return h | 1
}

// packetSpec is one probe to build.
type packetSpec struct {
	tuple flow.Flow
	shape evidence.TraceShape
	ttl   int
	id    uint16 // IP ID
	seq   uint32 // TCP: the sequence number (SYN) or acknowledgement (SYN-ACK) that identifies it
}

const (
	ipHeaderLen  = 20
	tcpHeaderLen = 20
	udpHeaderLen = 8
	icmpEchoLen  = 8 + 4 // header, then a 4-byte payload whose last 2 bytes keep the checksum constant
	udpPayload   = 4     // a few zero bytes: some services drop empty datagrams before logging them, some log them
)

// build returns the probe as an IPv4 packet, header included (the socket
// sends it with IP_HDRINCL). The kernel fills in the total length and the
// header checksum; asym fills the ID (never 0: the kernel would replace it)
// and the transport checksum.
func build(s packetSpec) []byte {
	var l4 []byte
	var proto uint8
	src, dst := s.tuple.Src.Addr().As4(), s.tuple.Dst.Addr().As4()
	switch s.shape {
	case evidence.ShapeSYN, evidence.ShapeSYNACK:
		proto = 6
		l4 = make([]byte, tcpHeaderLen)
		binary.BigEndian.PutUint16(l4[0:], s.tuple.Src.Port())
		binary.BigEndian.PutUint16(l4[2:], s.tuple.Dst.Port())
		l4[12] = tcpHeaderLen / 4 << 4
		l4[13] = tcpSYN
		if s.shape == evidence.ShapeSYNACK {
			// The reply's first segment: it acknowledges a SYN the client
			// never sent with this number, so a client without state
			// answers RST with this number as its sequence (RFC 9293
			// 3.10.7.3), which identifies the probe.
			l4[13] |= tcpACK
			binary.BigEndian.PutUint32(l4[4:], ^s.seq)
			binary.BigEndian.PutUint32(l4[8:], s.seq)
		} else {
			binary.BigEndian.PutUint32(l4[4:], s.seq)
		}
		binary.BigEndian.PutUint16(l4[14:], 64240)
		binary.BigEndian.PutUint16(l4[16:], transportChecksum(src, dst, proto, l4))
	case evidence.ShapeUDP:
		proto = 17
		l4 = make([]byte, udpHeaderLen+udpPayload)
		binary.BigEndian.PutUint16(l4[0:], s.tuple.Src.Port())
		binary.BigEndian.PutUint16(l4[2:], s.tuple.Dst.Port())
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		// The payload is the same in every probe, so the checksum is too:
		// balancers that hash the first 8 bytes of UDP see one flow.
		c := transportChecksum(src, dst, proto, l4)
		if c == 0 {
			c = 0xffff
		}
		binary.BigEndian.PutUint16(l4[6:], c)
	case evidence.ShapeEcho, evidence.ShapeReply:
		proto = 1
		l4 = make([]byte, icmpEchoLen)
		l4[0] = icmpEchoRequest
		if s.shape == evidence.ShapeReply {
			l4[0] = icmpEchoReply
		}
		binary.BigEndian.PutUint16(l4[4:], icmpEchoID(s.tuple))
		binary.BigEndian.PutUint16(l4[6:], uint16(s.id))
		// Keep the ICMP checksum the same for every sequence number: the
		// last payload word is chosen so the one's complement sum does not
		// change (Paris traceroute's trick), since some balancers hash the
		// first four bytes of ICMP.
		binary.BigEndian.PutUint16(l4[10:], ^uint16(s.id))
		binary.BigEndian.PutUint16(l4[2:], checksum(l4, 0))
	}
	p := make([]byte, ipHeaderLen+len(l4))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	binary.BigEndian.PutUint16(p[4:], s.id)
	binary.BigEndian.PutUint16(p[6:], 0x4000) // DF, as the flow's own TCP segments carry it
	p[8] = uint8(s.ttl)
	p[9] = proto
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	binary.BigEndian.PutUint16(p[10:], checksum(p[:ipHeaderLen], 0))
	copy(p[ipHeaderLen:], l4)
	return p
}

// TCP flags and ICMP types asym sends or reads.
const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10

	icmpEchoReply    = 0
	icmpUnreachable  = 3
	icmpEchoRequest  = 8
	icmpTimeExceeded = 11
)

// transportChecksum is the TCP/UDP checksum over the IPv4 pseudo-header.
func transportChecksum(src, dst [4]byte, proto uint8, l4 []byte) uint16 {
	var sum uint32
	for _, w := range [][]byte{src[:], dst[:]} {
		sum += uint32(binary.BigEndian.Uint16(w[0:])) + uint32(binary.BigEndian.Uint16(w[2:]))
	}
	sum += uint32(proto) + uint32(len(l4))
	return checksum(l4, sum)
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// quoted is the header of a probe as an ICMP error quotes it (or as it
// arrived): enough to find the probe and to see whether a translator
// rewrote it.
type quoted struct {
	id       uint16
	proto    uint8
	src, dst netip.AddrPort
	seq, ack uint32 // TCP
	flags    uint8  // TCP
	icmpID   uint16 // echo
	icmpSeq  uint16
	ttl      int
}

// parseIPv4 reads an IPv4 header and the first 8 bytes (more for TCP when
// present) of what it carries. ok is false for anything too short to be one.
func parseIPv4(b []byte) (q quoted, l4 []byte, ok bool) {
	if len(b) < ipHeaderLen || b[0]>>4 != 4 {
		return q, nil, false
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < ipHeaderLen || len(b) < ihl+8 {
		return q, nil, false
	}
	q.id = binary.BigEndian.Uint16(b[4:])
	q.ttl = int(b[8])
	q.proto = b[9]
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	l4 = b[ihl:]
	var sp, dp uint16
	switch q.proto {
	case 6:
		sp, dp = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		q.seq = binary.BigEndian.Uint32(l4[4:])
		if len(l4) >= 14 {
			q.ack = binary.BigEndian.Uint32(l4[8:])
			q.flags = l4[13]
		}
	case 17:
		sp, dp = binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
	case 1:
		q.icmpID, q.icmpSeq = binary.BigEndian.Uint16(l4[4:]), binary.BigEndian.Uint16(l4[6:])
	}
	q.src, q.dst = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return q, l4, true
}

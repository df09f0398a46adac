package capture

// The decoder: what the filter kept of a packet, read in user space into
// an evidence.CapturedPacket, with the typed fields analyzers use (the TCP
// flags byte, the ICMP header) and the words people read beside them.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"asym/evidence"

	"golang.org/x/sys/unix"
)

// bigEndian reads network-order fields.
var bigEndian = binary.BigEndian

// ipHeader is an IPv4 or IPv6 header, read.
type ipHeader struct {
	v6       bool
	src, dst netip.Addr
	proto    uint8 // IPv4 protocol, or the IPv6 header's next header
	total    int   // IP total length, header included
	hlen     int
	frag     bool   // a non-first IPv4 fragment: no L4 header
	l4       []byte // what follows the header, as far as captured; nil for a fragment
}

func parseIP(b []byte) (ipHeader, error) {
	if len(b) == 0 {
		return ipHeader{}, errors.New("the packet is empty")
	}
	switch b[0] >> 4 {
	case 4:
		if len(b) < 20 {
			return ipHeader{}, fmt.Errorf("the packet has %d bytes, less than an IPv4 header", len(b))
		}
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || hl > len(b) {
			return ipHeader{}, fmt.Errorf("the IPv4 header length %d does not fit the %d bytes captured", hl, len(b))
		}
		h := ipHeader{
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
			return ipHeader{}, fmt.Errorf("the packet has %d bytes, less than an IPv6 header", len(b))
		}
		return ipHeader{
			v6:  true,
			src: netip.AddrFrom16([16]byte(b[8:24])), dst: netip.AddrFrom16([16]byte(b[24:40])),
			proto: b[6], total: 40 + int(bigEndian.Uint16(b[4:])), hlen: 40, l4: b[40:],
		}, nil
	}
	return ipHeader{}, fmt.Errorf("the packet's IP version is %d, neither 4 nor 6", b[0]>>4)
}

// decoded is a parsed packet before it is placed (time, interface,
// direction, text).
type decoded struct {
	p        evidence.CapturedPacket // Src, Dst, Proto, TCP and Flags, ICMPMsg and ICMP, Len
	v6, frag bool
	ports    bool   // Src and Dst carry ports
	payload  int    // TCP or UDP payload bytes, the ICMP message length; -1 when unknown
	icmpText string // the ICMP message as tcpdump words it, when that differs from p.ICMP
	quoted   quotedPacket
}

// quotedPacket is the packet an ICMP error is about.
type quotedPacket struct {
	ok       bool
	proto    uint8
	src, dst netip.AddrPort
}

// decodePacket parses what the filter kept of a packet: IPv4 or IPv6, then
// TCP ports and flags, UDP ports, or the ICMP message and the packet an
// ICMP error quotes. A truncated L4 header leaves its fields empty.
func decodePacket(b []byte) (decoded, error) {
	h, err := parseIP(b)
	if err != nil {
		return decoded{}, err
	}
	d := decoded{v6: h.v6, frag: h.frag, payload: -1}
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

func (d *decoded) icmp4(l4 []byte) {
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

func (d *decoded) icmp6(l4 []byte) {
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

func (d *decoded) echo(l4 []byte, request bool) {
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
func (d *decoded) quote(l4 []byte) {
	if len(l4) < icmpErrQuote {
		return
	}
	h, err := parseIP(l4[icmpErrQuote:])
	if err != nil {
		return
	}
	d.quoted = quotedPacket{ok: true, proto: h.proto, src: netip.AddrPortFrom(h.src, 0), dst: netip.AddrPortFrom(h.dst, 0)}
	if (h.proto == unix.IPPROTO_TCP || h.proto == unix.IPPROTO_UDP) && len(h.l4) >= 4 {
		d.quoted.src = netip.AddrPortFrom(h.src, bigEndian.Uint16(h.l4))
		d.quoted.dst = netip.AddrPortFrom(h.dst, bigEndian.Uint16(h.l4[2:]))
	}
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

package capture

// The line tcpdump -n -i any would print for a packet, so that a person can
// hold asym's evidence against their own capture.

import (
	"net/netip"
	"strconv"
	"time"

	"asym/flow"

	"golang.org/x/sys/unix"
)

// text renders the line tcpdump -n -i any prints for the packet (its
// default verbosity, without sequence numbers and TCP options). It is built
// in a stack buffer with append-style formatting: one allocation, the
// string, instead of one per field.
func (d *decoded) text(ts time.Time, iface string, pkttype uint8) string {
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
	b = appendEndpoint(b, d.p.Src, d.ports)
	b = append(b, " > "...)
	b = appendEndpoint(b, d.p.Dst, d.ports)
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
			b = appendEndpoint(b, q.src, ports)
			b = append(b, " > "...)
			b = appendEndpoint(b, q.dst, ports)
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

// appendEndpoint appends an address as tcpdump writes it: "192.0.2.1.443", "2001:db8::1.443".
func appendEndpoint(b []byte, ap netip.AddrPort, port bool) []byte {
	b = ap.Addr().AppendTo(b)
	if port {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	}
	return b
}

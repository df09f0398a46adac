package drops

// The decoder: one event from the ring buffer read into an evidence.Drop,
// placed against the flow (which form, which direction) and written as a
// line for people.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

// event is the ring buffer's record, read.
type event struct {
	mono     uint64 // bpf_ktime_get_ns
	location uint64
	reason   uint32
	netns    uint32
	ifindex  uint32
	len      uint32
	ifname   string
	packet   []byte
}

func readEvent(b []byte) (event, error) {
	if len(b) < eventSize {
		return event{}, fmt.Errorf("a drop event of %d bytes, want %d", len(b), eventSize)
	}
	ne := binary.NativeEndian
	name := b[evIfname : evIfname+16]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	return event{
		mono: ne.Uint64(b[evTime:]), location: ne.Uint64(b[evLoc:]), reason: ne.Uint32(b[evReason:]),
		netns: ne.Uint32(b[evNetns:]), ifindex: ne.Uint32(b[evIfindex:]), len: ne.Uint32(b[evLen:]),
		ifname: string(name), packet: b[evPacket:eventSize],
	}, nil
}

// packet is what the decoder reads of the dropped packet.
type packet struct {
	v6       bool
	src, dst netip.AddrPort
	proto    uint8
	ports    bool
	tcp      evidence.TCPFlags
	icmp     *evidence.ICMPMessage
	quoted   bool // an ICMP error: qsrc and qdst are the packet it is about
	qsrc     netip.AddrPort
	qdst     netip.AddrPort
	total    int
}

func decodePacket(b []byte) (packet, error) {
	if len(b) == 0 {
		return packet{}, errors.New("no packet bytes")
	}
	h, l4, err := ipHeader(b)
	if err != nil {
		return packet{}, err
	}
	switch {
	case (h.proto == unix.IPPROTO_TCP || h.proto == unix.IPPROTO_UDP) && len(l4) >= 4:
		h.ports = true
		h.src = netip.AddrPortFrom(h.src.Addr(), binary.BigEndian.Uint16(l4))
		h.dst = netip.AddrPortFrom(h.dst.Addr(), binary.BigEndian.Uint16(l4[2:]))
		if h.proto == unix.IPPROTO_TCP && len(l4) >= 14 {
			h.tcp = evidence.TCPFlags(l4[13])
		}
	case (h.proto == unix.IPPROTO_ICMP && !h.v6 || h.proto == unix.IPPROTO_ICMPV6 && h.v6) && len(l4) >= 8:
		h.icmp = &evidence.ICMPMessage{V6: h.v6, Type: l4[0], Code: l4[1]}
		if h.icmp.TooBig() {
			if h.v6 {
				h.icmp.MTU = int(binary.BigEndian.Uint32(l4[4:]))
			} else {
				h.icmp.MTU = int(binary.BigEndian.Uint16(l4[6:]))
			}
		}
		if h.icmp.Error() {
			h.quote(l4[8:])
		}
	}
	return h, nil
}

// ipHeader reads an IPv4 or IPv6 header; l4 is what follows it (nil for
// an IPv4 fragment after the first).
func ipHeader(b []byte) (packet, []byte, error) {
	switch b[0] >> 4 {
	case 4:
		hl := int(b[0]&0x0f) * 4
		if hl < 20 || hl > len(b) {
			return packet{}, nil, fmt.Errorf("an IPv4 header of %d bytes in %d", hl, len(b))
		}
		p := packet{src: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[12:16])), 0), dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[16:20])), 0),
			proto: b[9], total: int(binary.BigEndian.Uint16(b[2:]))}
		if binary.BigEndian.Uint16(b[6:])&0x1fff != 0 {
			return p, nil, nil
		}
		return p, b[hl:], nil
	case 6:
		if len(b) < 40 {
			return packet{}, nil, fmt.Errorf("an IPv6 header in %d bytes", len(b))
		}
		return packet{v6: true, src: netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), 0), dst: netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[24:40])), 0),
			proto: b[6], total: 40 + int(binary.BigEndian.Uint16(b[4:]))}, b[40:], nil
	}
	return packet{}, nil, fmt.Errorf("IP version %d", b[0]>>4)
}

// quote reads the packet an ICMP error quotes: its addresses and, for TCP
// and UDP, its ports.
func (p *packet) quote(b []byte) {
	if len(b) == 0 {
		return
	}
	q, l4, err := ipHeader(b)
	if err != nil {
		return
	}
	p.quoted, p.qsrc, p.qdst = true, q.src, q.dst
	if (q.proto == unix.IPPROTO_TCP || q.proto == unix.IPPROTO_UDP) && len(l4) >= 4 {
		p.qsrc = netip.AddrPortFrom(q.src.Addr(), binary.BigEndian.Uint16(l4))
		p.qdst = netip.AddrPortFrom(q.dst.Addr(), binary.BigEndian.Uint16(l4[2:]))
	}
}

// owns says whether the form owns a packet with these endpoints, in
// either direction, and whether it goes the form's way (src first).
func (m *form) owns(src, dst netip.AddrPort) (ok, forward bool) {
	ports := func(sp, dp uint16) bool {
		return (m.sport == 0 || m.sport == sp) && (m.dport == 0 || m.dport == dp)
	}
	switch {
	case src.Addr() == m.src && dst.Addr() == m.dst && ports(src.Port(), dst.Port()):
		return true, true
	case src.Addr() == m.dst && dst.Addr() == m.src && ports(dst.Port(), src.Port()):
		return true, false
	}
	return false, false
}

// place finds the form a packet belongs to (the typed flow when no other
// owns it alone) and its direction. An ICMP error goes back to the source
// of the packet it quotes: a reply when that packet went the flow's way.
func place(forms []form, p packet) (m *form, reply bool) {
	src, dst := p.src, p.dst
	if p.quoted {
		src, dst = p.qsrc, p.qdst
	}
	m = &forms[0]
	if ok, _ := forms[0].owns(src, dst); !ok {
		for i := range forms[1:] {
			if ok, _ := forms[i+1].owns(src, dst); ok {
				m = &forms[i+1]
				break
			}
		}
	}
	_, forward := m.owns(src, dst)
	if p.quoted {
		return m, forward
	}
	return m, !forward
}

// decoder turns events into drops: the kernel's reason names, the clock,
// the symbols and the namespace's interface names.
type decoder struct {
	l     *layout
	forms []form
	ns    Namespace
	syms  *symbols
	// monoToWall is added to bpf_ktime_get_ns (CLOCK_MONOTONIC) to get the
	// wall clock, measured when the witness starts.
	monoToWall time.Duration
}

func newDecoder(l *layout, forms []form, ns Namespace) *decoder {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	now := time.Now()
	return &decoder{l: l, forms: forms, ns: ns, syms: newSymbols(),
		monoToWall: time.Duration(now.UnixNano() - ts.Nano())}
}

// drop decodes one event.
func (d *decoder) drop(e event) (evidence.Drop, error) {
	p, err := decodePacket(e.packet)
	if err != nil {
		return evidence.Drop{}, err
	}
	m, reply := place(d.forms, p)
	iface := e.ifname
	if iface == "" && e.ifindex != 0 {
		iface = d.ns.IfName(int(e.ifindex))
	}
	loc, off := d.syms.name(e.location)
	dr := evidence.Drop{
		Time: time.Unix(0, int64(e.mono)+int64(d.monoToWall)), Reason: d.l.reasonName(e.reason), ReasonCode: int(e.reason),
		Location: loc, Iface: iface, NetnsInode: uint64(e.netns),
		Src: p.src, Dst: p.dst, Proto: p.proto, TCP: p.tcp, ICMPMsg: p.icmp, Quoted: p.quoted,
		Len: p.total, Reply: reply, As: m.as,
	}
	dr.Text = text(dr, p, off)
	return dr, nil
}

// text is the drop's line: the packet much as tcpdump -n prints it (with
// the IP length, not the payload's), then the kernel's reason and where
// it was dropped.
func text(d evidence.Drop, p packet, off uint64) string {
	var arr [224]byte
	b := d.Time.AppendFormat(arr[:0], "15:04:05.000000")
	b = append(b, ' ')
	if d.Iface == "" {
		b = append(b, '-')
	} else {
		b = append(b, d.Iface...)
	}
	if p.v6 {
		b = append(b, " IP6 "...)
	} else {
		b = append(b, " IP "...)
	}
	b = appendEndpoint(b, p.src, p.ports)
	b = append(b, " > "...)
	b = appendEndpoint(b, p.dst, p.ports)
	b = append(b, ": "...)
	switch {
	case p.proto == unix.IPPROTO_TCP && p.ports:
		b = append(b, "Flags ["...)
		b = append(b, p.tcp.String()...)
		b = append(b, ']')
	case p.icmp != nil:
		b = append(b, "ICMP type "...)
		b = strconv.AppendUint(b, uint64(p.icmp.Type), 10)
		b = append(b, " code "...)
		b = strconv.AppendUint(b, uint64(p.icmp.Code), 10)
		if p.icmp.MTU > 0 {
			b = append(b, " mtu "...)
			b = strconv.AppendInt(b, int64(p.icmp.MTU), 10)
		}
		if p.quoted {
			b = append(b, " for "...)
			b = appendEndpoint(b, p.qsrc, p.qsrc.Port() != 0)
			b = append(b, " > "...)
			b = appendEndpoint(b, p.qdst, p.qdst.Port() != 0)
		}
	default:
		b = append(b, flow.Proto(p.proto).String()...)
	}
	b = append(b, ", ip length "...)
	b = strconv.AppendInt(b, int64(p.total), 10)
	b = append(b, " dropped: "...)
	b = append(b, d.Reason...)
	if d.Location != "" {
		b = append(b, " in "...)
		b = append(b, d.Location...)
		b = append(b, "+0x"...)
		b = strconv.AppendUint(b, off, 16)
	}
	return string(b)
}

func appendEndpoint(b []byte, ap netip.AddrPort, port bool) []byte {
	b = ap.Addr().AppendTo(b)
	if port {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(ap.Port()), 10)
	}
	return b
}

package drops

import (
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/flow"
)

// ipv4 builds an IPv4 header (no options) with DF and the given payload.
func ipv4(src, dst string, proto byte, payload []byte) []byte {
	h := make([]byte, 20, 20+len(payload))
	h[0] = 0x45
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	h[6] = 0x40
	h[8], h[9] = 64, proto
	copy(h[12:], netip.MustParseAddr(src).AsSlice())
	copy(h[16:], netip.MustParseAddr(dst).AsSlice())
	return append(h, payload...)
}

func ipv6(src, dst string, next byte, payload []byte) []byte {
	h := make([]byte, 40, 40+len(payload))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(len(payload)))
	h[6], h[7] = next, 64
	copy(h[8:], netip.MustParseAddr(src).AsSlice())
	copy(h[24:], netip.MustParseAddr(dst).AsSlice())
	return append(h, payload...)
}

func tcp(sport, dport uint16, flags byte) []byte {
	b := make([]byte, 20)
	binary.BigEndian.PutUint16(b, sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	b[12], b[13] = 5<<4, flags
	return b
}

// rawEvent lays an event out as the program writes it.
func rawEvent(reason, netns, ifindex uint32, ifname string, pkt []byte) []byte {
	b := make([]byte, eventSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[evTime:], 5e9)
	ne.PutUint64(b[evLoc:], 0xffffffff81000010)
	ne.PutUint32(b[evReason:], reason)
	ne.PutUint32(b[evNetns:], netns)
	ne.PutUint32(b[evIfindex:], ifindex)
	ne.PutUint32(b[evLen:], uint32(len(pkt)))
	copy(b[evIfname:evIfname+15], ifname)
	copy(b[evPacket:], pkt)
	return b
}

type names map[int]string

func (n names) Inode() uint64       { return 7 }
func (n names) IfName(i int) string { return n[i] }
func (n names) String() string      { return "netns test" }

func testDecoder(t *testing.T, f string, also ...string) *decoder {
	t.Helper()
	fl, err := flow.ParseString(f)
	if err != nil {
		t.Fatal(err)
	}
	var fs []flow.Flow
	for _, a := range also {
		x, err := flow.ParseString(a)
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, x)
	}
	forms, err := newForms(fl, fs)
	if err != nil {
		t.Fatal(err)
	}
	l := &layout{reasons: map[uint32]string{16: "IP_RPFILTER", 12: "NETFILTER_DROP", 93: "PKT_TOO_BIG"}, subsystems: map[uint32]string{}}
	kallsyms = "testdata/kallsyms"
	t.Cleanup(func() { kallsyms = "/proc/kallsyms" })
	d := newDecoder(l, forms, names{3: "eth1"})
	d.monoToWall = time.Duration(time.Date(2026, 12, 4, 8, 45, 41, 0, time.UTC).UnixNano()) - 5*time.Second
	return d
}

func TestDecodeDrops(t *testing.T) {
	cases := []struct {
		name   string
		flow   string
		also   []string
		ev     []byte
		text   string
		reply  bool
		what   string
		as     string
		quoted bool
	}{
		{name: "the SYN on eth1, name read by the program",
			flow: "tcp 203.0.113.10:40000 198.51.100.11:8080",
			ev:   rawEvent(16, 7, 3, "eth1", ipv4("203.0.113.10", "198.51.100.11", 6, tcp(40000, 8080, 0x02))),
			text: "08:45:41.000000 eth1 IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], ip length 40 dropped: IP_RPFILTER in ip_rcv_finish_core+0x10",
			what: "the SYN"},
		{name: "the SYN-ACK, a reply, interface named through the namespace",
			flow:  "tcp 203.0.113.10:40000 198.51.100.11:8080",
			ev:    rawEvent(12, 7, 3, "", ipv4("198.51.100.11", "203.0.113.10", 6, tcp(8080, 40000, 0x12))),
			text:  "08:45:41.000000 eth1 IP 198.51.100.11.8080 > 203.0.113.10.40000: Flags [S.], ip length 40 dropped: NETFILTER_DROP in ip_rcv_finish_core+0x10",
			reply: true, what: "the SYN-ACK"},
		{name: "the frag-needed about the flow, dropped before it had a device",
			flow: "tcp 192.0.2.10:40000 203.0.113.10:8080",
			ev: rawEvent(12, 7, 0, "", ipv4("198.51.100.1", "203.0.113.10", 1,
				append([]byte{3, 4, 0, 0, 0, 0, 0x05, 0x00}, ipv4("203.0.113.10", "192.0.2.10", 6, tcp(8080, 40000, 0x10))[:24]...))),
			text: "08:45:41.000000 - IP 198.51.100.1 > 203.0.113.10: ICMP type 3 code 4 mtu 1280 for 203.0.113.10.8080 > 192.0.2.10.40000, ip length 52 dropped: NETFILTER_DROP in ip_rcv_finish_core+0x10",
			// It quotes a packet of the reply: it goes back towards the
			// flow's destination, the request's way.
			reply: false, quoted: true, what: "an ICMP fragmentation-needed about the flow"},
		{name: "the translated form of the flow",
			flow: "tcp 192.0.2.10:40000 198.51.100.80:80", also: []string{"tcp 192.0.2.10:40000 203.0.113.10:8080"},
			ev:    rawEvent(93, 7, 3, "eth1", ipv4("203.0.113.10", "192.0.2.10", 6, tcp(8080, 40000, 0x18))),
			text:  "08:45:41.000000 eth1 IP 203.0.113.10.8080 > 192.0.2.10.40000: Flags [P.], ip length 40 dropped: PKT_TOO_BIG in ip_rcv_finish_core+0x10",
			reply: true, as: "tcp 192.0.2.10:40000 → 203.0.113.10:8080", what: "a 40-byte packet of the reply"},
		{name: "IPv6 UDP",
			flow: "udp [2001:db8::1]:5000 [2001:db8::2]:53",
			ev:   rawEvent(16, 7, 3, "eth1", ipv6("2001:db8::1", "2001:db8::2", 17, []byte{0x13, 0x88, 0, 53, 0, 8, 0, 0})),
			text: "08:45:41.000000 eth1 IP6 2001:db8::1.5000 > 2001:db8::2.53: udp, ip length 48 dropped: IP_RPFILTER in ip_rcv_finish_core+0x10",
			what: "a 48-byte packet of the request"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := testDecoder(t, c.flow, c.also...)
			e, err := readEvent(c.ev)
			if err != nil {
				t.Fatal(err)
			}
			dr, err := d.drop(e)
			if err != nil {
				t.Fatal(err)
			}
			if dr.Text != c.text {
				t.Errorf("text\n got %s\nwant %s", dr.Text, c.text)
			}
			if dr.Reply != c.reply || dr.Quoted != c.quoted || dr.What() != c.what {
				t.Errorf("reply %v quoted %v what %q, want %v %v %q", dr.Reply, dr.Quoted, dr.What(), c.reply, c.quoted, c.what)
			}
			as := ""
			if dr.As != nil {
				as = dr.As.Arrow()
			}
			if as != c.as {
				t.Errorf("form %q, want %q", as, c.as)
			}
			if dr.Location != "ip_rcv_finish_core" || dr.NetnsInode != 7 || dr.Iface != "eth1" && !strings.Contains(c.text, " - IP") {
				t.Errorf("location %q netns %d iface %q", dr.Location, dr.NetnsInode, dr.Iface)
			}
		})
	}
}

func TestReadEventShort(t *testing.T) {
	if _, err := readEvent(make([]byte, eventSize-1)); err == nil {
		t.Fatal("a short event was read")
	}
	d := testDecoder(t, "tcp 192.0.2.10:40000 203.0.113.10:8080")
	e, _ := readEvent(rawEvent(16, 7, 3, "eth1", []byte{0x50}))
	if _, err := d.drop(e); err == nil {
		t.Fatal("a packet of IP version 5 was decoded")
	}
}

// TestPortsWord: the constants the program compares with are the bytes of
// a TCP header as a native load sees them, and a port given as 0 is left
// out of the compare.
func TestPortsWord(t *testing.T) {
	hdr := tcp(40000, 8080, 0)
	v, m := portsWord(40000, 8080)
	if got := binary.NativeEndian.Uint32(hdr); got&m != v || m != 0xffffffff {
		t.Errorf("ports word %#x mask %#x, header loads as %#x", v, m, got)
	}
	v, m = portsWord(0, 8080)
	other := tcp(12345, 8080, 0)
	if got := binary.NativeEndian.Uint32(other); got&m != v {
		t.Errorf("any source port: %#x & %#x != %#x", got, m, v)
	}
	if _, m := portsWord(0, 0); m != 0 {
		t.Errorf("no ports: mask %#x", m)
	}
}

func TestSymbols(t *testing.T) {
	kallsyms = "testdata/kallsyms"
	defer func() { kallsyms = "/proc/kallsyms" }()
	s := newSymbols()
	for _, c := range []struct {
		addr uint64
		name string
		off  uint64
	}{
		{0xffffffff81000010, "ip_rcv_finish_core", 0x10},
		{0xffffffff81000200, "ip_rcv_finish", 0},
		{0xffffffff810002ff, "ip_rcv_finish", 0xff},
		{0xffffffffa0001004, "nft_do_chain", 4},
		{0x1000, "", 0},
	} {
		if n, off := s.name(c.addr); n != c.name || off != c.off {
			t.Errorf("%#x: %s+%#x, want %s+%#x", c.addr, n, off, c.name, c.off)
		}
	}
}

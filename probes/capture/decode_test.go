package capture

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

// TestCaptureDecode parses the recorded packets and checks every field and
// the tcpdump line.
func TestCaptureDecode(t *testing.T) {
	ts := time.Date(2024, 1, 2, 12, 0, 1, 1000, time.Local)
	lab := parseFlow(t, "tcp 203.0.113.10:40000 198.51.100.11:8080")
	big := parseFlow(t, "tcp 192.0.2.10:40500 198.51.100.20:8080")
	big6 := parseFlow(t, "tcp [2001:db8:a::10]:40500 [2001:db8:b::20]:8080")
	ap := netip.MustParseAddrPort
	cases := []struct {
		what    string
		flow    flow.Flow
		pkt     []byte
		iface   string
		pkttype uint8
		want    evidence.CapturedPacket
	}{
		{"SYN", lab, capRecSYN, "eth1", unix.PACKET_HOST, evidence.CapturedPacket{
			Dir: "in", Src: ap("203.0.113.10:40000"), Dst: ap("198.51.100.11:8080"), Proto: 6, TCP: evidence.TCPSyn, Flags: "S", Len: 60,
			Text: "12:00:01.000001 eth1 In  IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], length 0"}},
		{"SYN-ACK", lab, capRecSYNACK, "eth0", unix.PACKET_OUTGOING, evidence.CapturedPacket{
			Dir: "out", Src: ap("198.51.100.11:8080"), Dst: ap("203.0.113.10:40000"), Proto: 6, TCP: evidence.TCPSyn | evidence.TCPAck, Flags: "S.", Len: 60, Reply: true,
			Text: "12:00:01.000001 eth0 Out IP 198.51.100.11.8080 > 203.0.113.10.40000: Flags [S.], length 0"}},
		{"flooded SYN", lab, capRecSYN, "eth0", unix.PACKET_OTHERHOST, evidence.CapturedPacket{
			Dir: "in", OtherHost: true, Src: ap("203.0.113.10:40000"), Dst: ap("198.51.100.11:8080"), Proto: 6, TCP: evidence.TCPSyn, Flags: "S", Len: 60,
			Text: "12:00:01.000001 eth0 P   IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], length 0"}},
		{"RST", big, capRecRST, "eth0", unix.PACKET_OUTGOING, evidence.CapturedPacket{
			Dir: "out", Src: ap("192.0.2.10:40500"), Dst: ap("198.51.100.20:8080"), Proto: 6, TCP: evidence.TCPRst | evidence.TCPAck, Flags: "R.", Len: 52,
			Text: "12:00:01.000001 eth0 Out IP 192.0.2.10.40500 > 198.51.100.20.8080: Flags [R.], length 0"}},
		{"frag needed", big, capRecFragNeeded, "eth0", unix.PACKET_HOST, evidence.CapturedPacket{
			Dir: "in", Src: ap("192.0.2.1:0"), Dst: ap("192.0.2.10:0"), Proto: 1, ICMPMsg: &evidence.ICMPMessage{Type: 3, Code: 4, MTU: 1280}, ICMP: "unreachable (frag needed, mtu 1280)", Len: 576, Reply: true,
			Text: "12:00:01.000001 eth0 In  IP 192.0.2.1 > 192.0.2.10: ICMP unreachable (frag needed, mtu 1280) for tcp 192.0.2.10.40500 > 198.51.100.20.8080, length 556"}},
		{"IPv6 SYN", big6, capRecSYN6, "eth0", unix.PACKET_OUTGOING, evidence.CapturedPacket{
			Dir: "out", Src: ap("[2001:db8:a::10]:40500"), Dst: ap("[2001:db8:b::20]:8080"), Proto: 6, TCP: evidence.TCPSyn, Flags: "S", Len: 80,
			Text: "12:00:01.000001 eth0 Out IP6 2001:db8:a::10.40500 > 2001:db8:b::20.8080: Flags [S], length 0"}},
		{"IPv6 SYN-ACK", big6, capRecSYNACK6, "eth0", unix.PACKET_HOST, evidence.CapturedPacket{
			Dir: "in", Src: ap("[2001:db8:b::20]:8080"), Dst: ap("[2001:db8:a::10]:40500"), Proto: 6, TCP: evidence.TCPSyn | evidence.TCPAck, Flags: "S.", Len: 80, Reply: true,
			Text: "12:00:01.000001 eth0 In  IP6 2001:db8:b::20.8080 > 2001:db8:a::10.40500: Flags [S.], length 0"}},
		{"packet too big", big6, capRecTooBig, "eth0", unix.PACKET_HOST, evidence.CapturedPacket{
			Dir: "in", Src: ap("[2001:db8:a::1]:0"), Dst: ap("[2001:db8:a::10]:0"), Proto: 58, ICMPMsg: &evidence.ICMPMessage{V6: true, Type: 2, MTU: 1280}, ICMP: "packet too big (mtu 1280)", Len: 1280, Reply: true,
			Text: "12:00:01.000001 eth0 In  IP6 2001:db8:a::1 > 2001:db8:a::10: ICMP6, packet too big (mtu 1280) for tcp 2001:db8:a::10.40500 > 2001:db8:b::20.8080, length 1240"}},
		{"frag needed, seen from the other side", big.Reverse(), capRecFragNeeded, "eth0", unix.PACKET_HOST, evidence.CapturedPacket{
			Dir: "in", Src: ap("192.0.2.1:0"), Dst: ap("192.0.2.10:0"), Proto: 1, ICMPMsg: &evidence.ICMPMessage{Type: 3, Code: 4, MTU: 1280}, ICMP: "unreachable (frag needed, mtu 1280)", Len: 576,
			Text: "12:00:01.000001 eth0 In  IP 192.0.2.1 > 192.0.2.10: ICMP unreachable (frag needed, mtu 1280) for tcp 192.0.2.10.40500 > 198.51.100.20.8080, length 556"}},
		{"echo request", parseFlow(t, "icmp 192.0.2.10 198.51.100.20"), capEcho(8, "192.0.2.10", "198.51.100.20", 7, 1), "eth0", unix.PACKET_OUTGOING, evidence.CapturedPacket{
			Dir: "out", Src: ap("192.0.2.10:0"), Dst: ap("198.51.100.20:0"), Proto: 1, ICMPMsg: &evidence.ICMPMessage{Type: 8}, ICMP: "echo request id 7 seq 1", Len: 32,
			Text: "12:00:01.000001 eth0 Out IP 192.0.2.10 > 198.51.100.20: ICMP echo request, id 7, seq 1, length 12"}},
		{"echo6 reply", parseFlow(t, "icmp 2001:db8:a::10 2001:db8:b::20"), capEcho6(129, "2001:db8:b::20", "2001:db8:a::10"), "eth0", unix.PACKET_MULTICAST, evidence.CapturedPacket{
			Dir: "in", Src: ap("[2001:db8:b::20]:0"), Dst: ap("[2001:db8:a::10]:0"), Proto: 58, ICMPMsg: &evidence.ICMPMessage{V6: true, Type: 129}, ICMP: "echo reply id 7 seq 1", Len: 52, Reply: true,
			Text: "12:00:01.000001 eth0 M   IP6 2001:db8:b::20 > 2001:db8:a::10: ICMP6, echo reply, id 7, seq 1, length 12"}},
		{"port unreachable", big, append(capEdit(capRecFragNeeded[:28], 21, 3), capRecSYN[:28]...), "eth0", unix.PACKET_BROADCAST, evidence.CapturedPacket{
			Dir: "in", Src: ap("192.0.2.1:0"), Dst: ap("192.0.2.10:0"), Proto: 1, ICMPMsg: &evidence.ICMPMessage{Type: 3, Code: 3}, ICMP: "unreachable (port)", Len: 576,
			Text: "12:00:01.000001 eth0 B   IP 192.0.2.1 > 192.0.2.10: ICMP unreachable (port) for tcp 203.0.113.10.40000 > 198.51.100.11.8080, length 556"}},
	}
	for _, c := range cases {
		d, err := decodePacket(c.pkt)
		if err != nil {
			t.Errorf("%s: %v", c.what, err)
			continue
		}
		m, err := newFlowMatch(c.flow)
		if err != nil {
			t.Fatal(err)
		}
		got := m.finish(d, ts, c.iface, c.pkttype)
		c.want.Time, c.want.Iface = ts, c.iface
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", c.what, got, c.want)
		}
	}

	for _, c := range []struct {
		what string
		pkt  []byte
	}{
		{"empty", nil},
		{"cut in the IPv4 header", capRecSYN[:19]},
		{"IHL beyond the bytes", capEdit(capRecSYN[:22], 0, 0x46)},
		{"IHL below 5", capEdit(capRecSYN, 0, 0x44)},
		{"cut in the IPv6 header", capRecSYN6[:39]},
		{"IP version 5", capEdit(capRecSYN, 0, 0x55)},
	} {
		if _, err := decodePacket(c.pkt); err == nil {
			t.Errorf("%s: no error", c.what)
		}
	}
	// A short L4 header leaves its fields empty rather than failing.
	d, err := decodePacket(capRecSYN[:30])
	if err != nil || d.p.Flags != "" || d.p.Src.Port() != 40000 {
		t.Errorf("a cut TCP header: %+v %v", d.p, err)
	}
	if d, err := decodePacket(capRecFragNeeded[:30]); err != nil || d.quoted.ok || d.p.ICMP != "unreachable (frag needed, mtu 1280)" {
		t.Errorf("a cut ICMP error: %+v %v", d, err)
	}
}

func TestCaptureTCPFlags(t *testing.T) {
	for _, c := range []struct {
		f    byte
		ae   bool
		want string
	}{
		{0x02, false, "S"}, {0x12, false, "S."}, {0x10, false, "."}, {0x18, false, "P."},
		{0x11, false, "F."}, {0x19, false, "FP."}, {0x04, false, "R"}, {0x14, false, "R."},
		{0x00, false, "none"}, {0xc2, false, "SEW"}, {0x30, false, ".U"}, {0x12, true, "S.e"},
	} {
		if got := tcpFlags(c.f, c.ae); got != c.want {
			t.Errorf("flags %#02x ae=%v: got %q, want %q", c.f, c.ae, got, c.want)
		}
	}
}

func TestMACString(t *testing.T) {
	if got := macString([]byte{0x02, 0xab, 0, 0x10, 0xff, 0x01}); got != "02:ab:00:10:ff:01" {
		t.Errorf("got %q", got)
	}
}

// BenchmarkCaptureDecode is the user-space cost of one kept packet: parse,
// place and render the line.
func BenchmarkCaptureDecode(b *testing.B) {
	m, err := newFlowMatch(flow.Flow{Proto: flow.TCP,
		Src: netip.MustParseAddrPort("203.0.113.10:40000"), Dst: netip.MustParseAddrPort("198.51.100.11:8080")})
	if err != nil {
		b.Fatal(err)
	}
	ts := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		d, err := decodePacket(capRecSYN)
		if err != nil {
			b.Fatal(err)
		}
		m.finish(d, ts, "eth1", unix.PACKET_HOST)
	}
}

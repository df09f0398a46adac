package capture

import (
	"context"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

func TestCaptureControl(t *testing.T) {
	var ts unix.Timespec
	ts.Sec, ts.Nsec = 1700000000, 123456789
	aux := unix.TpacketAuxdata{Net: 14}
	tsLen, auxLen := int(unsafe.Sizeof(ts)), int(unsafe.Sizeof(aux))
	oob := make([]byte, unix.CmsgSpace(tsLen)+unix.CmsgSpace(auxLen))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(tsLen))
	*(*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = ts
	h2 := (*unix.Cmsghdr)(unsafe.Pointer(&oob[unix.CmsgSpace(tsLen)]))
	h2.Level, h2.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h2.SetLen(unix.CmsgLen(auxLen))
	*(*unix.TpacketAuxdata)(unsafe.Pointer(&oob[unix.CmsgSpace(tsLen)+unix.CmsgLen(0)])) = aux
	got, ok, net, netOK := readControl(oob)
	if !ok || !got.Equal(time.Unix(1700000000, 123456789)) || !netOK || net != 14 {
		t.Errorf("got %v %v, network header at %d %v", got, ok, net, netOK)
	}
	if _, ok, _, netOK := readControl(nil); ok || netOK {
		t.Error("control data from nothing")
	}
	h.Type = unix.SCM_RIGHTS
	if _, ok, _, netOK := readControl(oob); ok || !netOK {
		t.Errorf("SCM_RIGHTS is no timestamp, and the offset after it still counts: %v %v", ok, netOK)
	}
	h.SetLen(1 << 20)
	if _, ok, _, netOK := readControl(oob); ok || netOK {
		t.Error("control data from a message longer than its buffer")
	}
}

// capOOB is the control data the kernel attaches to a packet: its
// timestamp and the offset of its network header.
func capOOB(ts time.Time, netOff uint16) []byte {
	tspec := unix.NsecToTimespec(ts.UnixNano())
	aux := unix.TpacketAuxdata{Net: netOff}
	tsLen, auxLen := int(unsafe.Sizeof(tspec)), int(unsafe.Sizeof(aux))
	oob := make([]byte, unix.CmsgSpace(tsLen)+unix.CmsgSpace(auxLen))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_SOCKET, unix.SCM_TIMESTAMPNS
	h.SetLen(unix.CmsgLen(tsLen))
	*(*unix.Timespec)(unsafe.Pointer(&oob[unix.CmsgLen(0)])) = tspec
	h = (*unix.Cmsghdr)(unsafe.Pointer(&oob[unix.CmsgSpace(tsLen)]))
	h.Level, h.Type = unix.SOL_PACKET, unix.PACKET_AUXDATA
	h.SetLen(unix.CmsgLen(auxLen))
	*(*unix.TpacketAuxdata)(unsafe.Pointer(&oob[unix.CmsgSpace(tsLen)+unix.CmsgLen(0)])) = aux
	return oob
}

// capFrame is capRecSYN in an Ethernet frame from 02:00:00:00:00:01 to
// 02:00:00:00:00:02.
var capFrame = append([]byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00}, capRecSYN...)

// capNames is a namespace that only names interfaces.
type capNames map[int]string

func (capNames) InNS(context.Context, func() error) error { return nil }
func (n capNames) IfName(idx int) string                  { return n[idx] }
func (capNames) String() string                           { return "a test namespace" }

func capCapturer(t testing.TB, max int) *capturer {
	t.Helper()
	m, err := newFlowMatch(flow.Flow{Proto: flow.TCP,
		Src: netip.MustParseAddrPort("203.0.113.10:40000"), Dst: netip.MustParseAddrPort("198.51.100.11:8080")})
	if err != nil {
		t.Fatal(err)
	}
	return &capturer{ns: capNames{3: "eth1"}, forms: []flowMatch{m}, max: max, names: map[int]string{}}
}

// TestCapturePacket feeds the batch what the read loop would: a frame,
// its control data and where it came from.
func TestCapturePacket(t *testing.T) {
	ts := time.Date(2024, 1, 2, 12, 0, 1, 1000, time.Local)
	eth := &unix.SockaddrLinklayer{Ifindex: 3, Hatype: unix.ARPHRD_ETHER, Pkttype: unix.PACKET_HOST}
	c := capCapturer(t, 2)
	c.packet(capFrame, capOOB(ts, 14), eth)
	c.packet(capRecSYN, capOOB(ts, 0), &unix.SockaddrLinklayer{Ifindex: 3, Hatype: unix.ARPHRD_NONE, Pkttype: unix.PACKET_OUTGOING})
	if len(c.u.Packets) != 2 || c.u.Dropped != 0 {
		t.Fatalf("two packets in, got %d and %d dropped", len(c.u.Packets), c.u.Dropped)
	}
	p := c.u.Packets[0]
	if !p.Time.Equal(ts) || p.Iface != "eth1" || p.Dir != evidence.DirIn || !p.SYN() || p.SrcMAC != "02:00:00:00:00:01" || p.DstMAC != "02:00:00:00:00:02" {
		t.Errorf("the Ethernet frame: %+v", p)
	}
	if p := c.u.Packets[1]; p.Dir != evidence.DirOut || p.SrcMAC != "" || p.DstMAC != "" {
		t.Errorf("a frame without a link header has no MACs: %+v", p)
	}
	for _, tc := range []struct {
		what string
		c    *capturer
		b    []byte
		oob  []byte
		from unix.Sockaddr
	}{
		{"beyond the batch cap", c, capFrame, capOOB(ts, 14), eth},
		{"no network header offset", capCapturer(t, 2), capFrame, nil, eth},
		{"an offset past the frame", capCapturer(t, 2), capFrame, capOOB(ts, uint16(len(capFrame)+1)), eth},
		{"not from a packet socket", capCapturer(t, 2), capFrame, capOOB(ts, 14), &unix.SockaddrInet4{}},
		{"not IP", capCapturer(t, 2), capFrame, capOOB(ts, 13), eth},
	} {
		n := len(tc.c.u.Packets)
		tc.c.packet(tc.b, tc.oob, tc.from)
		if len(tc.c.u.Packets) != n || tc.c.u.Dropped != 1 {
			t.Errorf("%s: %d packets kept, %d dropped; want it counted as dropped", tc.what, len(tc.c.u.Packets)-n, tc.c.u.Dropped)
		}
	}
}

// BenchmarkCapturePacket is what the read loop does with one packet after
// the read: control data, decoding, placing, the line and both MACs.
func BenchmarkCapturePacket(b *testing.B) {
	c := capCapturer(b, 1)
	oob := capOOB(time.Now(), 14)
	from := &unix.SockaddrLinklayer{Ifindex: 3, Hatype: unix.ARPHRD_ETHER, Pkttype: unix.PACKET_HOST}
	b.ReportAllocs()
	for b.Loop() {
		c.u.Packets = c.u.Packets[:0]
		c.packet(capFrame, oob, from)
	}
	if len(c.u.Packets) != 1 {
		b.Fatal("the packet was not kept")
	}
}

package trace

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"

	"asym/evidence"
	"asym/flow"
)

// TestBuildCarriesTheTuple: every shape carries the flow's addresses and
// ports, the TTL and the IP ID it was given, valid checksums, and reads
// back the way an ICMP error quotes it.
func TestBuildCarriesTheTuple(t *testing.T) {
	f := tcpFlow("192.0.2.10", 40000, "203.0.113.10", 8080)
	u := f
	u.Proto = flow.UDP
	e := flow.Flow{Proto: flow.ICMP, Src: netip.AddrPortFrom(f.Src.Addr(), 0), Dst: netip.AddrPortFrom(f.Dst.Addr(), 0)}
	for _, tc := range []struct {
		tuple flow.Flow
		shape evidence.TraceShape
		flags uint8
	}{{f, evidence.ShapeSYN, tcpSYN}, {f.Reverse(), evidence.ShapeSYNACK, tcpSYN | tcpACK}, {u, evidence.ShapeUDP, 0}, {e, evidence.ShapeEcho, 0}, {e.Reverse(), evidence.ShapeReply, 0}} {
		id := probeID(0x5a, 7, 2)
		b := build(packetSpec{tuple: tc.tuple, shape: tc.shape, ttl: 7, id: id, seq: 0x12340000 + uint32(id)})
		q, l4, ok := parseIPv4(b)
		if !ok {
			t.Fatalf("%s: does not parse", tc.shape)
		}
		if q.id != id || q.ttl != 7 || q.proto != uint8(tc.tuple.Proto) || q.src.Addr() != tc.tuple.Src.Addr() || q.dst.Addr() != tc.tuple.Dst.Addr() {
			t.Errorf("%s: header %+v, want id %#x ttl 7 %s", tc.shape, q, id, tc.tuple)
		}
		if tc.tuple.Proto.HasPorts() && (q.src != tc.tuple.Src || q.dst != tc.tuple.Dst) {
			t.Errorf("%s: ports %s > %s, want %s", tc.shape, q.src, q.dst, tc.tuple)
		}
		if checksum(b[:ipHeaderLen], 0) != 0 {
			t.Errorf("%s: bad IP header checksum", tc.shape)
		}
		if tc.tuple.Proto.HasPorts() && transportChecksum(tc.tuple.Src.Addr().As4(), tc.tuple.Dst.Addr().As4(), q.proto, l4) != 0 {
			t.Errorf("%s: bad transport checksum", tc.shape)
		}
		if !tc.tuple.Proto.HasPorts() && checksum(l4, 0) != 0 {
			t.Errorf("%s: bad ICMP checksum", tc.shape)
		}
		if q.proto == 6 && q.flags != tc.flags {
			t.Errorf("%s: TCP flags %#x, want %#x", tc.shape, q.flags, tc.flags)
		}
		if got, ok := evidence.ProbeTTL(0x5a, q.id); !ok || got != 7 {
			t.Errorf("%s: the IP ID decodes to TTL %d (%v), want 7", tc.shape, got, ok)
		}
	}
}

// TestEchoChecksumConstant: the echo probes differ in their sequence
// number but not in their first four bytes (type, code, checksum), which is
// what some balancers hash.
func TestEchoChecksumConstant(t *testing.T) {
	e := flow.Flow{Proto: flow.ICMP, Src: netip.MustParseAddrPort("192.0.2.10:0"), Dst: netip.MustParseAddrPort("203.0.113.10:0")}
	var first uint32
	for i, id := range []uint16{probeID(1, 1, 0), probeID(1, 1, 1), probeID(200, 40, 3)} {
		b := build(packetSpec{tuple: e, shape: evidence.ShapeEcho, ttl: 1, id: id})
		head := binary.BigEndian.Uint32(b[ipHeaderLen:])
		if i == 0 {
			first = head
		} else if head != first {
			t.Errorf("probe %#x: first ICMP word %#x, want %#x", id, head, first)
		}
	}
}

// TestFilters: the answer filters pass what answers the run and nothing
// else, run through the same BPF the kernel runs.
func TestFilters(t *testing.T) {
	f := tcpFlow("192.0.2.10", 40000, "203.0.113.10", 8080)
	probe := build(packetSpec{tuple: f, shape: evidence.ShapeSYN, ttl: 3, id: probeID(9, 3, 0), seq: 1})
	other := build(packetSpec{tuple: f, shape: evidence.ShapeSYN, ttl: 3, id: probeID(10, 3, 0), seq: 1})
	icmp := func(typ uint8, quoted []byte) []byte {
		inner := append([]byte{typ, 0, 0, 0, 0, 0, 0, 0}, quoted...)
		return append(build(packetSpec{tuple: flow.Flow{Proto: flow.ICMP, Src: netip.MustParseAddrPort("198.51.100.1:0"), Dst: f.Src}, shape: evidence.ShapeEcho, ttl: 60, id: 1})[:ipHeaderLen], inner...)
	}
	vm, err := bpf.NewVM(icmpFilter(6, 9, 0x4242))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pkt  []byte
		pass bool
	}{
		{"time exceeded quoting a probe", icmp(icmpTimeExceeded, probe), true},
		{"unreachable quoting a probe", icmp(icmpUnreachable, probe), true},
		{"time exceeded quoting another run's probe", icmp(icmpTimeExceeded, other), false},
		{"an echo request", icmp(icmpEchoRequest, probe), false},
	} {
		// The ICMP packet is hand-made: its IP protocol field is irrelevant to a raw ICMP socket's filter.
		n, err := vm.Run(tc.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
	tvm, err := bpf.NewVM(tupleFilter(f.Dst, f.Src))
	if err != nil {
		t.Fatal(err)
	}
	answer := build(packetSpec{tuple: f.Reverse(), shape: evidence.ShapeSYNACK, ttl: 60, id: 5, seq: 2})
	for _, tc := range []struct {
		name string
		pkt  []byte
		pass bool
	}{{"the destination's answer", answer, true}, {"the probe itself", probe, false}} {
		n, err := tvm.Run(tc.pkt)
		if err != nil {
			t.Fatal(err)
		}
		if (n > 0) != tc.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tc.name, n, tc.pass)
		}
	}
}

// TestArrivedHops: the far end's arrivals count the hops from the TTL
// each probe was sent with (in its IP ID) and the TTL it arrived with;
// another run's packets do not count.
func TestArrivedHops(t *testing.T) {
	p := evidence.TracePath{IDBase: 9, Arrived: []evidence.TraceArrival{
		{ID: probeID(9, 5, 0), TTL: 2}, {ID: probeID(9, 4, 1), TTL: 1}, {ID: probeID(8, 2, 0), TTL: 1}, {ID: 0x0004, TTL: 60},
	}}
	if got := p.ArrivedHops(); got != 4 {
		t.Errorf("ArrivedHops = %d, want 4 (sent with TTL 4, arrived with 1)", got)
	}
}

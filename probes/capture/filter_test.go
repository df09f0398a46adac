package capture

import (
	"net/netip"
	"testing"
	"time"

	"asym/flow"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// capVM runs the filter in x/net/bpf's VM. The VM implements no
// SKF_AD_PROTOCOL; the one load of it is replaced by the constant the
// kernel would load, the frame's EtherType.
func capVM(t *testing.T, f flow.Flow, ethertype uint32, pkt []byte, also ...flow.Flow) int {
	t.Helper()
	raw, err := Filter(f, also...)
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	n := 0
	for i, in := range ins {
		if e, ok := in.(bpf.LoadExtension); ok && e.Num == bpf.ExtProto {
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: ethertype}
			n++
		}
	}
	ins = vmOffsets(t, ins)
	if n != 1 {
		t.Fatalf("the filter loads the protocol %d times, want once", n)
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("the VM refuses the filter: %v", err)
	}
	got, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return got
}

// TestCaptureFilterVM runs the filter over the recorded packets and over
// variants that differ in one thing each.
func TestCaptureFilterVM(t *testing.T) {
	const ip4, ip6 = unix.ETH_P_IP, unix.ETH_P_IPV6
	lab := "tcp 203.0.113.10:40000 198.51.100.11:8080"
	big := "tcp 192.0.2.10:40500 198.51.100.20:8080"
	big6 := "tcp [2001:db8:a::10]:40500 [2001:db8:b::20]:8080"
	ping := "icmp 192.0.2.10 198.51.100.20"
	ping6 := "icmp 2001:db8:a::10 2001:db8:b::20"
	cases := []struct {
		what  string
		flow  string
		proto uint32
		pkt   []byte
		match bool
	}{
		{"the SYN", lab, ip4, capRecSYN, true},
		{"the SYN-ACK", lab, ip4, capRecSYNACK, true},
		{"another source port", lab, ip4, capEdit(capRecSYN, 20, 0x9c, 0x41), false},
		{"another destination port", lab, ip4, capEdit(capRecSYN, 22, 0x1f, 0x91), false},
		{"the ports swapped", lab, ip4, capEdit(capRecSYN, 20, 0x1f, 0x90, 0x9c, 0x40), false},
		{"another destination", lab, ip4, capEdit(capRecSYN, 19, 12), false},
		{"another source", lab, ip4, capEdit(capRecSYN, 15, 11), false},
		{"both addresses the source's", lab, ip4, capEdit(capRecSYN, 16, 203, 0, 113, 10), false},
		{"udp, same ports", lab, ip4, capEdit(capRecSYN, 9, unix.IPPROTO_UDP), false},
		{"IP options (IHL 6)", lab, ip4, capOptions(capRecSYN, 0), true},
		{"IP options, another port", lab, ip4, capEdit(capOptions(capRecSYN, 0), 24, 0x9c, 0x41), false},
		{"a later fragment", lab, ip4, capEdit(capRecSYN, 6, 0x00, 0xb9), false},
		{"the first fragment (MF set)", lab, ip4, capEdit(capRecSYN, 6, 0x20, 0x00), true},
		{"not IPv4 by EtherType", lab, ip6, capRecSYN, false},
		{"a flow without the source port: any", "tcp 203.0.113.10 198.51.100.11:8080", ip4, capEdit(capRecSYN, 20, 0x9c, 0x41), true},
		{"a flow without the source port: its reply", "tcp 203.0.113.10 198.51.100.11:8080", ip4, capRecSYNACK, true},
		{"a flow without the source port: another destination port", "tcp 203.0.113.10 198.51.100.11:8080", ip4, capEdit(capRecSYN, 22, 0x1f, 0x91), false},
		{"a flow without ports", "tcp 203.0.113.10 198.51.100.11", ip4, capEdit(capRecSYNACK, 20, 0, 1, 0, 2), true},

		{"the RST", big, ip4, capRecRST, true},
		{"frag needed", big, ip4, capRecFragNeeded, true},
		{"frag needed, outer IP options", big, ip4, capOptions(capRecFragNeeded, 0), true},
		{"frag needed, quoted IP options", big, ip4, capOptions(capRecFragNeeded, 28), true},
		{"frag needed, both with options, another quoted port", big, ip4, capEdit(capOptions(capOptions(capRecFragNeeded, 0), 32), 56, 0x9e, 0x35), false},
		{"frag needed for another source port", big, ip4, capEdit(capRecFragNeeded, 48, 0x9e, 0x35), false},
		{"frag needed for another destination", big, ip4, capEdit(capRecFragNeeded, 47, 21), false},
		{"frag needed for a later fragment", big, ip4, capEdit(capRecFragNeeded, 34, 0x00, 0xb9), false},
		{"time exceeded", big, ip4, capEdit(capRecFragNeeded, 20, 11, 0), true},
		{"a redirect", big, ip4, capEdit(capRecFragNeeded, 20, 5, 1), false},
		{"frag needed for the udp flow", "udp 192.0.2.10:40500 198.51.100.20:8080", ip4, capRecFragNeeded, false},
		{"frag needed for the reply", "tcp 198.51.100.20:8080 192.0.2.10:40500", ip4, capRecFragNeeded, true},

		{"the IPv6 SYN", big6, ip6, capRecSYN6, true},
		{"the IPv6 SYN-ACK", big6, ip6, capRecSYNACK6, true},
		{"IPv6 another destination", big6, ip6, capEdit(capRecSYN6, 39, 0x21), false},
		{"IPv6 another source port", big6, ip6, capEdit(capRecSYN6, 40, 0x9e, 0x35), false},
		{"IPv6 the ports swapped", big6, ip6, capEdit(capRecSYN6, 40, 0x1f, 0x90, 0x9e, 0x34), false},
		{"IPv6 a hop-by-hop header first (not followed)", big6, ip6, capEdit(capRecSYN6, 6, 0), false},
		{"not IPv6 by EtherType", big6, ip4, capRecSYN6, false},
		{"packet too big", big6, ip6, capRecTooBig, true},
		{"packet too big for another destination port", big6, ip6, capEdit(capRecTooBig, 90, 0x1f, 0x91), false},
		{"packet too big for another source", big6, ip6, capEdit(capRecTooBig, 71, 0x11), false},
		{"IPv6 destination unreachable", big6, ip6, capEdit(capRecTooBig, 40, 1, 4), true},
		{"IPv6 parameter problem", big6, ip6, capEdit(capRecTooBig, 40, 4, 0), false},
		{"packet too big for the udp flow", "udp [2001:db8:a::10]:40500 [2001:db8:b::20]:8080", ip6, capRecTooBig, false},

		{"echo request", ping, ip4, capEcho(8, "192.0.2.10", "198.51.100.20", 7, 1), true},
		{"echo reply", ping, ip4, capEcho(0, "198.51.100.20", "192.0.2.10", 7, 1), true},
		{"echo to another host", ping, ip4, capEcho(8, "192.0.2.10", "198.51.100.21", 7, 1), false},
		{"a timestamp request", ping, ip4, capEcho(13, "192.0.2.10", "198.51.100.20", 7, 1), false},
		{"tcp between the two", ping, ip4, capRecFragNeeded[28:], false},
		{"unreachable quoting an echo", ping, ip4, append(capEcho(3, "192.0.2.1", "192.0.2.10", 0, 0)[:28], capEcho(8, "192.0.2.10", "198.51.100.20", 7, 1)...), true},
		{"unreachable quoting tcp", ping, ip4, capRecFragNeeded, false},
		{"echo6 request", ping6, ip6, capEcho6(128, "2001:db8:a::10", "2001:db8:b::20"), true},
		{"echo6 reply", ping6, ip6, capEcho6(129, "2001:db8:b::20", "2001:db8:a::10"), true},
		{"neighbour advertisement", ping6, ip6, capEcho6(136, "2001:db8:b::20", "2001:db8:a::10"), false},
		{"echo6 to another host", ping6, ip6, capEcho6(128, "2001:db8:a::10", "2001:db8:b::21"), false},
	}
	for _, c := range cases {
		got := capVM(t, parseFlow(t, c.flow), c.proto, c.pkt)
		want := 0
		if c.match {
			want = snapLen + l2Room
		}
		if got != want {
			t.Errorf("%s (%s): the filter keeps %d bytes, want %d", c.what, c.flow, got, want)
		}
	}
	for _, s := range []string{lab, big6, ping, ping6, "udp 192.0.2.1 192.0.2.2"} {
		raw, _ := Filter(parseFlow(t, s))
		t.Logf("%s: %d instructions", s, len(raw))
	}
}

// BenchmarkCaptureFilterVM is the filter's worst path for a TCP flow (an
// ICMP error quoting the flow, both headers with options) in the Go VM:
// a relative measure of the program, not of the kernel's JIT.
func BenchmarkCaptureFilterVM(b *testing.B) {
	raw, err := Filter(flow.Flow{Proto: flow.TCP,
		Src: netip.MustParseAddrPort("192.0.2.10:40500"), Dst: netip.MustParseAddrPort("198.51.100.20:8080")})
	if err != nil {
		b.Fatal(err)
	}
	ins, _ := bpf.Disassemble(raw)
	ins[0] = bpf.LoadConstant{Dst: bpf.RegA, Val: unix.ETH_P_IP}
	vm, err := bpf.NewVM(vmOffsets(b, ins))
	if err != nil {
		b.Fatal(err)
	}
	pkt := capOptions(capOptions(capRecFragNeeded, 0), 32)
	for b.Loop() {
		if n, _ := vm.Run(pkt); n != snapLen+l2Room {
			b.Fatal("no match")
		}
	}
}

// vmOffsets turns the filter's SKF_NET_OFF-relative loads into plain
// offsets for x/net/bpf's VM, which runs on the IP packet itself (the
// kernel resolves SKF_NET_OFF to the network header). Every load must be
// network-relative: one that is not would read the link header in the
// kernel, and fails the test here.
func vmOffsets(t testing.TB, ins []bpf.Instruction) []bpf.Instruction {
	t.Helper()
	rebase := func(off uint32) uint32 {
		if off < skfNetOff {
			t.Fatalf("a load at %#x is not relative to the network header", off)
		}
		return off - skfNetOff
	}
	for i, in := range ins {
		switch v := in.(type) {
		case bpf.LoadAbsolute:
			v.Off = rebase(v.Off)
			ins[i] = v
		case bpf.LoadIndirect:
			v.Off = rebase(v.Off)
			ins[i] = v
		case bpf.LoadMemShift:
			v.Off = rebase(v.Off)
			ins[i] = v
		}
	}
	return ins
}

// TestCaptureFilterForms: the flow's other forms (as a NAT translated it,
// or sent from another source) are captured too, each packet placed
// against the form it belongs to: the client typed the VIP, the packets
// on the inside carry the server's address.
func TestCaptureFilterForms(t *testing.T) {
	const ip4 = unix.ETH_P_IP
	typed := parseFlow(t, "tcp 203.0.113.10:40000 203.0.113.80:80")
	inside := parseFlow(t, "tcp 203.0.113.10:40000 198.51.100.11:8080")
	other := parseFlow(t, "tcp 192.0.2.99:40000 198.51.100.11:8080")
	if got := capVM(t, typed, ip4, capRecSYN); got != 0 {
		t.Errorf("without its forms the typed flow's filter keeps the inside SYN (%d bytes)", got)
	}
	for _, c := range []struct {
		what string
		pkt  []byte
	}{{"the inside SYN", capRecSYN}, {"the inside SYN-ACK", capRecSYNACK}, {"frag needed about the inside flow", capEdit(capRecFragNeeded, 40, 203, 0, 113, 10, 198, 51, 100, 11, 0x9c, 0x40, 0x1f, 0x90)}} {
		if got := capVM(t, typed, ip4, c.pkt, other, inside); got != snapLen+l2Room {
			t.Errorf("%s: the filter with the NAT form keeps %d bytes", c.what, got)
		}
	}
	if got := capVM(t, typed, ip4, capEdit(capRecSYN, 20, 0x9c, 0x41), inside); got != 0 {
		t.Errorf("another source port of the inside form is kept (%d bytes)", got)
	}
	forms, err := newMatches(typed, []flow.Flow{inside, typed.Reverse(), inside})
	if err != nil || len(forms) != 2 {
		t.Fatalf("forms %d, %v: the reverse and a repeat are not forms of their own", len(forms), err)
	}
	ts := time.Date(2024, 1, 2, 12, 0, 1, 0, time.UTC)
	for _, c := range []struct {
		pkt   []byte
		reply bool
	}{{capRecSYN, false}, {capRecSYNACK, true}} {
		d, err := decodePacket(c.pkt)
		if err != nil {
			t.Fatal(err)
		}
		p := place(forms, d, ts, "eth1", unix.PACKET_HOST)
		if p.As == nil || *p.As != inside || p.Reply != c.reply {
			t.Errorf("%s: placed as %v, reply %v; want the inside form, reply %v", p.Text, p.As, p.Reply, c.reply)
		}
	}
}

package capture

import (
	"encoding/hex"
	"net/netip"
	"testing"

	"asym/flow"
)

// parseFlow parses a flow as asym's command line takes it ("tcp
// 192.0.2.10:40000 192.0.2.20:8080"), failing the test if it does not parse.
func parseFlow(t testing.TB, s string) flow.Flow {
	t.Helper()
	f, err := flow.ParseString(s)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Packets recorded from the kernel by this capture (SOCK_DGRAM, so from the
// IP header; cut at the 128-byte snap): the lab's two-nics-fabric handshake,
// and from the filter tests' namespaces, a 1400-byte TCP segment from A met
// by the narrow link's "frag needed" (IPv4) and "packet too big" (IPv6).
var (
	// tcp 203.0.113.10:40000 > 198.51.100.11:8080 SYN, options mss,sackOK,TS,nop,wscale.
	capRecSYN = capHex("4500003ca6b040003f062ec2cb00710ac633640b9c401f90a1ac281300000000a002faf066780000020405b40402080a355dfc49000000000103030a")
	// its SYN-ACK.
	capRecSYNACK = capHex("4500003c000040004006d472c633640bcb00710a1f909c4048e24082a1ac2814a012fe8866780000020405b40402080a4dfe9caa355dfc490103030a")
	// tcp 192.0.2.10:40500 > 198.51.100.20:8080 RST-ACK.
	capRecRST = capHex("450000344c2a400040060248c000020ac63364149e341f9037834d81b3a6a8c38014003fec7800000101080a40b3502b039d591c")
	// 192.0.2.1 > 192.0.2.10 ICMP unreachable, frag needed, mtu 1280, quoting
	// tcp 192.0.2.10:40500 > 198.51.100.20:8080 [P.] of 1400 bytes.
	capRecFragNeeded = capHex("45c00240579e000040019c53c0000201c000020a0304945600000500450005ac4c2640004006fcd3c000020ac63364149e341f9037834809b3a6a8c28018003ff1f000000101080a40b3502b039d591b610000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000")
	// tcp [2001:db8:a::10]:40500 > [2001:db8:b::20]:8080 SYN.
	capRecSYN6 = capHex("600e424e0028064020010db8000a0000000000000000001020010db8000b000000000000000000209e341f90a8e6c66000000000a002fd205be50000020405a00402080ada023c79000000000103030a")
	// its SYN-ACK.
	capRecSYNACK6 = capHex("600fb4080028063f20010db8000b0000000000000000002020010db8000a000000000000000000101f909e34b40d28e8a8e6c661a012fb045be50000020405a00402080a5604b1bada023c790103030a")
	// 2001:db8:a::1 > 2001:db8:a::10 ICMPv6 packet too big, mtu 1280, quoting
	// tcp [2001:db8:a::10]:40500 > [2001:db8:b::20]:8080 [P.] of 1400 bytes.
	capRecTooBig = capHex("600fa4bd04d83a4020010db8000a0000000000000000000120010db8000a0000000000000000001002001a7200000500600e424e0598064020010db8000a0000000000000000001020010db8000b000000000000000000209e341f90a8e6c661b40d28e980180040615500000101080ada023c795604b1ba6100000000000000")
)

func capHex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// capEdit returns a copy of b with bytes at off replaced.
func capEdit(b []byte, off int, with ...byte) []byte {
	c := append([]byte(nil), b...)
	copy(c[off:], with)
	return c
}

// capOptions returns a copy of an IPv4 packet with 4 bytes of options
// (NOPs) inserted after the header at off, whose IHL grows by one. Total
// length is left alone: neither the filter nor the parser read it for offsets.
func capOptions(b []byte, off int) []byte {
	c := append([]byte(nil), b[:off+20]...)
	c[off]++
	c = append(c, 1, 1, 1, 1)
	return append(c, b[off+20:]...)
}

// capEcho builds an ICMP echo (request or reply) between two IPv4 addresses.
func capEcho(typ byte, src, dst string, id, seq byte) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	b := []byte{0x45, 0, 0, 32, 0, 0, 0x40, 0, 64, 1, 0, 0}
	b = append(append(b, s[:]...), d[:]...)
	return append(b, typ, 0, 0, 0, 0, id, 0, seq, 'a', 's', 'y', 'm')
}

// capEcho6 builds an ICMPv6 message of a type between two IPv6 addresses.
func capEcho6(typ byte, src, dst string) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	b := []byte{0x60, 0, 0, 0, 0, 12, 58, 64}
	b = append(append(b, s[:]...), d[:]...)
	return append(b, typ, 0, 0, 0, 0, 7, 0, 1, 'a', 's', 'y', 'm')
}

package watch

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"asym/flow"

	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Synthetic ctnetlink events, for what needs no kernel.

type ctTestTuple struct {
	src, dst     string
	proto        uint8
	sport, dport uint16
}

// Attributes only the tests write (nfnetlink_conntrack.h).
const (
	ctaTestStatus    = 3  // CTA_STATUS, be32
	ctaTestProtoInfo = 4  // CTA_PROTOINFO
	ctaTestTimeout   = 7  // CTA_TIMEOUT, be32
	ctaTestID        = 12 // CTA_ID, be32
	ctaTestInfoTCP   = 1  // CTA_PROTOINFO_TCP
	ctaTestTCPState  = 1  // CTA_PROTOINFO_TCP_STATE
	ipsConfirmed     = 1 << 3
	ipsSeenReply     = 1 << 1
)

// ctTestMsg builds an event as ctnetlink_conntrack_event lays it out:
// nlmsghdr, nfgenmsg, both tuples first, then status, timeout, protoinfo, id.
func ctTestMsg(tb testing.TB, msgType uint8, flags mdnetlink.HeaderFlags, orig, reply ctTestTuple, status uint32, tcpState uint8) []byte {
	tb.Helper()
	tuple := func(tt ctTestTuple) func(*mdnetlink.AttributeEncoder) error {
		return func(ae *mdnetlink.AttributeEncoder) error {
			s, d := netip.MustParseAddr(tt.src), netip.MustParseAddr(tt.dst)
			ae.Nested(ctaTupleIP, func(ip *mdnetlink.AttributeEncoder) error {
				if s.Is4() {
					ip.Bytes(ctaIPv4Src, s.AsSlice())
					ip.Bytes(ctaIPv4Dst, d.AsSlice())
				} else {
					ip.Bytes(ctaIPv6Src, s.AsSlice())
					ip.Bytes(ctaIPv6Dst, d.AsSlice())
				}
				return nil
			})
			ae.Nested(ctaTupleProto, func(p *mdnetlink.AttributeEncoder) error {
				p.Uint8(ctaProtoNum, tt.proto)
				if tt.proto == unix.IPPROTO_TCP || tt.proto == unix.IPPROTO_UDP {
					p.Uint16(ctaProtoSrcPort, tt.sport)
					p.Uint16(ctaProtoDstPort, tt.dport)
				}
				return nil
			})
			return nil
		}
	}
	ae := mdnetlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian // ctnetlink values are network order
	ae.Nested(ctaTupleOrig, tuple(orig))
	ae.Nested(ctaTupleReply, tuple(reply))
	ae.Uint32(ctaTestStatus, status)
	ae.Uint32(ctaTestTimeout, 120)
	if orig.proto == unix.IPPROTO_TCP {
		ae.Nested(ctaTestProtoInfo, func(pi *mdnetlink.AttributeEncoder) error {
			pi.Nested(ctaTestInfoTCP, func(tcp *mdnetlink.AttributeEncoder) error {
				tcp.Uint8(ctaTestTCPState, tcpState)
				return nil
			})
			return nil
		})
	}
	ae.Uint32(ctaTestID, 0x12345678)
	data, err := ae.Encode()
	if err != nil {
		tb.Fatal(err)
	}
	fam := byte(unix.AF_INET)
	if netip.MustParseAddr(orig.src).Is6() {
		fam = unix.AF_INET6
	}
	data = append([]byte{fam, unix.NFNETLINK_V0, 0, 0}, data...)
	m := mdnetlink.Message{
		Header: mdnetlink.Header{
			Length: uint32(nlmsgHdrLen + len(data)),
			Type:   mdnetlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | uint16(msgType)),
			Flags:  flags,
		},
		Data: data,
	}
	b, err := m.MarshalBinary()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestWatchMatcher(t *testing.T) {
	fwd := ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}
	back := ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}
	natBack := ctTestTuple{"203.0.113.10", "198.51.100.1", 6, 8080, 61000} // SNAT to 198.51.100.1:61000
	for _, tc := range []struct {
		name        string
		flow        string
		orig, reply ctTestTuple
		want        ctHit
	}{
		{"as typed", "tcp 192.0.2.10:40000 203.0.113.10:8080", fwd, back, ctHitOrig},
		{"reversed", "tcp 203.0.113.10:8080 192.0.2.10:40000", fwd, back, ctHitReply},
		{"other source port", "tcp 192.0.2.10:40001 203.0.113.10:8080", fwd, back, ctNoHit},
		{"other destination port", "tcp 192.0.2.10:40000 203.0.113.10:8081", fwd, back, ctNoHit},
		{"other address", "tcp 192.0.2.11:40000 203.0.113.10:8080", fwd, back, ctNoHit},
		{"other protocol", "udp 192.0.2.10:40000 203.0.113.10:8080", fwd, back, ctNoHit},
		{"no ports", "tcp 192.0.2.10 203.0.113.10", fwd, back, ctHitOrig},
		{"no ports, reversed", "tcp 203.0.113.10 192.0.2.10", fwd, back, ctHitReply},
		{"destination port only", "tcp 192.0.2.10 203.0.113.10:8080", fwd, back, ctHitOrig},
		{"destination port only, other", "tcp 192.0.2.10 203.0.113.10:443", fwd, back, ctNoHit},
		// Behind SNAT the far side answers the rewritten source: the flow
		// as seen after NAT is neither tuple, its reverse is the reply.
		{"after SNAT", "tcp 198.51.100.1:61000 203.0.113.10:8080", fwd, natBack, ctHitReplyRev},
		{"reply before NAT", "tcp 203.0.113.10:8080 192.0.2.10:40000", fwd, natBack, ctHitOrigRev},
		{"IPv6", "tcp [2001:db8::1]:40000 [2001:db8::2]:443",
			ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 443}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 443, 40000}, ctHitOrig},
		{"IPv6 event, IPv4 flow", "tcp 192.0.2.10:40000 203.0.113.10:8080",
			ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 8080}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 8080, 40000}, ctNoHit},
		{"ICMP by addresses", "icmp 192.0.2.10 203.0.113.10",
			ctTestTuple{"192.0.2.10", "203.0.113.10", 1, 0, 0}, ctTestTuple{"203.0.113.10", "192.0.2.10", 1, 0, 0}, ctHitOrig},
	} {
		f := parseFlow(t, tc.flow)
		m, err := newCtMatcher(f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		msg := ctTestMsg(t, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl, tc.orig, tc.reply, ipsConfirmed, 1)
		if got := m.match(msg); got != tc.want {
			t.Errorf("%s: match = %d, want %d", tc.name, got, tc.want)
		}
		// A message cut anywhere must not make the walk panic.
		for n := range len(msg) {
			m.match(msg[:n])
		}
	}
	if _, err := newCtMatcher(flow.Flow{Proto: flow.TCP}); err == nil {
		t.Error("a flow without addresses: no error")
	}
}

// BenchmarkWatchFilter is the per-event cost of the filter on events of
// other flows, what a busy firewall sends 50,000 times a second.
func BenchmarkWatchFilter(b *testing.B) {
	f, _ := flow.ParseString("tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	for _, bc := range []struct {
		name        string
		orig, reply ctTestTuple
	}{
		{"other addresses", ctTestTuple{"198.51.100.7", "203.0.113.99", 6, 51000, 443}, ctTestTuple{"203.0.113.99", "198.51.100.7", 6, 443, 51000}},
		{"same hosts other port", ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40001, 8080}, ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40001}},
		{"IPv6", ctTestTuple{"2001:db8::1", "2001:db8::2", 6, 40000, 8080}, ctTestTuple{"2001:db8::2", "2001:db8::1", 6, 8080, 40000}},
	} {
		msg := ctTestMsg(b, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl, bc.orig, bc.reply, ipsConfirmed, 1)
		w := &ctStream{f: f, m: m, batch: &batch{max: 1}}
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w.handle(msg)
			}
			if len(w.batch.u.Events) != 0 {
				b.Fatal("a non-matching event matched")
			}
		})
	}
}

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

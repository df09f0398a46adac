package ctentry

import (
	"net/netip"
	"testing"

	"asym/flow"

	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// TestText checks the conntrack -L rendering without a kernel.
func TestText(t *testing.T) {
	var c conntrack.Flow
	c.TupleOrig.IP.SourceAddress = netip.MustParseAddr("2001:db8::1")
	c.TupleOrig.IP.DestinationAddress = netip.MustParseAddr("2001:db8::2")
	c.TupleOrig.Proto = conntrack.ProtoTuple{Protocol: unix.IPPROTO_UDP, SourcePort: 5353, DestinationPort: 53}
	c.TupleReply.IP.SourceAddress = c.TupleOrig.IP.DestinationAddress
	c.TupleReply.IP.DestinationAddress = c.TupleOrig.IP.SourceAddress
	c.TupleReply.Proto = conntrack.ProtoTuple{Protocol: unix.IPPROTO_UDP, SourcePort: 53, DestinationPort: 5353}
	c.Timeout, c.Mark, c.Zone, c.Use = 29, 42, 5, 1
	c.Status = conntrack.StatusSeenReply | conntrack.StatusAssured
	c.CountersOrig = conntrack.Counter{Packets: 2, Bytes: 120}
	c.CountersReply = conntrack.Counter{Packets: 1, Bytes: 80}
	want := "udp      17 29 src=2001:db8::1 dst=2001:db8::2 sport=5353 dport=53 packets=2 bytes=120 src=2001:db8::2 dst=2001:db8::1 sport=53 dport=5353 packets=1 bytes=80 [ASSURED] mark=42 zone=5 use=1"
	if got := Text(c); got != want {
		t.Errorf("Text =\n%q\nwant\n%q", got, want)
	}
	f, err := flow.ParseString("udp [2001:db8::2]:53 [2001:db8::1]:5353")
	if err != nil {
		t.Fatal(err)
	}
	e, note := Flatten(f, f, c)
	if e.MatchedAs != "reply" || note != "" || e.PacketsOrig != 2 || e.PacketsReply != 1 || e.Zone != 5 || e.Unreplied {
		t.Errorf("Flatten = %+v, %q", e, note)
	}
}

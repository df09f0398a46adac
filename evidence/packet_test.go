package evidence

import (
	"encoding/json"
	"testing"
)

// Evidence recorded (or collected by a peer) before the typed packet
// fields existed carries only the words: reading it fills the fields that
// analyzers use.
func TestCapturedPacketReadsOlderEvidence(t *testing.T) {
	cases := []struct {
		json string
		tcp  TCPFlags
		icmp *ICMPMessage
	}{
		{`{"src":"203.0.113.10:40000","dst":"198.51.100.11:8080","proto":6,"flags":"S."}`, TCPSyn | TCPAck, nil},
		{`{"src":"203.0.113.10:40000","dst":"198.51.100.11:8080","proto":6,"flags":"R."}`, TCPRst | TCPAck, nil},
		{`{"src":"192.0.2.1:0","dst":"192.0.2.10:0","proto":1,"icmp":"unreachable (frag needed, mtu 1280)"}`, 0, &ICMPMessage{Type: 3, Code: 4, MTU: 1280}},
		{`{"src":"[2001:db8:a::1]:0","dst":"[2001:db8:a::10]:0","proto":58,"icmp":"packet too big (mtu 1400)"}`, 0, &ICMPMessage{V6: true, Type: 2, MTU: 1400}},
		{`{"src":"192.0.2.10:0","dst":"198.51.100.20:0","proto":1,"icmp":"echo request id 7 seq 1"}`, 0, &ICMPMessage{Type: 8}},
		// Typed fields, when present, win over the words.
		{`{"src":"203.0.113.10:40000","dst":"198.51.100.11:8080","proto":6,"flags":"S","tcp_flags":18}`, TCPSyn | TCPAck, nil},
	}
	for _, c := range cases {
		var p CapturedPacket
		if err := json.Unmarshal([]byte(c.json), &p); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if p.TCP != c.tcp {
			t.Errorf("%s: TCP flags %s, want %s", c.json, p.TCP, c.tcp)
		}
		switch {
		case c.icmp == nil && p.ICMPMsg != nil:
			t.Errorf("%s: an ICMP message %+v in a TCP packet", c.json, *p.ICMPMsg)
		case c.icmp != nil && (p.ICMPMsg == nil || *p.ICMPMsg != *c.icmp):
			t.Errorf("%s: ICMP %+v, want %+v", c.json, p.ICMPMsg, *c.icmp)
		}
	}
	var p CapturedPacket
	json.Unmarshal([]byte(cases[2].json), &p)
	if mtu := p.ICMPMsg.MTU; !p.ICMPMsg.TooBig() || mtu != 1280 {
		t.Errorf("frag needed is too-big with mtu 1280: %v %d", p.ICMPMsg.TooBig(), mtu)
	}
}

func TestTCPFlagsString(t *testing.T) {
	for f, want := range map[TCPFlags]string{0: "none", TCPSyn: "S", TCPSyn | TCPAck: "S.", TCPAck: ".", TCPPsh | TCPAck: "P.", TCPFin | TCPAck: "F.", TCPRst: "R"} {
		if got := f.String(); got != want {
			t.Errorf("%08b: %q, want %q", uint8(f), got, want)
		}
	}
}

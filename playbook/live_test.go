package playbook

import (
	"asym/evidence"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func pkt(iface, dir string, reply bool, flags evidence.TCPFlags, other bool) evidence.CapturedPacket {
	return evidence.CapturedPacket{Iface: iface, Dir: evidence.PacketDir(dir), Reply: reply, TCP: flags, Flags: flags.String(), OtherHost: other, Proto: 6,
		Src: netip.MustParseAddrPort("203.0.113.10:40000"), Dst: netip.MustParseAddrPort("198.51.100.11:8080"),
		Text: iface + " " + dir + " " + flags.String()}
}

func TestLiveAnalyzers(t *testing.T) {
	cases := []struct {
		name    string
		packets []evidence.CapturedPacket
		deltas  map[string]int64
		events  int
		want    []string
	}{
		{"clean round trip", []evidence.CapturedPacket{pkt("eth1", "in", false, tcpSYN, false), pkt("eth1", "out", true, tcpSYNACK, false)}, nil, 0, nil},
		{"reply by the other NIC", []evidence.CapturedPacket{pkt("eth1", "in", false, tcpSYN, false), pkt("eth0", "out", true, tcpSYNACK, false)}, nil, 0,
			[]string{"reply_wrong_egress"}},
		{"a flooded copy on eth0 is not the request arriving there", []evidence.CapturedPacket{pkt("eth0", "in", false, tcpSYN, true), pkt("eth1", "in", false, tcpSYN, false), pkt("eth1", "out", true, tcpSYNACK, false)}, nil, 0, nil},
		{"requests dropped by rp_filter", []evidence.CapturedPacket{pkt("eth1", "in", false, tcpSYN, false), pkt("eth1", "in", false, tcpSYN, false)},
			map[string]int64{"TcpExt:IPReversePathFilter": 2}, 0, []string{"rp_filter_strict_drop", "syn_unanswered"}},
		{"ECN-setup SYNs (ECE and CWR set) are SYNs too", []evidence.CapturedPacket{pkt("eth1", "in", false, tcpSYN|evidence.TCPEce|evidence.TCPCwr, false), pkt("eth1", "in", false, tcpSYN|evidence.TCPEce|evidence.TCPCwr, false)},
			nil, 0, []string{"syn_unanswered"}},
		{"SYN-ACK arrives, no entry, invalid climbs", []evidence.CapturedPacket{pkt("r2", "in", true, tcpSYNACK, false), pkt("r2", "in", true, tcpSYNACK, false)},
			map[string]int64{"nf_conntrack:invalid": 2, "rule:inet filter forward #2": 2}, 0, []string{"ct_invalid_drop"}},
		{"invalid climbs but the flow is tracked", []evidence.CapturedPacket{pkt("r2", "in", true, tcpSYNACK, false)},
			map[string]int64{"nf_conntrack:invalid": 2}, 3, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := server2nic()
			healed(e) // routing is fine: only the live evidence speaks
			if c.name == "SYN-ACK arrives, no entry, invalid climbs" || c.name == "invalid climbs but the flow is tracked" {
				e = middle()
			}
			e.Live = &evidence.LiveEvidence{Report: okRep("live"), Packets: c.packets, Deltas: c.deltas}
			for i := 0; i < c.events; i++ {
				e.Live.Events = append(e.Live.Events, evidence.CtEvent{Type: "NEW"})
			}
			got := ids(Analyze(e, len(Steps)-1))
			want := c.want
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
		})
	}
}

// TestLiveSilentConntrackRuleCounters: the drop rule's own counter joins
// the silent-conntrack evidence, found by the rule's counter key.
func TestLiveSilentConntrackRuleCounters(t *testing.T) {
	e := middle()
	e.Firewall.Rules[0].Handle = 2
	still := e.Firewall.Rules[0]
	still.Chain, still.Handle = "input", 7
	e.Firewall.Rules = append(e.Firewall.Rules, still)
	e.Live = &evidence.LiveEvidence{Report: okRep("live"), Packets: []evidence.CapturedPacket{pkt("r2", "in", true, tcpSYNACK, false)},
		Deltas: map[string]int64{evidence.CounterCtInvalid: 2, "rule:inet filter forward #2": 2, "rule:inet filter input #7": 0}}
	fs := liveSilentConntrack(e)
	if len(fs) != 1 {
		t.Fatalf("got %+v", fs)
	}
	var lines []string
	for _, l := range fs[0].Evidence {
		lines = append(lines, l.Text)
	}
	if !slices.Contains(lines, "inet filter forward #2 counter +2") || slices.ContainsFunc(lines, func(s string) bool { return strings.Contains(s, "#7") }) {
		t.Errorf("want the forward rule's counter and not the input rule's:\n%s", strings.Join(lines, "\n"))
	}
}

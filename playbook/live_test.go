package playbook

import (
	"asym/evidence"
	"net/netip"
	"slices"
	"testing"
)

func pkt(iface, dir string, reply bool, flags string, other bool) evidence.CapturedPacket {
	return evidence.CapturedPacket{Iface: iface, Dir: evidence.PacketDir(dir), Reply: reply, Flags: flags, OtherHost: other, Proto: 6,
		Src: netip.MustParseAddrPort("203.0.113.10:40000"), Dst: netip.MustParseAddrPort("198.51.100.11:8080"),
		Text: iface + " " + dir + " " + flags}
}

func TestLiveAnalyzers(t *testing.T) {
	cases := []struct {
		name    string
		packets []evidence.CapturedPacket
		deltas  map[string]int64
		events  int
		want    []string
	}{
		{"clean round trip", []evidence.CapturedPacket{pkt("eth1", "in", false, "S", false), pkt("eth1", "out", true, "S.", false)}, nil, 0, nil},
		{"reply by the other NIC", []evidence.CapturedPacket{pkt("eth1", "in", false, "S", false), pkt("eth0", "out", true, "S.", false)}, nil, 0,
			[]string{"reply_wrong_egress"}},
		{"a flooded copy on eth0 is not the request arriving there", []evidence.CapturedPacket{pkt("eth0", "in", false, "S", true), pkt("eth1", "in", false, "S", false), pkt("eth1", "out", true, "S.", false)}, nil, 0, nil},
		{"requests dropped by rp_filter", []evidence.CapturedPacket{pkt("eth1", "in", false, "S", false), pkt("eth1", "in", false, "S", false)},
			map[string]int64{"TcpExt:IPReversePathFilter": 2}, 0, []string{"rp_filter_strict_drop", "syn_unanswered"}},
		{"SYN-ACK arrives, no entry, invalid climbs", []evidence.CapturedPacket{pkt("r2", "in", true, "S.", false), pkt("r2", "in", true, "S.", false)},
			map[string]int64{"nf_conntrack:invalid": 2, "rule:inet filter forward #2": 2}, 0, []string{"ct_invalid_drop"}},
		{"invalid climbs but the flow is tracked", []evidence.CapturedPacket{pkt("r2", "in", true, "S.", false)},
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

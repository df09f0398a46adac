package counter

import (
	"maps"
	"testing"
)

// Recorded on Linux 6.18 (values trimmed).
const recordedSnmp = `Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards OutNoRoutes ReasmTimeout ReasmReqds ReasmOKs ReasmFails FragOKs FragFails FragCreates OutTransmits
Ip: 2 64 1257 0 4 0 0 1 1257 1196 0 0 0 0 0 0 0 0 0 1196
Icmp: InMsgs InErrors InCsumErrors InDestUnreachs InTimeExcds InParmProbs InSrcQuenchs InRedirects InEchos InEchoReps InTimestamps InTimestampReps InAddrMasks InAddrMaskReps OutMsgs OutErrors OutRateLimitGlobal OutRateLimitHost OutDestUnreachs OutTimeExcds OutParmProbs OutSrcQuenchs OutRedirects OutEchos OutEchoReps OutTimestamps OutTimestampReps OutAddrMasks OutAddrMaskReps
Icmp: 1 0 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 2 0 0 0 0 0 0 0 0 0 0
IcmpMsg: InType3
IcmpMsg: 1
Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors
Tcp: 1 200 120000 -1 16 2 3 0 0 1237 1183 11 0 2 0
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors
Udp: 19 0 0 20 0 0 0 0 0
`

const recordedNetstat = `TcpExt: SyncookiesSent SyncookiesRecv IPReversePathFilter TCPSynRetrans
TcpExt: 0 0 3 18446744073709551615
IpExt: InNoRoutes InTruncatedPkts InMcastPkts
IpExt: 2 0 0
MPTcpExt: MPCapableSYNRX
MPTcpExt: 0
`

func TestParseNetstat(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       map[string]uint64 // keys that must be there with these values
		absent     []string
		size       int
	}{
		{"snmp", recordedSnmp, map[string]uint64{
			"Ip:Forwarding": 2, "Ip:InAddrErrors": 4, "Ip:InDiscards": 1, "Ip:OutTransmits": 1196,
			"Icmp:InDestUnreachs": 1, "Icmp:OutDestUnreachs": 2, "IcmpMsg:InType3": 1,
			"Tcp:AttemptFails": 3, "Tcp:RetransSegs": 11, "Tcp:OutRsts": 2, "Tcp:InCsumErrors": 0, "Udp:MemErrors": 0,
		}, []string{"Tcp:MaxConn", "Ip:InNoRoutes"}, 20 + 29 + 1 + 14 + 9},
		{"netstat", recordedNetstat, map[string]uint64{
			"TcpExt:IPReversePathFilter": 3, "TcpExt:TCPSynRetrans": 1<<64 - 1, "IpExt:InNoRoutes": 2, "MPTcpExt:MPCapableSYNRX": 0,
		}, nil, 8},
		{"empty", "", nil, nil, 0},
		{"header without values", "TcpExt: A B\n", nil, []string{"TcpExt:A"}, 0},
		{"values shorter than names", "Tcp: A B C\nTcp: 1 2\n", map[string]uint64{"Tcp:A": 1, "Tcp:B": 2}, []string{"Tcp:C"}, 2},
		{"unpaired header resynchronised", "Ip: X\nTcp: A\nTcp: 7\n", map[string]uint64{"Tcp:A": 7}, []string{"Ip:X"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseNetstat(tc.text)
			for k, v := range tc.want {
				if g, ok := got[k]; !ok || g != v {
					t.Errorf("%s = %d (present %v), want %d", k, g, ok, v)
				}
			}
			for _, k := range tc.absent {
				if _, ok := got[k]; ok {
					t.Errorf("%s present, want absent", k)
				}
			}
			if len(got) != tc.size {
				t.Errorf("%d keys, want %d: %v", len(got), tc.size, got)
			}
		})
	}
}

func TestParseSnmp6(t *testing.T) {
	text := "Ip6InReceives                   \t12\n" +
		"Ip6InNoRoutes                   \t3\n" +
		"Ip6InAddrErrors                 \t0\n" +
		"Icmp6InDestUnreachs             \t4\n" +
		"Icmp6OutType133                 \t1\n" +
		"Udp6InDatagrams                 \t9\n" +
		"UdpLite6InErrors                \t0\n" +
		"Ip6InOctets                     \t18446744073709551615\n" +
		"\n" +
		"garbage line here\n" +
		"Ip6Broken                       \t-1\n"
	want := map[string]uint64{
		"Ip6:InReceives": 12, "Ip6:InNoRoutes": 3, "Ip6:InAddrErrors": 0, "Icmp6:InDestUnreachs": 4,
		"Icmp6:OutType133": 1, "Udp6:InDatagrams": 9, "UdpLite6:InErrors": 0, "Ip6:InOctets": 1<<64 - 1,
	}
	if got := ParseSnmp6(text); !maps.Equal(got, want) {
		t.Errorf("ParseSnmp6 = %v\nwant %v", got, want)
	}
}

func TestParseStatTable(t *testing.T) {
	for _, tc := range []struct {
		name, text, prefix string
		want               map[string]uint64
	}{
		{
			// Linux 6.18, 2 CPUs: entries (11) is repeated on each row.
			name:   "nf_conntrack 6.x",
			prefix: "nf_conntrack",
			text: "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
				"0000000b  00000001 00000000 00000000 00000003 00000000 00000000 00000000 00000010 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000002\n" +
				"0000000b  00000000 00000000 00000000 0000000a 00000000 00000000 00000000 00000001 00000001 00000002 00000000 00000000  00000000 00000000 00000000 00000000\n",
			want: map[string]uint64{
				"nf_conntrack:entries": 11, "nf_conntrack:clashres": 1, "nf_conntrack:found": 0, "nf_conntrack:new": 0,
				"nf_conntrack:invalid": 13, "nf_conntrack:ignore": 0, "nf_conntrack:delete": 0, "nf_conntrack:chainlength": 0,
				"nf_conntrack:insert": 17, "nf_conntrack:insert_failed": 1, "nf_conntrack:drop": 2, "nf_conntrack:early_drop": 0,
				"nf_conntrack:icmp_error": 0, "nf_conntrack:expect_new": 0, "nf_conntrack:expect_create": 0,
				"nf_conntrack:expect_delete": 0, "nf_conntrack:search_restart": 2,
			},
		},
		{
			// Before Linux 5.x renamed them: searched, delete_list.
			name:   "nf_conntrack old kernel",
			prefix: "nf_conntrack",
			text: "entries  searched found new invalid ignore delete delete_list insert insert_failed drop  early_drop icmp_error  expect_new expect_create expect_delete search_restart\n" +
				"00000002  000000ff 00000001 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000  00000000 00000000 00000000 00000000\n" +
				"00000002  00000001 00000001 00000000 00000001 00000000 00000000 00000004 00000000 00000000 00000000  00000000 00000000  00000000 00000000 00000000 00000000\n",
			want: map[string]uint64{
				"nf_conntrack:entries": 2, "nf_conntrack:searched": 256, "nf_conntrack:found": 2, "nf_conntrack:new": 0,
				"nf_conntrack:invalid": 2, "nf_conntrack:ignore": 0, "nf_conntrack:delete": 0, "nf_conntrack:delete_list": 4,
				"nf_conntrack:insert": 0, "nf_conntrack:insert_failed": 0, "nf_conntrack:drop": 0, "nf_conntrack:early_drop": 0,
				"nf_conntrack:icmp_error": 0, "nf_conntrack:expect_new": 0, "nf_conntrack:expect_create": 0,
				"nf_conntrack:expect_delete": 0, "nf_conntrack:search_restart": 0,
			},
		},
		{
			name:   "rt_cache 6.x",
			prefix: "rt_cache",
			text: "entries  in_hit   in_slow_tot in_slow_mc in_no_route in_brd   in_martian_dst in_martian_src out_hit  out_slow_tot out_slow_mc gc_total gc_ignored gc_goal_miss gc_dst_overflow in_hlist_search out_hlist_search\n" +
				"00000005 00000000 00000000    00000000   00000000    00000000 00000000       00000003       00000000 00000002     00000000    00000000 00000000   00000000     00000000        00000000        00000000\n" +
				"00000005 00000000 00000001    00000000   00000000    00000000 00000001       00000000       00000000 00000002     00000000    00000000 00000000   00000000     00000000        00000000        00000000\n",
			want: map[string]uint64{
				"rt_cache:entries": 5, "rt_cache:in_hit": 0, "rt_cache:in_slow_tot": 1, "rt_cache:in_slow_mc": 0,
				"rt_cache:in_no_route": 0, "rt_cache:in_brd": 0, "rt_cache:in_martian_dst": 1, "rt_cache:in_martian_src": 3,
				"rt_cache:out_hit": 0, "rt_cache:out_slow_tot": 4, "rt_cache:out_slow_mc": 0, "rt_cache:gc_total": 0,
				"rt_cache:gc_ignored": 0, "rt_cache:gc_goal_miss": 0, "rt_cache:gc_dst_overflow": 0,
				"rt_cache:in_hlist_search": 0, "rt_cache:out_hlist_search": 0,
			},
		},
		{
			name:   "malformed row skipped, short row summed as far as it goes",
			prefix: "t",
			text:   "entries a b\n00000001 0000000z 00000001\n00000001 00000002\n",
			want:   map[string]uint64{"t:entries": 1, "t:a": 2},
		},
		{name: "empty", prefix: "t", text: "", want: map[string]uint64{}},
		{name: "header only", prefix: "t", text: "entries a\n", want: map[string]uint64{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParseStatTable(tc.text, tc.prefix); !maps.Equal(got, tc.want) {
				t.Errorf("ParseStatTable =\n%v\nwant\n%v", got, tc.want)
			}
		})
	}
}

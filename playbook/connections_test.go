package playbook

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"asym/evidence"
)

// TestSeveralConnections: a flow given without a source port has one
// conntrack entry per client connection. The analyzers that read the
// entries hold for the flow only when every connection shows it; one
// connection answered is not the flow failing, nor one still waiting the
// flow working.
func TestSeveralConnections(t *testing.T) {
	unreplied := func(port string) evidence.ConntrackEntry {
		return evidence.ConntrackEntry{MatchedAs: "original", Proto: 6, TCPState: "SYN_SENT", Unreplied: true,
			Text: "tcp 6 117 SYN_SENT src=192.0.2.10 dst=203.0.113.10 sport=" + port + " dport=8080 [UNREPLIED] …"}
	}
	answered := func(port string) evidence.ConntrackEntry {
		return evidence.ConntrackEntry{MatchedAs: "original", Proto: 6, TCPState: "ESTABLISHED", Assured: true,
			Text: "tcp 6 431999 ESTABLISHED src=192.0.2.10 dst=203.0.113.10 sport=" + port + " dport=8080 … [ASSURED] …"}
	}
	nat := func(en evidence.ConntrackEntry) evidence.ConntrackEntry { en.DstNAT = true; return en }
	five := []evidence.ConntrackEntry{unreplied("41000"), unreplied("41001"), unreplied("41002"), unreplied("41003"), unreplied("41004")}
	cases := []struct {
		name    string
		entries []evidence.ConntrackEntry
		invalid bool     // the ct state invalid rule counted drops
		want    []string // finding ids
		title   string   // in the first finding's title
		lines   []string // the first finding's conntrack evidence
	}{
		{"every connection unreplied", five, false, []string{"conntrack_unreplied"},
			"This host saw the requests of 5 connections of the flow and never a reply ([UNREPLIED], SYN_SENT)",
			[]string{five[0].Text, five[1].Text, five[2].Text, "… and 2 more connection(s) of the flow, also [UNREPLIED]"}},
		{"one connection answered, one still waiting", []evidence.ConntrackEntry{answered("41000"), unreplied("41001")}, false, nil, "", nil},
		{"one connection, unreplied (as with a source port)", five[:1], false, []string{"conntrack_unreplied"},
			"This host saw the request but never the reply ([UNREPLIED], SYN_SENT)", []string{five[0].Text}},
		{"every translated connection unreplied", []evidence.ConntrackEntry{nat(unreplied("41000")), nat(unreplied("41001"))}, false, []string{"nat_state_miss"},
			"This host destination-NATed the flow but no reply came back to it", []string{five[0].Text, five[1].Text}},
		{"one translated connection answered", []evidence.ConntrackEntry{nat(unreplied("41000")), nat(answered("41001"))}, false, nil, "", nil},
		{"invalid drops, every connection unreplied", five[:2], true, []string{"conntrack_unreplied", "ct_invalid_drop"}, "", nil},
		{"invalid drops, one connection answered", []evidence.ConntrackEntry{unreplied("41000"), answered("41001")}, true, nil, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := middle()
			e.Flow.Src = netip.AddrPortFrom(e.Flow.Src.Addr(), 0)
			e.Conntrack.Entries = slices.Clone(c.entries)
			if c.invalid {
				e.Firewall.Rules[0].Packets = 3
			}
			fs := Analyze(e, len(Steps)-1)
			if got := ids(fs); !slices.Equal(got, c.want) && !(len(got) == 0 && c.want == nil) {
				t.Fatalf("findings %v, want %v", got, c.want)
			}
			if c.title == "" {
				return
			}
			if !strings.Contains(fs[0].Title, c.title) {
				t.Errorf("title %q, want %q", fs[0].Title, c.title)
			}
			var lines []string
			for _, l := range fs[0].Evidence {
				if l.Probe == evidence.ProbeConntrack {
					lines = append(lines, l.Text)
				}
			}
			if !slices.Equal(lines, c.lines) {
				t.Errorf("evidence %q\nwant     %q", lines, c.lines)
			}
		})
	}
}

// TestSeveralConnectionsNATJoin: a translator holds the flow's state for
// two connections; it holds it unreplied for the join only when neither
// saw a reply.
func TestSeveralConnectionsNATJoin(t *testing.T) {
	e := middle()
	first := evidence.ConntrackEntry{DstNAT: true, Unreplied: true, Text: "tcp 6 117 SYN_SENT … sport=41000 … [UNREPLIED] …"}
	second := evidence.ConntrackEntry{DstNAT: true, Unreplied: true, Text: "tcp 6 117 SYN_SENT … sport=41001 … [UNREPLIED] …"}
	e.Conntrack.Entries = []evidence.ConntrackEntry{first, second}
	if got := translatedUnreplied(e); got == nil || got.Text != first.Text {
		t.Errorf("both unreplied: %+v, want the first", got)
	}
	e.Conntrack.Entries[1].Unreplied = false
	if got := translatedUnreplied(e); got != nil {
		t.Errorf("one answered: %+v, want none", got)
	}
}

package playbook

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"asym/evidence"
)

// recordedNATPair loads both gateways of nat-gateway-pair as `asym collect
// --watch 4s --peer 'ip netns exec GW-B'` printed them on gw-a while the
// flow failed (re-record: go test ./cmd/asym -run TestPeerNATPair -record).
func recordedNATPair(t *testing.T) (here, there evidence.Evidence) {
	t.Helper()
	b, err := os.ReadFile("testdata/peer/nat-gateway-pair.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Evidence evidence.Evidence `json:"evidence"`
		Peer     struct {
			Collection evidence.Collection `json:"collection"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Evidence, doc.Peer.Collection.Evidence
}

func TestNATSplitRecorded(t *testing.T) {
	cases := []struct {
		name   string
		change func(here, there *evidence.Evidence)
		want   Severity // "" when nothing may be joined
		says   string
	}{
		{name: "as recorded: proven by the replies arriving at gw-b", want: Critical, says: "reply packet(s) 198.18.0.10:80 → 203.0.113.10:40000 arrived on eth1"},
		{name: "gw-b without a capture: its twin rule and invalid packets hint, not proof", change: func(_, there *evidence.Evidence) {
			there.Live = nil
			there.Conntrack.Stats.Invalid = 7
		}, want: Warning, says: "not proven for this flow"},
		{name: "gw-b without capture nor invalid packets: nothing joined", change: func(_, there *evidence.Evidence) {
			there.Live = nil
			there.Conntrack.Stats.Invalid = 0
		}},
		{name: "gw-b translated too: not this failure", change: func(_, there *evidence.Evidence) {
			there.Conntrack.Entries = []evidence.ConntrackEntry{{MatchedAs: "original", DstNAT: true, Text: "tcp 6 SYN_SENT …"}}
		}},
		{name: "gw-b tracks the replies on their own (loose pickup), without translation", change: func(_, there *evidence.Evidence) {
			there.Conntrack.Entries = []evidence.ConntrackEntry{{MatchedAs: "reply", Unreplied: true, TCPState: "ESTABLISHED",
				Text: "tcp      6 298 ESTABLISHED src=198.18.0.10 dst=203.0.113.10 sport=80 dport=40000 [UNREPLIED] src=203.0.113.10 dst=198.18.0.10 sport=40000 dport=80"}}
		}, want: Critical, says: "the replies made an entry of their own here"},
		{name: "the reply came back through gw-a after all", change: func(here, _ *evidence.Evidence) {
			if len(here.Conntrack.Entries) == 0 {
				t.Fatal("the recording holds gw-a's entry from the conntrack probe")
			}
			entry := here.Conntrack.Entries[0]
			here.Conntrack.Entries = nil
			l := *here.Live
			l.Events = []evidence.CtEvent{{Type: evidence.CtNew, Entry: entry}}
			entry.Unreplied, entry.TCPState = false, "SYN_RECV"
			l.Events = append(l.Events, evidence.CtEvent{Type: evidence.CtUpdate, Entry: entry})
			here.Live = &l
		}},
		{name: "gw-a's state only in the live window's events", change: func(here, _ *evidence.Evidence) {
			entry := here.Conntrack.Entries[0]
			here.Conntrack.Entries = nil
			l := *here.Live
			l.Events = []evidence.CtEvent{{Type: evidence.CtNew, Entry: entry}}
			here.Live = &l
		}, want: Critical, says: "[UNREPLIED]"},
		{name: "seen from gw-b: the same join, sides swapped", change: func(here, there *evidence.Evidence) {
			*here, *there = *there, *here
		}, want: Critical, says: "(peer) translated the flow and holds its state"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			here, there := recordedNATPair(t)
			if c.change != nil {
				c.change(&here, &there)
			}
			var got *Finding
			for _, f := range Join(&here, &there) {
				if f.ID == NATStateMiss {
					got = &f
				}
			}
			if c.want == "" {
				if got != nil {
					t.Fatalf("joined %q, want nothing", got.Title)
				}
				return
			}
			if got == nil {
				t.Fatal("no joined nat_state_miss")
			}
			text := got.Title
			for _, l := range got.Evidence {
				text += "\n" + l.Text
			}
			if got.Severity != c.want || !strings.Contains(text, c.says) || got.Side != SideBoth {
				t.Fatalf("%s %s, want %s with %q:\n%s", got.Severity, got.Side, c.want, c.says, text)
			}
		})
	}
}

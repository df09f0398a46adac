package playbook

import (
	"net/netip"
	"slices"
	"testing"

	"asym/evidence"
	"asym/flow"
)

// middle is a firewall the flow crosses: request in on r1, out on r2.
func middle() *evidence.Evidence {
	f, _ := flow.ParseString("tcp 192.0.2.10:40001 203.0.113.10:8080")
	e := &evidence.Evidence{Flow: f}
	e.Host = &evidence.HostView{Report: okRep("host"), Role: evidence.RoleMiddle, Privileged: true,
		Ifaces: []evidence.Iface{{Name: "r1", MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.2/30")}}, {Name: "r2", MTU: 1500, Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.5/30")}}}}
	e.Request = &evidence.PathView{Report: okRep("route.request"), Direction: "request", Ingress: "r1", IngressWhy: "the interface this host routes 192.0.2.10 through", Egress: "r2",
		Decision: evidence.RouteDecision{Query: evidence.RouteQuery{Dst: f.Dst.Addr(), Src: f.Src.Addr(), Iif: "r1"}, Type: "unicast", Table: 254, Dev: "r2", Text: "203.0.113.10 from 192.0.2.10 via 198.51.100.6 dev r2 table main iif r1"}}
	e.Reply = &evidence.PathView{Report: okRep("route.reply"), Direction: "reply", Ingress: "r2", Egress: "r1",
		Decision: evidence.RouteDecision{Query: evidence.RouteQuery{Dst: f.Src.Addr(), Src: f.Dst.Addr(), Iif: "r2"}, Type: "unicast", Table: 254, Dev: "r1", Text: "192.0.2.10 from 203.0.113.10 via 198.51.100.1 dev r1 table main iif r2"}}
	e.Firewall = &evidence.FirewallView{Report: okRep("firewall"), Rules: []evidence.FirewallRule{{Family: "inet", Table: "filter", Chain: "forward", Hook: "forward", Kind: "ct_invalid", Verdict: "drop", HasCounter: true, Text: "ct state invalid counter packets 0 bytes 0 drop"}}}
	e.Conntrack = &evidence.ConntrackView{Report: okRep("conntrack"), Looked: true}
	return e
}

func TestAnalyzeMiddle(t *testing.T) {
	entry := evidence.ConntrackEntry{MatchedAs: "original", Proto: 6, TCPState: "SYN_SENT", Unreplied: true, Text: "tcp 6 117 SYN_SENT src=192.0.2.10 … [UNREPLIED] …"}
	cases := []struct {
		name  string
		build func(e *evidence.Evidence)
		want  []string
	}{
		{"quiet firewall", func(e *evidence.Evidence) {}, nil},
		{"SYN-ACK dropped as invalid, no entry", func(e *evidence.Evidence) {
			e.Firewall.Rules[0].Packets = 3
			e.Conntrack.Stats.Invalid = 3
		}, []string{"ct_invalid_drop"}},
		{"invalid drops of other flows while this one is established", func(e *evidence.Evidence) {
			e.Firewall.Rules[0].Packets = 3
			est := entry
			est.Unreplied, est.TCPState = false, "ESTABLISHED"
			e.Conntrack.Entries = []evidence.ConntrackEntry{est}
		}, nil},
		{"invalid drops in a hook the flow does not cross", func(e *evidence.Evidence) {
			e.Firewall.Rules[0].Packets, e.Firewall.Rules[0].Hook = 3, "input"
		}, nil},
		{"request seen, reply never", func(e *evidence.Evidence) { e.Conntrack.Entries = []evidence.ConntrackEntry{entry} }, []string{"conntrack_unreplied"}},
		{"NAT entry without reply", func(e *evidence.Evidence) {
			n := entry
			n.SrcNAT = true
			e.Conntrack.Entries = []evidence.ConntrackEntry{n}
		}, []string{"nat_state_miss"}},
		{"reply hashed over two next hops", func(e *evidence.Evidence) {
			e.Reply.Egress, e.Reply.Decision.Dev = "r3", "r3"
			e.Reply.FIB = &evidence.RouteDecision{Text: "192.0.2.0/24 nexthop via 198.51.100.1 dev r1 weight 1 nexthop via 198.51.100.9 dev r3 weight 1",
				Nexthops: []evidence.Nexthop{{Dev: "r1", Weight: 1}, {Dev: "r3", Weight: 1}}}
		}, []string{"ecmp_multipath"}},
		{"reply leaves elsewhere than the request came (given --iif)", func(e *evidence.Evidence) {
			e.Request.IngressWhy = "given with --iif"
			e.Reply.Egress, e.Reply.Decision.Dev = "r3", "r3"
		}, []string{"reply_wrong_egress"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := middle()
			c.build(e)
			want := c.want
			if want == nil {
				want = []string{}
			}
			fs := Analyze(e, len(Steps)-1)
			if got := ids(fs); !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
			// Advice-only findings carry commands to prove it elsewhere.
			for _, f := range fs {
				if f.Fix == nil || len(f.Fix.Steps) > 0 {
					continue
				}
				if len(f.Fix.Prove) == 0 {
					t.Errorf("%s: advice without commands to prove it", f.ID)
				}
			}
			if f := find(fs, "ct_invalid_drop"); f != nil && f.Fix.Prove[0] != "conntrack -L -p tcp --src 192.0.2.10 --dst 203.0.113.10 --sport 40001 --dport 8080" {
				t.Errorf("prove: %q", f.Fix.Prove)
			}
		})
	}
}

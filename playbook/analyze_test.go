package playbook

import (
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"

	"golang.org/x/sys/unix"
)

var (
	a10   = netip.MustParseAddr("198.51.100.10")
	a11   = netip.MustParseAddr("198.51.100.11")
	gw    = netip.MustParseAddr("198.51.100.1")
	cli   = netip.MustParseAddr("203.0.113.10")
	sub24 = func(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, 24) }
)

func okRep(id evidence.ProbeID) evidence.Report {
	return evidence.Report{Probe: id, Status: evidence.StatusOK}
}

func defaultRules() *evidence.RulesView {
	v := &evidence.RulesView{Report: okRep("rules")}
	for _, r := range []evidence.Rule{
		{Priority: 0, Action: "lookup", Table: unix.RT_TABLE_LOCAL},
		{Priority: 32766, Action: "lookup", Table: unix.RT_TABLE_MAIN},
		{Priority: 32767, Action: "lookup", Table: unix.RT_TABLE_DEFAULT},
	} {
		r.Text = "rule"
		v.Rules = append(v.Rules, r)
	}
	return v
}

func addRule(v *evidence.RulesView, r evidence.Rule) {
	r.Action, r.Text = "lookup", "rule"
	v.Rules = append(v.Rules, r)
	sort.SliceStable(v.Rules, func(i, j int) bool { return v.Rules[i].Priority < v.Rules[j].Priority })
}

// server2nic is the cloud article's host: eth0 .10 and eth1 .11 on one
// subnet, a request from 203.0.113.10 to .11 arriving on eth1, and the reply
// leaving by main's default via eth0. Everything else healthy.
func server2nic() *evidence.Evidence {
	f, _ := flow.ParseString("tcp 203.0.113.10:40000 198.51.100.11:8080")
	e := &evidence.Evidence{Flow: f}
	e.Host = &evidence.HostView{Report: okRep("host"), Role: evidence.RoleServer, Local: a11, LocalIface: "eth1", Privileged: true,
		Ifaces: []evidence.Iface{
			{Name: "lo", Index: 1, MTU: 65536, Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
			{Name: "eth0", Index: 2, MTU: 1500, Up: true, Kind: "veth", Addrs: []netip.Prefix{sub24(a10)}},
			{Name: "eth1", Index: 3, MTU: 1500, Up: true, Kind: "veth", Addrs: []netip.Prefix{sub24(a11)}},
		}}
	e.Request = &evidence.PathView{Report: okRep("route.request"), Direction: "request", Ingress: "eth1", IngressWhy: "the interface that holds 198.51.100.11",
		Decision:    evidence.RouteDecision{Query: evidence.RouteQuery{Dst: a11, Src: cli, Iif: "eth1"}, Type: "local", Table: 255, Dev: "lo", Text: "local 198.51.100.11 from 203.0.113.10 dev lo table local iif eth1"},
		RPFilter:    &evidence.RPFilter{Iface: "eth1"},
		ReversePath: &evidence.RouteDecision{Query: evidence.RouteQuery{Dst: cli, Src: a11}, Type: "unicast", Table: 254, Dev: "eth0", Gateway: gw, Text: "203.0.113.10 from 198.51.100.11 via 198.51.100.1 dev eth0 table main"},
		Packet:      evidence.Packet{Src: cli, Dst: a11, Iif: "eth1", Proto: 6, Sport: 40000, Dport: 8080}}
	e.Reply = &evidence.PathView{Report: okRep("route.reply"), Direction: "reply", Egress: "eth0",
		Decision: evidence.RouteDecision{Query: evidence.RouteQuery{Dst: cli, Src: a11}, Type: "unicast", Table: 254, Dev: "eth0", Gateway: gw, Text: "203.0.113.10 from 198.51.100.11 via 198.51.100.1 dev eth0 table main"},
		Packet:   evidence.Packet{Src: a11, Dst: cli, Iif: "lo", Proto: 6, Sport: 8080, Dport: 40000}}
	e.Counters = &evidence.Counters{Report: okRep("counters"), Values: map[string]uint64{"TcpExt:IPReversePathFilter": 0}}
	e.Firewall = &evidence.FirewallView{Report: okRep("firewall")}
	e.Conntrack = &evidence.ConntrackView{Report: okRep("conntrack"), Looked: true}
	e.Rules = defaultRules()
	e.Tables = &evidence.TablesView{Report: okRep("tables")}
	e.Sysctls = &evidence.SysctlView{Report: okRep("sysctls"), Values: map[string]int{}}
	for _, i := range []string{"all", "eth0", "eth1"} {
		e.Sysctls.Values["net.ipv4.conf."+i+".arp_ignore"] = 1
		e.Sysctls.Values["net.ipv4.conf."+i+".arp_filter"] = 0
		e.Sysctls.Values["net.ipv4.conf."+i+".rp_filter"] = 0
	}
	e.Neighbours = &evidence.NeighView{Report: okRep("neighbours"), Gateways: []evidence.Gateway{{Iface: "eth1", Addr: a11, Gateway: gw, How: "route by eth1"}}}
	return e
}

// healed makes server2nic source-routed, as the articles fix it.
func healed(e *evidence.Evidence) {
	addRule(e.Rules, evidence.Rule{Priority: 1000, Src: netip.PrefixFrom(a10, 32), Table: 100})
	addRule(e.Rules, evidence.Rule{Priority: 1001, Src: netip.PrefixFrom(a11, 32), Table: 200})
	e.Tables.Tables = []evidence.Table{
		{ID: 100, Routes: []evidence.Route{{Dst: netip.MustParsePrefix("198.51.100.0/24"), Type: "unicast", Dev: "eth0", Text: "198.51.100.0/24 dev eth0"}, {Dst: netip.MustParsePrefix("0.0.0.0/0"), Type: "unicast", Dev: "eth0", Gateway: gw, Text: "default via 198.51.100.1 dev eth0"}}},
		{ID: 200, Routes: []evidence.Route{{Dst: netip.MustParsePrefix("198.51.100.0/24"), Type: "unicast", Dev: "eth1", Text: "198.51.100.0/24 dev eth1"}, {Dst: netip.MustParsePrefix("0.0.0.0/0"), Type: "unicast", Dev: "eth1", Gateway: gw, Text: "default via 198.51.100.1 dev eth1"}}},
	}
	e.Reply.Egress, e.Reply.Decision.Dev, e.Reply.Decision.Table = "eth1", "eth1", 200
	e.Request.ReversePath.Dev, e.Request.ReversePath.Table = "eth1", 200
}

// TCP flags of hand-built packets, typed as the capture types them.
const (
	tcpSYN    = evidence.TCPSyn
	tcpSYNACK = evidence.TCPSyn | evidence.TCPAck
	tcpACK    = evidence.TCPAck
	tcpPSHACK = evidence.TCPPsh | evidence.TCPAck
)

func ids(fs []Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, string(f.ID))
	}
	sort.Strings(out)
	return out
}

func find(fs []Finding, id FindingID) *Finding {
	for i := range fs {
		if fs[i].ID == id {
			return &fs[i]
		}
	}
	return nil
}

func TestAnalyze(t *testing.T) {
	cases := []struct {
		name  string
		build func() *evidence.Evidence
		want  []string
		check func(t *testing.T, fs []Finding)
	}{
		{"healthy source-routed host", func() *evidence.Evidence { e := server2nic(); healed(e); return e }, nil, nil},
		{"two NICs, strict rp_filter, ARP defaults", func() *evidence.Evidence {
			e := server2nic()
			e.Request.Decision = evidence.RouteDecision{Query: e.Request.Decision.Query, Errno: unix.EINVAL, Error: "EINVAL (invalid argument)", Text: "RTNETLINK answers: Invalid argument"}
			e.Request.RPFilter = &evidence.RPFilter{Iface: "eth1", All: 1, Effective: 1}
			e.Counters.Values["TcpExt:IPReversePathFilter"] = 3
			for _, i := range []string{"all", "eth0", "eth1"} {
				e.Sysctls.Values["net.ipv4.conf."+i+".arp_ignore"] = 0
			}
			return e
		}, []string{"arp_flux", "missing_source_rule", "reply_wrong_egress", "rp_filter_strict_drop"}, func(t *testing.T, fs []Finding) {
			f := find(fs, "rp_filter_strict_drop")
			if f.Severity != Critical || !strings.Contains(f.Title, "eth1") || !strings.Contains(f.Title, "eth0") {
				t.Errorf("title %q", f.Title)
			}
			if !slices.ContainsFunc(f.Evidence, func(l Line) bool { return strings.Contains(l.Text, "IPReversePathFilter = 3") }) {
				t.Errorf("the counter is not in the evidence: %v", f.Evidence)
			}
			want := []string{
				"ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
				"ip route add default via 198.51.100.1 dev eth1 table 100",
				"ip rule add from 198.51.100.11 lookup 100 priority 1000",
			}
			if got := f.Fix.Commands(); !slices.Equal(got, want) {
				t.Errorf("fix:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if len(f.Fix.Alternatives) != 1 || f.Fix.Alternatives[0].Commands()[0] != "sysctl -w net.ipv4.conf.eth1.rp_filter=2" {
				t.Errorf("loose alternative: %+v", f.Fix.Alternatives)
			}
		}},
		{"two NICs, loose rp_filter (fabric drops the reply)", server2nic, []string{"missing_source_rule", "reply_wrong_egress"}, nil},
		{"rp_filter refusal in loose mode is not a strict drop", func() *evidence.Evidence {
			e := server2nic()
			e.Request.Decision = evidence.RouteDecision{Query: e.Request.Decision.Query, Errno: unix.EINVAL, Text: "RTNETLINK answers: Invalid argument"}
			e.Request.RPFilter = &evidence.RPFilter{Iface: "eth1", All: 2, Effective: 2}
			return e
		}, []string{"missing_source_rule", "reply_wrong_egress"}, nil},
		{"rule names an address no interface holds", func() *evidence.Evidence {
			e := server2nic()
			healed(e)
			e.Rules = defaultRules()
			addRule(e.Rules, evidence.Rule{Priority: 32764, Src: netip.PrefixFrom(netip.MustParseAddr("198.51.100.12"), 32), Table: 100})
			addRule(e.Rules, evidence.Rule{Priority: 32765, Src: netip.PrefixFrom(a10, 32), Table: 200})
			// flow to .11 whose rule is missing; make .11's rule the typo instead
			e.Rules = defaultRules()
			addRule(e.Rules, evidence.Rule{Priority: 32764, Src: netip.PrefixFrom(netip.MustParseAddr("198.51.100.12"), 32), Table: 200})
			addRule(e.Rules, evidence.Rule{Priority: 32765, Src: netip.PrefixFrom(a10, 32), Table: 100})
			e.Reply.Egress, e.Reply.Decision.Dev, e.Reply.Decision.Table = "eth0", "eth0", 254
			return e
		}, []string{"reply_wrong_egress", "rule_unknown_source"}, func(t *testing.T, fs []Finding) {
			f := find(fs, "rule_unknown_source")
			want := []string{"ip rule del from 198.51.100.12 lookup 200 priority 32764", "ip rule add from 198.51.100.11 lookup 200 priority 32764"}
			if got := f.Fix.Commands(); !slices.Equal(got, want) {
				t.Errorf("fix %v, want %v", got, want)
			}
		}},
		{"policy table without its link route", func() *evidence.Evidence {
			e := server2nic()
			healed(e)
			nb := netip.MustParseAddr("198.51.100.50")
			e.Flow, _ = flow.ParseString("tcp 198.51.100.50:40000 198.51.100.11:8080")
			e.Request.Decision.Query.Src, e.Request.Packet.Src = nb, nb
			e.Reply.Decision = evidence.RouteDecision{Query: evidence.RouteQuery{Dst: nb, Src: a11}, Type: "unicast", Table: 200, Dev: "eth1", Gateway: gw, Text: "198.51.100.50 from 198.51.100.11 via 198.51.100.1 dev eth1 table 200"}
			e.Reply.Packet.Dst = nb
			e.Tables.Tables[1].Routes = e.Tables.Tables[1].Routes[1:]
			return e
		}, []string{"missing_link_route"}, func(t *testing.T, fs []Finding) {
			if got := fs[0].Fix.Commands(); !slices.Equal(got, []string{"ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 200"}) {
				t.Errorf("fix %v", got)
			}
		}},
		{"rule points at an empty table", func() *evidence.Evidence {
			e := server2nic()
			addRule(e.Rules, evidence.Rule{Priority: 1001, Src: netip.PrefixFrom(a11, 32), Table: 201})
			e.Tables.Tables = []evidence.Table{{ID: 201}}
			return e
		}, []string{"reply_wrong_egress", "rule_empty_table"}, func(t *testing.T, fs []Finding) {
			for _, c := range find(fs, "rule_empty_table").Fix.Commands() {
				if !strings.HasSuffix(c, "table 201") {
					t.Errorf("fix must fill table 201: %s", c)
				}
			}
		}},
		{"an earlier rule shadows the source rule", func() *evidence.Evidence {
			e := server2nic()
			healed(e)
			addRule(e.Rules, evidence.Rule{Priority: 100, Table: 50})
			e.Tables.Tables = append(e.Tables.Tables, evidence.Table{ID: 50, Routes: []evidence.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Type: "unicast", Dev: "eth0", Gateway: gw, Text: "default via 198.51.100.1 dev eth0"}}})
			e.Reply.Egress, e.Reply.Decision.Dev, e.Reply.Decision.Table = "eth0", "eth0", 50
			return e
		}, []string{"reply_wrong_egress", "rule_shadowed"}, func(t *testing.T, fs []Finding) {
			want := []string{"ip rule del from 198.51.100.11 lookup 200 priority 1001", "ip rule add from 198.51.100.11 lookup 200 priority 99"}
			if got := find(fs, "rule_shadowed").Fix.Commands(); !slices.Equal(got, want) {
				t.Errorf("fix %v, want %v", got, want)
			}
		}},
		{"nft fib reverse-path rule", func() *evidence.Evidence {
			e := server2nic()
			e.Firewall.Rules = []evidence.FirewallRule{{Family: "inet", Table: "firewalld", Chain: "filter_PREROUTING", Hook: "prerouting", Kind: "fib_rpfilter", Verdict: "drop", Text: "fib saddr . iif oif missing drop"}}
			return e
		}, []string{"missing_source_rule", "nft_fib_rpfilter_drop", "reply_wrong_egress"}, nil},
		{"unavailable probes are never findings", func() *evidence.Evidence {
			e := server2nic()
			healed(e)
			e.Firewall = &evidence.FirewallView{Report: evidence.Report{Probe: "firewall", Status: evidence.StatusUnavailable, Reason: "needs root"}}
			e.Conntrack = &evidence.ConntrackView{Report: evidence.Report{Probe: "conntrack", Status: evidence.StatusUnavailable}}
			e.Rules.Status = evidence.StatusTimedOut
			return e
		}, nil, nil},
		{"different MTUs in and out", func() *evidence.Evidence {
			e := server2nic()
			healed(e)
			e.Reply.Egress = "eth0"
			e.Host.Ifaces[2].MTU = 9001
			return e
		}, []string{"mtu_blackhole", "reply_wrong_egress"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := Analyze(c.build(), len(Steps)-1)
			want := c.want
			if want == nil {
				want = []string{}
			}
			if got := ids(fs); !slices.Equal(got, want) {
				for _, f := range fs {
					t.Logf("%s: %s %v", f.ID, f.Title, f.Evidence)
				}
				t.Fatalf("findings %v, want %v", got, want)
			}
			for _, f := range fs {
				if f.Title == "" || f.Why == "" || len(f.Evidence) == 0 || f.Step == "" {
					t.Errorf("%s lacks title, why, evidence or step: %+v", f.ID, f)
				}
				if _, ok := Lookup(f.ID); !ok {
					t.Errorf("%s is not in the catalog", f.ID)
				}
			}
			if c.check != nil {
				c.check(t, fs)
			}
		})
	}
}

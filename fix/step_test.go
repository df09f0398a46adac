package fix

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"asym/evidence"
)

// Steps keep the JSON shape reports have always had: flat objects with a
// "kind", the fields of that kind, and nothing else.
func TestStepsJSON(t *testing.T) {
	steps := Steps{
		&RouteAdd{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1", Scope: "link", PrefSrc: netip.MustParseAddr("198.51.100.11")}},
		&RouteAdd{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth1"}, Unknown: "the gateway of eth1"},
		&RuleAdd{RuleSpec: RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 100}},
		&RuleDel{RuleSpec: RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("198.51.100.12/32"), Table: 100}},
		&SysctlSet{Sysctl: "net.ipv4.conf.eth1.rp_filter", Value: "2"},
		&ARPAnnounce{Dev: "eth1", Addr: netip.MustParseAddr("198.51.100.11")},
		&RouteAdd{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth0", Gateway: netip.MustParseAddr("192.0.2.1")}, GatewayFrom: "named by you"},
	}
	b, err := json.Marshal(steps)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"kind":"route.add","table":100,"dst":"198.51.100.0/24","dev":"eth1","prefsrc":"198.51.100.11","scope":"link"},` +
		`{"kind":"route.add","table":100,"dst":"0.0.0.0/0","dev":"eth1","unknown":"the gateway of eth1"},` +
		`{"kind":"rule.add","priority":1000,"src":"198.51.100.11/32","table":100},` +
		`{"kind":"rule.del","priority":1001,"src":"198.51.100.12/32","table":100},` +
		`{"kind":"sysctl.set","sysctl":"net.ipv4.conf.eth1.rp_filter","value":"2"},` +
		`{"kind":"arp.announce","dev":"eth1","addr":"198.51.100.11"},` +
		`{"kind":"route.add","table":100,"dst":"0.0.0.0/0","via":"192.0.2.1","dev":"eth0","gateway_from":"named by you"}]`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	var back Steps
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, steps) {
		t.Errorf("read back %#v", back)
	}
	if err := json.Unmarshal([]byte(`[{"kind":"nft.add"}]`), &back); err == nil || !strings.Contains(err.Error(), `"nft.add"`) {
		t.Errorf("an unknown kind must be refused by name: %v", err)
	}
}

// The commands shown are what a person would type, quoted.
func TestStepWords(t *testing.T) {
	for _, c := range []struct {
		s    Step
		want string
	}{
		{&RouteAdd{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1", Scope: "link", PrefSrc: netip.MustParseAddr("198.51.100.11")}},
			"ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100"},
		{&RouteAdd{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth1"}, Unknown: "the gateway"},
			"ip route add default via GATEWAY dev eth1 table 100"},
		{&RouteAdd{RouteSpec: RouteSpec{Table: 7, Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("2001:db8::1"), Dev: "e$(id)"}},
			"ip -6 route add default via 2001:db8::1 dev 'e$(id)' table 7"},
		{&RuleAdd{RuleSpec: RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 100}},
			"ip rule add from 198.51.100.11 lookup 100 priority 1000"},
		{&RuleDel{RuleSpec: RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("2001:db8::11/128"), Table: 100}},
			"ip -6 rule del from 2001:db8::11 lookup 100 priority 1001"},
		{&SysctlSet{Sysctl: "net.ipv4.conf.eth1.rp_filter", Value: "2"}, "sysctl -w net.ipv4.conf.eth1.rp_filter=2"},
		// Undos name asym's object with its protocol (and the metric of a
		// route it captured): pasted, they touch no look-alike.
		{&RuleDel{RuleSpec: RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 100, Protocol: Protocol}},
			"ip rule del from 198.51.100.11 lookup 100 priority 1000 protocol 245"},
		{&RouteDel{RouteSpec: RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1", Scope: "link", Metric: 5, Protocol: Protocol}},
			"ip route del 198.51.100.0/24 dev eth1 scope link metric 5 proto 245 table 100"},
		{&ARPAnnounce{Dev: "eth1", Addr: netip.MustParseAddr("198.51.100.11")}, "arping -U -c 1 -I eth1 198.51.100.11"},
	} {
		if got := evidence.Command(c.s.Words()...); got != c.want {
			t.Errorf("got  %s\nwant %s", got, c.want)
		}
	}
}

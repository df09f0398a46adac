package playbook

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/fix"
)

// secondLink is server2nic with eth1 on a subnet of its own (a second ISP
// link) that no route goes by: its gateway is one of two routers on the
// link, and only the frames of the flow can say which.
func secondLink() *evidence.Evidence {
	e := server2nic()
	local := netip.MustParseAddr("192.0.2.2")
	e.Flow.Dst = netip.AddrPortFrom(local, 8080)
	e.Host.Local = local
	e.Host.Ifaces[2].Addrs = []netip.Prefix{netip.MustParsePrefix("192.0.2.2/24")}
	e.Request.Decision.Query.Dst, e.Request.Packet.Dst = local, local
	e.Request.ReversePath.Query.Src = local
	e.Reply.Decision.Query.Src, e.Reply.Packet.Src = local, local
	e.Neighbours.Gateways = []evidence.Gateway{{Iface: "eth1", Addr: local, How: "no route and no single neighbour by eth1"}}
	e.Neighbours.Candidates = []evidence.Neighbour{
		{Addr: netip.MustParseAddr("192.0.2.1"), Dev: "eth1", MAC: "02:00:00:00:00:01", State: "STALE", Text: "192.0.2.1 dev eth1 lladdr 02:00:00:00:00:01 STALE"},
		{Addr: netip.MustParseAddr("192.0.2.3"), Dev: "eth1", MAC: "02:00:00:00:00:03", State: "REACHABLE", Text: "192.0.2.3 dev eth1 lladdr 02:00:00:00:00:03 REACHABLE"},
	}
	return e
}

func arrived(iface, mac string, icmp bool) evidence.CapturedPacket {
	p := evidence.CapturedPacket{Time: time.Unix(1, 0), Iface: iface, Dir: evidence.DirIn, SrcMAC: mac, Proto: 6, TCP: tcpSYN,
		Src: netip.MustParseAddrPort("203.0.113.10:40000"), Dst: netip.MustParseAddrPort("192.0.2.2:8080")}
	if icmp {
		p.Proto, p.TCP, p.ICMPMsg = 1, 0, &evidence.ICMPMessage{Type: 3, Code: 4}
	}
	return p
}

func sourceRouteStep(t *testing.T, fs []Finding) *fix.RouteAdd {
	t.Helper()
	f := find(fs, MissingSourceRule)
	if f == nil || f.Fix == nil {
		t.Fatalf("no missing_source_rule fix in %v", ids(fs))
	}
	for _, s := range f.Fix.Steps {
		if r, ok := s.(*fix.RouteAdd); ok && r.Dst.Bits() == 0 {
			return r
		}
	}
	t.Fatalf("the fix has no default route: %v", f.Fix.CommandsIn(nil))
	return nil
}

func TestGatewayOfASecondLink(t *testing.T) {
	cases := []struct {
		name    string
		packets []evidence.CapturedPacket
		live    bool
		want    string // the gateway, "" when it must stay unknown
		how     string // in the caveat, or in what is missing
	}{
		{name: "no live window", want: "", how: "retry the flow with the live view"},
		{name: "frames from one router", live: true, packets: []evidence.CapturedPacket{arrived("eth1", "02:00:00:00:00:01", false), arrived("eth1", "02:00:00:00:00:01", false)},
			want: "192.0.2.1", how: "the router whose MAC 02:00:00:00:00:01 sent the flow's packets in on eth1"},
		{name: "frames from two routers prove nothing", live: true, packets: []evidence.CapturedPacket{arrived("eth1", "02:00:00:00:00:01", false), arrived("eth1", "02:00:00:00:00:03", false)},
			how: "no frame of the flow arrived on eth1 from a single known neighbour"},
		{name: "an ICMP error is not the flow's way in", live: true, packets: []evidence.CapturedPacket{arrived("eth1", "02:00:00:00:00:03", true)},
			how: "no frame of the flow arrived"},
		{name: "frames on another interface", live: true, packets: []evidence.CapturedPacket{arrived("eth0", "02:00:00:00:00:01", false)},
			how: "no frame of the flow arrived"},
		{name: "a MAC the neighbour table does not know", live: true, packets: []evidence.CapturedPacket{arrived("eth1", "02:00:00:00:00:09", false)},
			how: "no frame of the flow arrived"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := secondLink()
			if c.live {
				e.Live = &evidence.LiveEvidence{Report: okRep(evidence.ProbeLive), Captured: true, Packets: c.packets}
			}
			fs := Analyze(e, len(Steps)-1)
			r := sourceRouteStep(t, fs)
			fx := find(fs, MissingSourceRule).Fix
			if c.want == "" {
				if r.Gateway.IsValid() || !strings.Contains(fx.Missing(), c.how) || len(fx.UnknownGateways()) != 1 {
					t.Fatalf("gateway %v, missing %q, want unknown with %q", r.Gateway, fx.Missing(), c.how)
				}
				return
			}
			if r.Gateway.String() != c.want || fx.Missing() != "" || !strings.Contains(r.GatewayFrom, c.how) {
				t.Fatalf("gateway %v (missing %q, from %q), want %s from %q", r.Gateway, fx.Missing(), r.GatewayFrom, c.want, c.how)
			}
		})
	}
}

func TestGatewayNamedByThePerson(t *testing.T) {
	e := secondLink()
	e.NameGateways(map[string]netip.Addr{"eth1": netip.MustParseAddr("192.0.2.3")})
	fs := Analyze(e, len(Steps)-1)
	r := sourceRouteStep(t, fs)
	if r.Gateway.String() != "192.0.2.3" || r.GatewayFrom != "named by you" {
		t.Fatalf("gateway %v from %q", r.Gateway, r.GatewayFrom)
	}
	if got := GatewayChoices(e, "eth1"); len(got) != 2 || got[0].Addr.String() != "192.0.2.1" {
		t.Fatalf("choices %v", got)
	}
}

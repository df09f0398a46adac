package evidence

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNameGateways(t *testing.T) {
	probeGW := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.254")
	shared := &NeighView{Report: Report{Probe: ProbeNeighbours, Status: StatusOK}, Gateways: []Gateway{
		{Iface: "eth0", Gateway: probeGW, How: "route by eth0 in table main"},
		{Iface: "eth1", How: "no route and no single neighbour by eth1"},
	}}
	cases := []struct {
		name  string
		given map[string]netip.Addr
		iface string
		want  netip.Addr
		how   string
	}{
		{"nothing given", nil, "eth1", netip.Addr{}, "no route"},
		{"an unknown gateway named", map[string]netip.Addr{"eth1": other}, "eth1", other, "named by you"},
		{"the probe's confirmed keeps its source", map[string]netip.Addr{"eth0": probeGW}, "eth0", probeGW, "route by eth0"},
		{"another than the probe's says both", map[string]netip.Addr{"eth0": other}, "eth0", other, "named by you (the probe found 192.0.2.1: route by eth0"},
		{"an interface the probe did not list", map[string]netip.Addr{"eth2": other}, "eth2", other, "named by you"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := &Evidence{Neighbours: shared}
			e.NameGateways(c.given)
			var got *Gateway
			for i := range e.Neighbours.Gateways {
				if e.Neighbours.Gateways[i].Iface == c.iface {
					got = &e.Neighbours.Gateways[i]
				}
			}
			if got == nil || got.Gateway != c.want || !strings.Contains(got.How, c.how) {
				t.Fatalf("got %+v, want %v from %q", got, c.want, c.how)
			}
			if len(shared.Gateways) != 2 || shared.Gateways[1].Gateway.IsValid() || shared.Gateways[0].Gateway != probeGW {
				t.Fatalf("the prober's view was changed: %+v", shared.Gateways)
			}
		})
	}
	e := &Evidence{}
	e.NameGateways(map[string]netip.Addr{"eth1": other})
	if e.Neighbours == nil || len(e.Neighbours.Gateways) != 1 || e.Neighbours.OK() {
		t.Fatalf("without a neighbour view: %+v", e.Neighbours)
	}
}

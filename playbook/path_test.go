package playbook

import (
	"slices"
	"testing"

	"asym/evidence"
	"asym/flow"
)

func TestWrongSourceAddressOnClient(t *testing.T) {
	f, _ := flow.ParseString("tcp 198.51.100.11:40000 203.0.113.10:443")
	e := &evidence.Evidence{Flow: f}
	e.Host = server2nic().Host
	e.Host.Role = evidence.RoleClient
	e.Request = &evidence.PathView{Report: okRep("route.request"), Direction: "request", Egress: "eth0",
		Decision: evidence.RouteDecision{Query: evidence.RouteQuery{Dst: cli, Src: a11}, Type: "unicast", Table: 254, Dev: "eth0", Gateway: gw, Text: "203.0.113.10 from 198.51.100.11 via 198.51.100.1 dev eth0 table main"}}
	if got := ids(Analyze(e, 0)); !slices.Equal(got, []string{"wrong_source_address"}) {
		t.Fatalf("got %v", got)
	}
	// A VIP on a dummy interface is meant to leave by whatever routes it.
	e.Host.Ifaces[2].Kind = "dummy"
	if got := ids(Analyze(e, 0)); len(got) != 0 {
		t.Fatalf("VIP: got %v", got)
	}
}

package playbook

import (
	"net/netip"
	"strings"
	"syscall"
	"testing"

	"asym/evidence"
)

// TestRouteRefused: the kernel's refusal names the kind (from the error),
// the route (from the type-filtered dump) or the rule (from the policy
// rules); an input lookup's EINVAL alone is the reverse-path filter's and
// stays with rp_filter_strict_drop; a host off the path says nothing.
func TestRouteRefused(t *testing.T) {
	server, client := netip.MustParseAddr("198.51.100.11"), netip.MustParseAddr("203.0.113.9")
	reply := func(errno syscall.Errno, iif string, refusers ...evidence.Refuser) *evidence.PathView {
		return &evidence.PathView{
			Report:    evidence.Report{Probe: evidence.ProbeReply, Status: evidence.StatusOK, Command: "ip route get 203.0.113.9 from 198.51.100.11"},
			Direction: evidence.DirReply,
			Decision:  evidence.RouteDecision{Query: evidence.RouteQuery{Dst: client, Src: server, Iif: iif}, Errno: errno, Error: errno.Error(), Text: "RTNETLINK answers: " + errno.Error()},
			Packet:    evidence.Packet{Src: server, Dst: client, Iif: "lo", Proto: 6, Sport: 8080, Dport: 40000},
			Refusers:  refusers,
		}
	}
	blackhole := evidence.Refuser{Table: 254, Route: evidence.Route{Dst: netip.MustParsePrefix("203.0.113.0/24"), Type: "blackhole", Text: "blackhole 203.0.113.0/24"}}
	prohibitRule := &evidence.RulesView{Report: evidence.Report{Status: evidence.StatusOK}, Rules: []evidence.Rule{
		{Priority: 0, Action: "lookup", Table: 255, Text: "0: from all lookup local"},
		{Priority: 90, Dst: netip.MustParsePrefix("203.0.113.0/24"), Action: "prohibit", Text: "90: from all to 203.0.113.0/24 prohibit"},
	}}
	unreachableRule := &evidence.RulesView{Report: evidence.Report{Status: evidence.StatusOK}, Rules: []evidence.Rule{
		{Priority: 80, Dst: netip.MustParsePrefix("203.0.113.0/24"), Action: "unreachable", Text: "80: from all to 203.0.113.0/24 unreachable"},
	}}
	for _, c := range []struct {
		name  string
		role  evidence.Role
		path  *evidence.PathView
		rules *evidence.RulesView
		want  string // in the title; "" for no finding
		fix   string // in the fix's advice
	}{
		{"blackhole route", evidence.RoleServer, reply(syscall.EINVAL, "", blackhole), nil, "the blackhole route 203.0.113.0/24 in table main ends it", "ip route del blackhole 203.0.113.0/24 table main"},
		{"prohibit rule", evidence.RoleServer, reply(syscall.EACCES, ""), prohibitRule, "policy rule 90 (prohibit) ends it", "ip rule del priority 90"},
		{"no route", evidence.RoleServer, reply(syscall.ENETUNREACH, ""), nil, "has no route for the reply to 203.0.113.9", "ENETUNREACH"},
		{"unreachable, not found", evidence.RoleServer, reply(syscall.EHOSTUNREACH, ""), nil, "refuses to route the reply to 203.0.113.9 (unreachable)", "ip rule"},
		{"input EINVAL is the reverse-path filter's", evidence.RoleMiddle, reply(syscall.EINVAL, "eth1"), nil, "", ""},
		// Since 6.13 a strict rp_filter failure is EINVAL too: a covering
		// blackhole (a routing daemon's summary) is never blamed for it.
		{"a forwarded packet's EINVAL, a blackhole covers it", evidence.RoleMiddle, reply(syscall.EINVAL, "eth1", blackhole), nil, "", ""},
		{"an unreachable rule answers ENETUNREACH", evidence.RoleServer, reply(syscall.ENETUNREACH, ""), unreachableRule, "policy rule 80 (unreachable) ends it", "ip rule del priority 80"},
		{"off the path", evidence.RoleOffPath, reply(syscall.EHOSTUNREACH, "eth1"), nil, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := &evidence.Evidence{Host: &evidence.HostView{Report: evidence.Report{Status: evidence.StatusOK}, Role: c.role}, Reply: c.path, Rules: c.rules}
			fs := routeRefused(e)
			if c.want == "" {
				if len(fs) != 0 {
					t.Fatalf("want no finding, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].ID != RouteRefused || !strings.Contains(fs[0].Title, c.want) {
				t.Fatalf("want %q, got %+v", c.want, fs)
			}
			if fx := fs[0].Fix; fx == nil || len(fx.Steps) != 0 || !strings.Contains(fx.Advice, c.fix) {
				t.Fatalf("the fix is advice that says %q, never a change asym makes: %+v", c.fix, fx)
			}
		})
	}
}

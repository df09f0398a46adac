package probes

import (
	"context"
	"net"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"asym/evidence"
)

// TestRefusedReply: a server whose reply the kernel refuses, for each way
// it can: a blackhole, unreachable or prohibit route (in main or in a
// policy table the flow's rule leads to), and no route at all. The probe
// names the kind from the kernel's error and the route that holds the
// client from a dump the kernel filters by type (only routes of that type
// are sent, whatever the tables hold besides).
func TestRefusedReply(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, kind string
		table      int
		wantPrefix string
	}{
		{"blackhole in main", "blackhole", unix.RT_TABLE_MAIN, "203.0.113.0/24"},
		{"unreachable in main", "unreachable", unix.RT_TABLE_MAIN, "203.0.113.0/25"},
		{"prohibit in a policy table", "prohibit", 100, "203.0.113.9/32"},
		{"no route", "no route", 0, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			tg, h, _ := twoNICs(t)
			eth0, err := h.LinkByName("eth0")
			must(t, err)
			// Many unicast routes, which the type-filtered dump must not send.
			for i := 0; i < 200; i++ {
				must(t, h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(198, 18, byte(i), 0), Mask: net.CIDRMask(24, 32)}, LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("198.51.100.1")}))
			}
			types := map[string]int{"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE, "prohibit": unix.RTN_PROHIBIT}
			switch {
			case c.kind == "no route":
				must(t, h.RouteDel(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("198.51.100.1")}))
			default:
				_, dst, _ := net.ParseCIDR(c.wantPrefix)
				must(t, h.RouteAdd(&netlink.Route{Dst: dst, Type: types[c.kind], Table: c.table}))
				// A wider one of the same kind elsewhere, and one that does
				// not hold the client: the longest that holds it comes first.
				must(t, h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(203, 0, 0, 0), Mask: net.CIDRMask(8, 32)}, Type: types[c.kind], Table: 200}))
				must(t, h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: net.IPv4(192, 0, 2, 0), Mask: net.CIDRMask(24, 32)}, Type: types[c.kind], Table: 200}))
				if c.table != unix.RT_TABLE_MAIN {
					r := netlink.NewRule()
					r.Src, r.Table, r.Priority = &net.IPNet{IP: ip11.AsSlice(), Mask: net.CIDRMask(32, 32)}, c.table, 100
					must(t, h.RuleAdd(r))
				}
			}
			f := parseFlow(t, "tcp 203.0.113.9:40000 198.51.100.11:8080")
			c0 := NewCollector(tg, f, "")
			c0.Run(ctx, evidence.ProbeReply)
			e := c0.Evidence()
			p := e.Reply
			if p == nil || !p.OK() {
				t.Fatalf("reply probe: %+v", p)
			}
			if got := p.Decision.Refusal(); got != c.kind {
				t.Fatalf("refusal %q, want %q (%s, errno %d)", got, c.kind, p.Decision.Text, p.Decision.Errno)
			}
			if c.kind == "no route" {
				if len(p.Refusers) != 0 || hasLine(p.Lines, "type") {
					t.Fatalf("no route: no refusing route to look for: %+v\n%v", p.Refusers, p.Lines)
				}
				return
			}
			if len(p.Refusers) != 2 || p.Refusers[0].Route.Dst.String() != c.wantPrefix || p.Refusers[0].Table != c.table || p.Refusers[1].Table != 200 {
				t.Fatalf("refusers: %+v", p.Refusers)
			}
			if !hasLine(p.Lines, "route show table all type "+c.kind+" match 203.0.113.9") {
				t.Errorf("the command is not shown:\n%v", p.Lines)
			}
			// The dump sent the three routes of the kind, not the 200
			// unicast ones (counted before: the reply probe's own lookups).
			c1 := NewCollector(tg, f, "")
			n0, _, _ := tg.Received()
			c1.Run(ctx, evidence.ProbeReply)
			n1, _, _ := tg.Received()
			if got := n1 - n0; got > 10 {
				t.Errorf("the refusal's lookups received %d routes: the dump was not filtered by type", got)
			}
		})
	}
}

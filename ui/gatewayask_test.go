package ui

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
)

func typeText(t *testing.T, m *Model, s string) {
	t.Helper()
	for _, r := range s {
		_, cmd := m.Update(tea.KeyPressMsg{Code: r, Text: string(r)})
		drain(t, m, cmd)
	}
}

func clearInput(t *testing.T, m *Model) {
	t.Helper()
	for range 64 {
		_, cmd := m.Update(tea.KeyPressMsg{Code: tea.KeyBackspace})
		drain(t, m, cmd)
	}
}

// The two-ISP host recorded on the lab, with ISP A's gateway unknown: no
// route by eth0 and two routers on its LAN. asym asks, offers both, checks
// the answer, and applies the fix with it.
func TestFixPaneAsksForAGateway(t *testing.T) {
	m, rp, _ := newTestModel(t, "two-isps-host", 120, 40)
	nv := *rp.all.Neighbours
	nv.Gateways = append([]evidence.Gateway(nil), nv.Gateways...)
	nv.Gateways[0].Gateway, nv.Gateways[0].How = netip.Addr{}, "no route and no single neighbour by eth0"
	nv.Candidates = []evidence.Neighbour{
		{Addr: netip.MustParseAddr("192.0.2.1"), Dev: "eth0", MAC: "02:00:00:00:00:01", State: "STALE", Text: "192.0.2.1 dev eth0 lladdr 02:00:00:00:00:01 STALE"},
		{Addr: netip.MustParseAddr("192.0.2.7"), Dev: "eth0", MAC: "02:00:00:00:00:07", State: "STALE", Text: "192.0.2.7 dev eth0 lladdr 02:00:00:00:00:07 STALE"},
	}
	rp.all.Neighbours = &nv
	now := fixedNow()
	m.opt.Now = func() time.Time { return now }
	var shownCmds []string
	sess(m).apply = func(_ context.Context, f flow.Flow, id string, shown []string) (*playbook.FixOutcome, error) {
		shownCmds = shown
		return &playbook.FixOutcome{Changes: len(shown), Deadline: now.Add(time.Minute), Watchdog: "test", Before: m.findings}, nil
	}
	sess(m).decide = func(context.Context, bool) error { return nil }
	press(t, m, "a", "tab")
	for m.findings[m.fsel].ID != playbook.MissingSourceRule {
		press(t, m, "down")
	}
	press(t, m, "enter", "f")
	if !strings.Contains(m.Render(), "GATEWAY") {
		t.Fatalf("the fix shows the gateway it lacks:\n%s", m.Render())
	}
	now = now.Add(time.Second)
	press(t, m, "enter")
	if m.fix.ask == nil || m.fix.ask.dev != "eth0" || m.fix.ask.input.Value() != "192.0.2.1" {
		t.Fatalf("enter asks for eth0's gateway with the first router offered: %+v\n%s", m.fix.ask, m.Render())
	}
	screen := m.Render()
	for _, want := range []string{"Gateway of eth0?", "192.0.2.7 dev eth0 lladdr 02:00:00:00:00:07", "no route and no single neighbour"} {
		if !strings.Contains(screen, want) {
			t.Fatalf("the question shows %q:\n%s", want, screen)
		}
	}
	press(t, m, "down")
	if m.fix.ask.input.Value() != "192.0.2.7" {
		t.Fatalf("↓ picks the next router: %q", m.fix.ask.input.Value())
	}
	for _, c := range []struct{ typed, says string }{
		{"q", "is not an IP address"},
		{"198.51.100.1", "is not on eth0's subnet (192.0.2.0/24)"},
		{"192.0.2.2", "this host's own address"},
		{"2001:db8::1", "eth0 has no IPv6 address"},
	} {
		clearInput(t, m)
		typeText(t, m, c.typed)
		press(t, m, "enter")
		if m.fix.ask == nil || !strings.Contains(m.fix.ask.err, c.says) {
			t.Fatalf("%q: the answer is refused with %q: %+v", c.typed, c.says, m.fix.ask)
		}
	}
	if len(shownCmds) != 0 || m.fix.confirming {
		t.Fatal("nothing is applied while asking")
	}
	clearInput(t, m)
	typeText(t, m, "192.0.2.7")
	press(t, m, "enter")
	if m.fix.ask != nil || m.fix.named["eth0"].String() != "192.0.2.7" {
		t.Fatalf("a valid answer is kept: %+v %v", m.fix.ask, m.fix.named)
	}
	screen = m.Render()
	if strings.Contains(screen, "GATEWAY") || !strings.Contains(screen, "via 192.0.2.7 dev eth0") || !strings.Contains(screen, "named by you") {
		t.Fatalf("the fix now goes by the named gateway and says so:\n%s", screen)
	}
	now = now.Add(time.Second)
	press(t, m, "enter")
	now = now.Add(time.Second)
	press(t, m, "y")
	if len(shownCmds) == 0 || sess(m).gateways["eth0"].String() != "192.0.2.7" {
		t.Fatalf("the fix is applied with the named gateway handed to the session: %v %v", shownCmds, sess(m).gateways)
	}
}

func TestGatewayAskEscapes(t *testing.T) {
	m, rp, _ := newTestModel(t, "two-isps-host", 120, 40)
	nv := *rp.all.Neighbours
	nv.Gateways = append([]evidence.Gateway(nil), nv.Gateways...)
	nv.Gateways[0].Gateway = netip.Addr{}
	rp.all.Neighbours = &nv
	now := fixedNow()
	m.opt.Now = func() time.Time { return now }
	sess(m).apply = func(context.Context, flow.Flow, string, []string) (*playbook.FixOutcome, error) {
		t.Fatal("nothing may be applied")
		return nil, nil
	}
	press(t, m, "a", "tab")
	for m.findings[m.fsel].ID != playbook.MissingSourceRule {
		press(t, m, "down")
	}
	press(t, m, "enter", "f")
	now = now.Add(time.Second)
	press(t, m, "enter")
	if m.fix.ask == nil || m.fix.ask.input.Value() != "" {
		t.Fatalf("with no router known the question starts empty: %+v", m.fix.ask)
	}
	press(t, m, "q", "esc")
	if m.fix.ask != nil || m.fix.named != nil || !strings.Contains(m.flash, "nothing applied") {
		t.Fatalf("q is typed, not quit; esc cancels: %+v %q", m.fix.ask, m.flash)
	}
}

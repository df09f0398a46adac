package ui

import (
	"context"
	"errors"
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"
)

// TestLiveViewErrorsAreLines: what the watch could not do (several parts
// at once, joined into one error) shows as one line each, never as an
// escaped line break, and once however often it is reported.
func TestLiveViewErrorsAreLines(t *testing.T) {
	m, _, _ := newTestModel(t, "firewall-ecmp-fw2", 120, 40)
	ch := make(chan evidence.WatchUpdate, 2)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return ch }
	both := errors.Join(errors.New("conntrack events are unavailable: needs root (CAP_NET_ADMIN)"),
		errors.New("firewall rule counters are unavailable: needs root (CAP_NET_ADMIN)"))
	ch <- evidence.WatchUpdate{Err: both}
	ch <- evidence.WatchUpdate{Err: both}
	close(ch)
	press(t, m, "l")
	screen := m.Render()
	if strings.Contains(screen, `\x`) {
		t.Errorf("an escaped line break:\n%s", screen)
	}
	for _, want := range []string{"! conntrack events are unavailable: needs root (CAP_NET_ADMIN)", "! firewall rule counters are unavailable: needs root (CAP_NET_ADMIN)"} {
		if strings.Count(screen, want) != 1 {
			t.Errorf("want %q once:\n%s", want, screen)
		}
	}
}

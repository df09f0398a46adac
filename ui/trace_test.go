package ui

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
)

// TestTraceKeyAsksOnce: t sends packets, so the first t only asks; a t
// typed at once after it is swallowed; the t after that traces and shows
// the judged paths; later a t traces without asking again. esc declines.
func TestTraceKeyAsksOnce(t *testing.T) {
	b, err := os.ReadFile("../playbook/testdata/trace/firewall-ecmp.json")
	if err != nil {
		t.Fatal(err)
	}
	var recorded evidence.Trace
	if err := json.Unmarshal(b, &recorded); err != nil {
		t.Fatal(err)
	}
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	now := fixedNow()
	m.opt.Now = func() time.Time { return now }
	calls := 0
	sess(m).trace = func(_ context.Context, f flow.Flow) (evidence.Trace, []playbook.Finding, error) {
		calls++
		tr := recorded
		return tr, playbook.JudgeTrace(&tr), nil
	}
	press(t, m, "t")
	if calls != 0 || !strings.Contains(m.flash, "press t again to send them") {
		t.Fatalf("the first t must ask, not send: %d traces, flash %q", calls, m.flash)
	}
	press(t, m, "esc")
	press(t, m, "t")
	if calls != 0 {
		t.Fatal("esc declines: the next t asks again")
	}
	press(t, m, "t")
	if calls != 0 {
		t.Fatal("a t typed before the question could be read must be swallowed")
	}
	now = now.Add(time.Second)
	press(t, m, "t")
	if calls != 1 || !m.trace.shown || m.trace.running {
		t.Fatalf("the second t traces: %d traces, shown %v, running %v", calls, m.trace.shown, m.trace.running)
	}
	text := strings.Join(m.detailLines(100), "\n")
	for _, want := range []string{"first stateful device without state: 198.51.100.13", "state_missing_in_path", "│ 198.51.100.13"} {
		if !strings.Contains(text, want) {
			t.Errorf("the detail pane lacks %q:\n%s", want, text)
		}
	}
	press(t, m, "esc")
	if m.trace.shown {
		t.Error("esc closes the trace")
	}
	press(t, m, "t")
	if calls != 2 || !m.trace.shown {
		t.Errorf("asked once per session: the next t traces at once (%d traces)", calls)
	}
}

package ui

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"
)

// recordedDrops are the kernel's drops of a lab check recorded with
// check --watch (playbook/testdata/drops).
func recordedDrops(t *testing.T, name string) []evidence.Drop {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "playbook", "testdata", "drops", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(b, &rec); err != nil || rec.Evidence.Live == nil || len(rec.Evidence.Live.Drops) == 0 {
		t.Fatalf("recording without drops: %v", err)
	}
	return rec.Evidence.Live.Drops
}

// TestLiveViewDrops: the kernel's drops stream into the live view like
// the packets, join the finding they prove at once, and go into the notes.
func TestLiveViewDrops(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	press(t, m, "a")
	watch := make(chan evidence.WatchUpdate)
	drops := make(chan evidence.DropUpdate, 1)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return watch }
	sess(m).drops = func(context.Context, flow.Flow) <-chan evidence.DropUpdate { return drops }
	ds := recordedDrops(t, "two-nics-strict-host")
	drops <- evidence.DropUpdate{Hook: "tp_btf/kfree_skb", Drops: ds}
	close(drops)
	close(watch)
	press(t, m, "l")
	proven := false
	for _, f := range m.findings {
		for _, l := range f.Evidence {
			if f.ID == "rp_filter_strict_drop" && l.Probe == evidence.ProbeLive && strings.Contains(l.Text, "the kernel dropped the SYN on eth1: IP_RPFILTER") {
				proven = true
			}
		}
	}
	if !proven {
		t.Fatalf("the kernel's drop must join rp_filter_strict_drop: %+v", m.findings)
	}
	view := strings.Join(m.live.lines(NewStyles(true), 120), "\n")
	if !strings.Contains(view, "kernel drops of the flow") || !strings.Contains(view, "IP_RPFILTER ×2, OTHERHOST ×2") || !strings.Contains(view, "eth1 IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], ip length 60 dropped: IP_RPFILTER") {
		t.Fatalf("the live view does not show the drops:\n%s", view)
	}
	if notes := string(m.notesMarkdown()); !strings.Contains(notes, "Kernel drops of the flow (tp_btf/kfree_skb; 0 not kept)") || !strings.Contains(notes, ds[0].Text) {
		t.Fatalf("the notes do not carry the drops:\n%s", notes)
	}
}

// TestLiveViewDropsUnavailable: a witness that cannot run says why in the
// live view, and the rest of it goes on.
func TestLiveViewDropsUnavailable(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 120, 40)
	press(t, m, "a")
	drops := make(chan evidence.DropUpdate, 1)
	watch := make(chan evidence.WatchUpdate)
	close(watch)
	sess(m).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate { return watch }
	sess(m).drops = func(context.Context, flow.Flow) <-chan evidence.DropUpdate { return drops }
	drops <- evidence.DropUpdate{Err: errors.New("kernel drop witness is unavailable: needs root (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN)")}
	close(drops)
	press(t, m, "l")
	view := strings.Join(m.live.lines(NewStyles(true), 120), "\n")
	if !strings.Contains(view, "kernel drop witness is unavailable: needs root") || !strings.Contains(view, "conntrack events for the flow") {
		t.Fatalf("%s", view)
	}
	if le := m.live.evidence(fixedNow()); le.DropsUnavailable == "" || le.DropHook != "" {
		t.Fatalf("the live evidence must say the witness did not run: %+v", le)
	}
}

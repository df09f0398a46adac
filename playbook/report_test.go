package playbook

import (
	"strings"
	"testing"
	"time"
)

// TestTextSummaryFirst: the text report opens with the verdict, the cause
// and the list of findings; each finding in full follows, the probes last.
func TestTextSummaryFirst(t *testing.T) {
	ev := loadRecorded(t, "rule-typo-host")
	r := NewReport(time.Now(), &ev, []string{"ip", "netns", "exec", "h"}, ev.Reports(), Analyze(&ev, len(Steps)-1))
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	at := func(s string) int {
		i := strings.Index(out, s)
		if i < 0 {
			t.Fatalf("the text report lacks %q:\n%s", s, out)
		}
		return i
	}
	verdict, cause, list := at("verdict: ✗ broken, from the findings below\ncause:"), at("cause: rule_unknown_source: "), at("findings (3, each in full below):")
	first, detail, probes := at("   WARNING  rule_unknown_source "), at("\n== Findings\n"), at("######## The probes")
	if !(verdict < cause && cause < list && list < first && first < detail && detail < probes) {
		t.Errorf("summary first, then the findings, then the probes:\n%s", out)
	}
	if !strings.Contains(out[cause:list], "explains reply_wrong_egress") {
		t.Errorf("the cause says what it explains: %s", out[cause:list])
	}
	if at("\nWARNING rule_unknown_source  (") > at("\nCRITICAL reply_wrong_egress  (") {
		t.Error("the cause's details come before its symptom's")
	}
}

// TestMarkdownEachFixOnce: the notes name the cause, and a fix that two
// findings share is written once.
func TestMarkdownEachFixOnce(t *testing.T) {
	ev := loadRecorded(t, "two-nics-strict-host")
	r := NewReport(time.Now(), &ev, nil, ev.Reports(), Analyze(&ev, len(Steps)-1))
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	md := b.String()
	if !strings.Contains(md, "- root cause: `missing_source_rule`: ") || !strings.Contains(md, "explains `rp_filter_strict_drop`, `reply_wrong_egress`") {
		t.Errorf("the notes name the root cause:\n%s", md)
	}
	if n := strings.Count(md, "ip rule add from 198.51.100.11 lookup 100"); n != 1 {
		t.Errorf("the source-routing fix is written %d times, want once:\n%s", n, md)
	}
	if !strings.Contains(md, "the same as the fix of `missing_source_rule` above") {
		t.Errorf("the other findings name the fix written above:\n%s", md)
	}
}

package ui

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/text"

	"asym/evidence"
	"asym/flow"
)

// mdDoc is notes parsed by a Markdown parser (goldmark, CommonMark): what
// a reader of the notes sees, not what the writer meant.
type mdDoc struct {
	src      []byte
	root     ast.Node
	headings []string // "## text"
}

func parseMarkdown(t *testing.T, src []byte) mdDoc {
	t.Helper()
	d := mdDoc{src: src, root: goldmark.New().Parser().Parse(text.NewReader(src))}
	ast.Walk(d.root, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if h, ok := n.(*ast.Heading); ok && entering {
			d.headings = append(d.headings, strings.Repeat("#", h.Level)+" "+d.inline(h))
		}
		return ast.WalkContinue, nil
	})
	return d
}

// inline is the text of a node's inline content.
func (d mdDoc) inline(n ast.Node) string {
	var b strings.Builder
	for c := n.FirstChild(); c != nil; c = c.NextSibling() {
		switch c := c.(type) {
		case *ast.Text:
			b.Write(c.Value(d.src))
			if c.SoftLineBreak() {
				b.WriteByte(' ')
			}
		case *ast.String:
			b.Write(c.Value)
		default:
			b.WriteString(d.inline(c))
		}
	}
	return b.String()
}

// list is the items of the list that follows the heading.
func (d mdDoc) list(t *testing.T, heading string) []string {
	t.Helper()
	var items []string
	found := false
	for n := d.root.FirstChild(); n != nil; n = n.NextSibling() {
		if h, ok := n.(*ast.Heading); ok {
			found = strings.Repeat("#", h.Level)+" "+d.inline(h) == heading
			continue
		}
		if l, ok := n.(*ast.List); ok && found {
			for it := l.FirstChild(); it != nil; it = it.NextSibling() {
				items = append(items, d.inline(it.FirstChild()))
			}
			return items
		}
	}
	t.Fatalf("no list under %q; headings %q", heading, d.headings)
	return nil
}

// codeBlocks are the fenced blocks' lines.
func (d mdDoc) codeBlocks() [][]string {
	var out [][]string
	ast.Walk(d.root, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if cb, ok := n.(*ast.FencedCodeBlock); ok && entering {
			var lines []string
			for i := 0; i < cb.Lines().Len(); i++ {
				seg := cb.Lines().At(i)
				lines = append(lines, strings.TrimRight(string(seg.Value(d.src)), "\n"))
			}
			out = append(out, lines)
		}
		return ast.WalkContinue, nil
	})
	return out
}

// wellFormed checks what a parser cannot: each fence is closed, every line
// that starts with # outside a fence is a heading with a blank line before
// it, and no control character was written as a literal escape.
func wellFormed(t *testing.T, d mdDoc) {
	t.Helper()
	lines := strings.Split(string(d.src), "\n")
	fences, heads := 0, 0
	inFence := ""
	for i, l := range lines {
		switch {
		case inFence != "" && l == inFence:
			inFence = ""
		case inFence != "":
		case strings.HasPrefix(l, "```"):
			inFence, fences = l, fences+1
		case strings.HasPrefix(l, "#"):
			heads++
			if i > 0 && lines[i-1] != "" {
				t.Errorf("no blank line before the heading %q (line %d)", l, i+1)
			}
		}
	}
	if inFence != "" {
		t.Errorf("a code block is never closed (%q)", inFence)
	}
	if n := len(d.codeBlocks()); n != fences {
		t.Errorf("the parser sees %d code blocks, the notes open %d", n, fences)
	}
	if heads != len(d.headings) {
		t.Errorf("the parser sees %d headings, the notes write %d: %q", len(d.headings), heads, d.headings)
	}
	if strings.Contains(string(d.src), `\x0a`) || strings.Contains(string(d.src), `\x0d`) {
		t.Error("a line break was written as a literal escape")
	}
}

// TestNotesIncidentRecord: notes written after the steps, the live view, a
// fix applied and kept read as an incident record: the summary and a
// timeline first, the fix once, the evidence after, packets capped, valid
// Markdown.
func TestNotesIncidentRecord(t *testing.T) {
	fm := newFixModel(t, 120, 40)
	var packets []evidence.CapturedPacket
	for i := range 60 {
		packets = append(packets, evidence.CapturedPacket{Text: fmt.Sprintf("02:13:%02d.000000 eth1 In  IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], seq %d", i%60, i)})
	}
	sess(fm.Model).watch = func(context.Context, flow.Flow) <-chan evidence.WatchUpdate {
		ch := make(chan evidence.WatchUpdate)
		close(ch)
		return ch
	}
	sess(fm.Model).capture = func(context.Context, flow.Flow) <-chan evidence.CaptureUpdate {
		ch := make(chan evidence.CaptureUpdate, 1)
		ch <- evidence.CaptureUpdate{Packets: packets}
		close(ch)
		return ch
	}
	fm.clock(5 * time.Second)
	press(t, fm.Model, "a")
	fm.clock(10 * time.Second)
	press(t, fm.Model, "l", "esc")
	fm.clock(10 * time.Second)
	press(t, fm.Model, "f")
	fm.clock(time.Second)
	press(t, fm.Model, "enter")
	fm.clock(time.Second)
	press(t, fm.Model, "y")
	fm.clock(20 * time.Second)
	press(t, fm.Model, "K", "e")
	src, err := os.ReadFile(fm.opt.NotesPath)
	if err != nil {
		t.Fatalf("notes: %v (%s)", err, fm.flash)
	}
	d := parseMarkdown(t, src)
	wellFormed(t, d)
	want := []string{"## asym: tcp 203.0.113.10:40000 → 198.51.100.11:8080", "### Summary", "### Timeline (UTC)", "### The fix", "### Findings"}
	for i, h := range want {
		if i >= len(d.headings) || d.headings[i] != h {
			t.Fatalf("the notes open with %q, want %q", d.headings, want)
		}
	}
	if d.headings[len(d.headings)-1] != "### Live view" {
		t.Errorf("the live view's evidence comes last: %q", d.headings)
	}
	summary := strings.Join(d.list(t, "### Summary"), "\n")
	for _, w := range []string{"flow: tcp 203.0.113.10:40000 198.51.100.11:8080", "host: vm (kernel 6.18.44), netns asym-lab-host, server side",
		"verdict: not proven (steps run: First 02:13:27, Second 02:13:27, Third 02:13:27)", "done: the fix of missing_source_rule applied at 02:13:27 UTC (3 changes); kept at 02:13:47 UTC", "written: 2026-11-24T02:13:47Z by alice"} {
		if !strings.Contains(summary, w) {
			t.Errorf("the summary lacks %q:\n%s", w, summary)
		}
	}
	timeline := d.list(t, "### Timeline (UTC)")
	steps := []string{"asym opened on netns asym-lab-host", "flow: tcp 203.0.113.10:40000 198.51.100.11:8080",
		"02:13:05 First step run: 2 finding(s): rp_filter_strict_drop, reply_wrong_egress", "Second step run: clean", "Third step run: 2 finding(s): missing_source_rule, arp_flux",
		"fix of missing_source_rule applied: 3 changes; reverts at 02:14:27 unless kept", "First step run: clean", "re-check after the fix: no findings", "fix kept by alice"}
	stamp := regexp.MustCompile(`^\d\d:\d\d:\d\d `)
	last, at := "", 0
	for _, item := range timeline {
		if !stamp.MatchString(item) || item[:8] < last {
			t.Errorf("timeline items carry their time, in order: %q after %s", item, last)
		}
		last = item[:8]
		if at < len(steps) && strings.Contains(item, steps[at]) {
			at++
		}
	}
	if at < len(steps) {
		t.Errorf("the timeline lacks %q (in this order):\n%s", steps[at], strings.Join(timeline, "\n"))
	}
	var fix, undo, pkts []string
	for _, cb := range d.codeBlocks() {
		switch {
		case fix == nil && strings.Contains(strings.Join(cb, "\n"), "ip rule add from 198.51.100.11"):
			fix = cb
		case undo == nil && strings.Contains(strings.Join(cb, "\n"), "ip rule del"):
			undo = cb
		case strings.Contains(strings.Join(cb, "\n"), "Flags [S]"):
			pkts = cb
		}
	}
	if len(fix) != 3 || len(undo) != 2 {
		t.Errorf("the fix (%d commands) and its undo (%d) are in the notes", len(fix), len(undo))
	}
	if len(pkts) != 21 || !strings.Contains(pkts[10], "40 packets not shown") {
		t.Errorf("packets are an excerpt, the first and last 10: %d lines\n%s", len(pkts), strings.Join(pkts, "\n"))
	}
}

// TestNotesBeforeMeasuring: notes written before any step ran claim
// nothing: no verdict, no cause, no findings.
func TestNotesBeforeMeasuring(t *testing.T) {
	m, _, _ := newTestModel(t, "two-nics-strict-host", 80, 24)
	src := m.notesMarkdown()
	d := parseMarkdown(t, src)
	wellFormed(t, d)
	summary := strings.Join(d.list(t, "### Summary"), "\n")
	if !strings.Contains(summary, "verdict: not measured: no step has run yet") || strings.Contains(summary, "root cause") {
		t.Errorf("before any step the summary claims nothing:\n%s", summary)
	}
	for _, h := range d.headings {
		if h == "### Findings" {
			t.Errorf("no findings section before anything was measured: %q", d.headings)
		}
	}
	if !strings.Contains(string(src), "Nothing was measured") || strings.Contains(string(src), "nothing breaks") {
		t.Errorf("the evidence says nothing was measured:\n%s", src)
	}
}

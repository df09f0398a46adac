package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"
)

// TestPeerTextIsCleanedEverywhere (issue #16, case 10): a peer whose JSON
// carries ESC, OSC, C1 controls and bidi overrides in every text field a
// report shows. asym check's text, Markdown and JSON reports all show the
// escapes, never the raw characters.
func TestPeerTextIsCleanedEverywhere(t *testing.T) {
	probetest.RequireRoot(t)
	ns := probetest.NewNS(t)
	f, err := flow.ParseString("tcp 203.0.113.10:40000 198.51.100.11:8080")
	if err != nil {
		t.Fatal(err)
	}
	const hostile = "db1\x1b[2J\x1b]0;pwned\x07\u009b31m\u0085\u202egnp.exe\u2066x"
	h := &evidence.HostView{Hostname: hostile, Kernel: hostile, Target: hostile, Missing: hostile}
	h.Report = evidence.Report{Probe: evidence.ProbeHost, Title: hostile, Command: hostile, Lines: []string{hostile}, Status: evidence.StatusOK}
	c := evidence.Collection{Format: evidence.CollectFormat, Version: hostile, Time: time.Now(), Evidence: evidence.Evidence{Flow: f, Host: h}}
	b, _ := json.Marshal(c)
	file := filepath.Join(t.TempDir(), "collect.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// The peer command prints the file and ignores the words asym adds.
	peer := "sh -c 'cat " + file + "' sh"
	for _, format := range []string{"", "--markdown", "--json"} {
		args := []string{"check", "--netns", ns.Name, "--peer", peer, "tcp", "203.0.113.10:40000", "198.51.100.11:8080"}
		if format != "" {
			args = append(args, format)
		}
		_, out := asymRun(t, args...)
		if !strings.Contains(out, `\x1b]0;pwned`) {
			t.Errorf("%s: the peer's text must show, with its escapes visible:\n%s", format, out)
		}
		if format != "--json" {
			harmless(t, "check "+format, out)
			continue
		}
		var rep any
		mustJSON(t, out, &rep)
		walkJSONStrings(rep, func(s string) { harmless(t, "a string of the JSON report", s) })
	}
}

// walkJSONStrings calls fn with every string of decoded JSON, keys too.
func walkJSONStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, e := range v {
			walkJSONStrings(e, fn)
		}
	case map[string]any:
		for k, e := range v {
			fn(k)
			walkJSONStrings(e, fn)
		}
	}
}

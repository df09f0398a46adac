package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/probes/probetest"
)

// TestREADMEJSONKeys holds the README's paragraph on the JSON report to
// real reports: every key (or value) it names in backquotes is in a real
// report or is a value the code gives that field, and every key of a real
// report's top level and of its host is named there. The reports are
// asym check --json on two-nics-strict's host with its client as the peer,
// on firewall-one-way-nft's firewall, and as nobody in a namespace it is
// not on the path of (privileges missing, probes unavailable).
func TestREADMEJSONKeys(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, para, ok := strings.Cut(string(readme), "\nThe JSON report (`--json`)")
	para, _, _ = strings.Cut(para, "\n\n")
	if !ok {
		t.Fatal("the README has no paragraph that starts \"The JSON report (`--json`)\"")
	}
	var documented []string
	for _, m := range regexp.MustCompile("`([a-z_]+)(\\[\\])?`").FindAllStringSubmatch(para, -1) {
		documented = append(documented, m[1])
	}

	env := upScenario(t, "two-nics-strict")
	env.Try(t.Context(), 1500*time.Millisecond)
	client, server := env.Ends()
	bin := asymBinary(t)
	check := exec.Command(bin, append([]string{"check", "--json", "--netns", server, "--peer", "ip netns exec " + client, "--peer-asym", bin}, strings.Fields(env.Checks[0].Flow)...)...)
	withPeer, _ := check.Output() // exit status 1: findings
	// A stateful drop, whose fix is advice rather than steps.
	fw := upScenario(t, "firewall-one-way-nft")
	fw.Try(t.Context(), 1500*time.Millisecond)
	advice, _ := exec.Command(bin, append([]string{"check", "--json", "--netns", fw.Checks[0].Target}, strings.Fields(fw.Checks[0].Flow)...)...).Output()
	off := probetest.NewNS(t)
	withoutRoot, _ := runAsNobody(t, off, nobodyBinary(t), t.TempDir(), append([]string{"check", "--json"}, strings.Fields(env.Checks[0].Flow)...)...)

	seen := map[string]bool{}
	var top, host []string
	for _, out := range []string{string(withPeer), string(advice), withoutRoot} {
		var rep map[string]any
		if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); err != nil { // a note on stderr may follow
			t.Fatalf("not a JSON report: %v\n%s", err, out)
		}
		walkJSON(rep, seen)
		for k := range rep {
			top = append(top, k)
		}
		for k := range rep["host"].(map[string]any) {
			host = append(host, k)
		}
	}
	// Values of enumerations that these two reports need not show.
	for _, v := range []string{string(evidence.RoleMiddle), string(evidence.RoleClient), string(evidence.RoleServer), string(evidence.RoleOffPath),
		string(evidence.StatusOK), string(evidence.StatusUnavailable), string(evidence.StatusFailed)} {
		seen[v] = true
	}
	for _, k := range documented {
		if !seen[k] {
			t.Errorf("the README names `%s`, which no real report has", k)
		}
	}
	for _, k := range append(top, host...) {
		if !slices.Contains(documented, k) {
			t.Errorf("a real report has %q, which the README's paragraph does not name", k)
		}
	}
	for _, want := range []string{"missing_privileges", "command_prefix", "peer", "across", "reason", "advice", "caveat", "alternatives", "off_path"} {
		if !seen[want] {
			t.Errorf("the reports lack %q: the test does not cover what it should", want)
		}
	}
}

// walkJSON adds every key, and every string value, of v to seen.
func walkJSON(v any, seen map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			seen[k] = true
			walkJSON(x, seen)
		}
	case []any:
		for _, x := range v {
			walkJSON(x, seen)
		}
	case string:
		seen[v] = true
	}
}

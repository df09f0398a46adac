package playbook

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's findings table is what people read to learn the ids: every
// id in the catalog has a row there, with its step and severity.
func TestREADMEListsEveryFinding(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(b), "\n## Findings\n")
	if !ok {
		t.Fatal("the README has no Findings section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rows := map[FindingID][2]string{}
	id := regexp.MustCompile("`([a-z_]+)`")
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 {
			continue
		}
		for _, m := range id.FindAllStringSubmatch(cells[1], -1) {
			rows[FindingID(m[1])] = [2]string{strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])}
		}
	}
	for _, e := range Catalog {
		r, ok := rows[e.ID]
		if !ok {
			t.Errorf("%s is not in the README's findings table", e.ID)
			continue
		}
		if !strings.HasPrefix(r[0], string(e.Severity)) || r[1] != e.Step {
			t.Errorf("%s: the README says %q, %q; the catalog %s, %s", e.ID, r[0], r[1], e.Severity, e.Step)
		}
	}
}

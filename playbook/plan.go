package playbook

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
	"strings"
)

// Plan is what `asym fix` would change: the host-local steps of the
// findings' fixes, each once, in the order the fixes give them.
type Plan struct {
	Steps     fix.Steps
	Summaries []string
	Findings  []string // ids whose fix the plan carries
	Skipped   []string // sentences: findings whose fix cannot be applied here, and why
}

// PlanFixes gathers the fixes of the findings (only the one named by only,
// when set). Fixes that are advice, or that lack a fact asym could not find
// (a gateway), are listed in Skipped, never guessed.
func PlanFixes(findings []Finding, only FindingID) (Plan, error) {
	var p Plan
	seen := map[string]bool{}
	found := false
	for _, f := range findings {
		if only != "" && f.ID != only {
			continue
		}
		found = true
		switch {
		case f.Fix == nil || len(f.Fix.Steps) == 0:
			p.Skipped = append(p.Skipped, string(f.ID)+": not fixable on this host — "+adviceOf(f))
			continue
		case f.Fix.Missing() != "":
			p.Skipped = append(p.Skipped, string(f.ID)+": asym could not find "+f.Fix.Missing())
			continue
		}
		p.Findings = append(p.Findings, string(f.ID))
		added := false
		for _, s := range f.Fix.Steps {
			if c := evidence.Command(s.Words()...); !seen[c] {
				seen[c] = true
				p.Steps = append(p.Steps, s)
				added = true
			}
		}
		if added {
			p.Summaries = append(p.Summaries, f.Fix.Summary)
		}
	}
	if only != "" && !found {
		return p, fmt.Errorf("there is no finding %q for this flow now", only)
	}
	return p, nil
}

// Summary is one line for the journal.
func (p Plan) Summary() string { return strings.Join(p.Summaries, "; ") }

func adviceOf(f Finding) string {
	if f.Fix != nil && f.Fix.Summary != "" {
		return f.Fix.Summary
	}
	return "see asym explain " + string(f.ID)
}

package playbook

import "time"

// FixOutcome is what applying a fix did: how many changes, until when the
// revert waits for a decision and what will make it, and the findings
// before and after (a fix that did not change them did not heal).
type FixOutcome struct {
	Changes  int
	Deadline time.Time
	Watchdog string // how the revert is armed, for people
	// Fixed are the findings whose fix was applied.
	Fixed  []FindingID
	Before []Finding
	After  []Finding
}

// Unhealed are the findings the fix was for that the check after it still
// found: a fix that leaves them did not heal, and should be reverted rather
// than kept.
func (o *FixOutcome) Unhealed() []Finding {
	var out []Finding
	for _, f := range o.After {
		for _, id := range o.Fixed {
			if f.ID == id {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// Healed says the fix removed the findings it was for and the check after
// it finds nothing critical.
func (o *FixOutcome) Healed() bool {
	if len(o.Unhealed()) > 0 {
		return false
	}
	for _, f := range o.After {
		if f.Severity == Critical {
			return false
		}
	}
	return true
}

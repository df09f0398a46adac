package playbook

import "time"

// FixOutcome is what applying a fix did: how many changes, until when the
// revert waits for a decision and what will make it, and the findings
// before and after (a fix that did not change them did not heal).
type FixOutcome struct {
	Changes  int
	Deadline time.Time
	Watchdog string // how the revert is armed, for people
	Before   []Finding
	After    []Finding
}

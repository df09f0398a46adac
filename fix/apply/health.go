package apply

import (
	"fmt"
	"strings"
	"time"

	"asym/evidence"
)

// overdue is how long after its deadline a fix may still be pending before
// asym says its revert is late: the watchdog looks every half second and
// gives a revert at most revertTimeout.
const overdue = revertTimeout + 5*time.Second

// Command renders an asym fix command line for a journal's target, e.g.
// asym fix --netns NAME --rollback.
func Command(r TargetRef, flags ...string) string {
	w := []string{"asym", "fix"}
	switch r.Kind {
	case "netns", "path":
		w = append(w, "--netns", r.Value)
	case "pid":
		w = append(w, "--pid", r.Value)
	}
	return evidence.Command(append(w, flags...)...)
}

// Stale says the journal is the leftover of an asym that stopped (killed,
// crashed) before it changed anything: nothing to undo, and the next apply
// or rollback clears it.
func (j *Journal) Stale() bool {
	return j.State == StateApplying && !j.started() && !j.Applier.Alive()
}

// Problem says why a fix needs a person now, "" when it does not: it is
// pending and will not revert by itself (its watchdog is gone, or the
// deadline passed long ago), its revert failed, or its revert ran but
// could not be recorded. The sentence ends with what to run.
func (j *Journal) Problem(now time.Time) string {
	if !j.Pending() || j.Stale() {
		return ""
	}
	rollback := Command(j.Target, "--rollback")
	if o, where := findOutcome(j); o != nil {
		return fmt.Sprintf("the fix was %s at %s, but that could not be recorded in the journal (%s); the outcome is in %s: run %s to clear it",
			o.State, o.Time.UTC().Format(time.RFC3339), o.Why, where, rollback)
	}
	wd := j.WatchdogProcess
	switch {
	case j.State == StateRevertFailed:
		return fmt.Sprintf("the revert failed (%s): the change may still be there; run %s to try again", lastLog(j), rollback)
	case j.State == StateApplying && !j.Applier.Alive() && !j.Armed:
		return fmt.Sprintf("the asym that applied it (%s) stopped and no watchdog is armed: the change may still be there; run %s now", j.Applier, rollback)
	case wd != nil && !wd.Alive():
		return fmt.Sprintf("its watchdog (%s) is gone and recorded no revert: the revert did not run and will not; run %s now (or %s to keep the change)",
			wd, rollback, Command(j.Target, "--confirm"))
	case now.After(j.Deadline.Add(overdue)):
		return fmt.Sprintf("the deadline passed %s ago and the revert has not been recorded: the revert did not run; run %s now",
			now.Sub(j.Deadline).Round(time.Second), rollback)
	}
	return ""
}

func lastLog(j *Journal) string {
	if len(j.Log) == 0 {
		return "no log"
	}
	l := j.Log[len(j.Log)-1]
	if _, rest, ok := strings.Cut(l, " "); ok {
		return rest
	}
	return l
}

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"asym/fix/apply"
	"asym/lab"
	"asym/lab/namespace"
)

// labStateDir holds the lab's record. Like the namespace names it guards,
// the record is the machine's, not one asym's: it stays in /run/asym
// whatever ASYM_STATE_DIR says (that moves the journals, e.g. for tests),
// so that every asym, and every test, sees a lab another one owns.
const labStateDir = "/run/asym"

// labStatePath is the record of the lab of labPrefix: lab.json for the
// machine's, lab.PREFIX.json for one of ASYM_LAB_PREFIX.
func labStatePath() string {
	if p := labPrefix(); p != defaultLabPrefix {
		return filepath.Join(labStateDir, "lab."+strings.TrimSuffix(p, "-")+".json")
	}
	return filepath.Join(labStateDir, "lab.json")
}

// The commands that own a lab.
const (
	ownerRun   = "asym lab run" // the view: the lab goes when it closes
	ownerServe = "asym lab up"  // a detached lab serve, stopped by asym lab down
)

// labState is what a lab leaves while it is up: who owns it (pid and start
// time, so that a pid handed to another process does not count), by which
// command, and, once it is built, its namespaces and the flows to try.
type labState struct {
	Scenario   string      `json:"scenario"`
	Owner      string      `json:"owner"`
	PID        int         `json:"pid"`
	Start      uint64      `json:"start_ticks"`
	Since      time.Time   `json:"since"`
	Checks     []lab.Check `json:"checks"`
	Namespaces []string    `json:"namespaces"`
	Client     string      `json:"client"` // the namespaces of the flow's two ends
	Server     string      `json:"server"`
}

func (st labState) process() apply.Process { return apply.Process{PID: st.PID, Start: st.Start} }

// ownedBy says who owns the lab, and how to end it, in words.
func (st labState) ownedBy() string {
	how := "asym lab down stops it"
	if st.Owner == ownerRun {
		how = fmt.Sprintf("quit its view (q) to remove it, or stop it with kill %d", st.PID)
	}
	return fmt.Sprintf("%s (pid %d, since %s): %s", st.Owner, st.PID, st.Since.Local().Format("15:04:05"), how)
}

// built adds what the lab is, once it is up.
func (st *labState) built(env *lab.Env) {
	st.Checks, st.Namespaces = env.Checks, env.Namespaces
	st.Client, st.Server = env.Ends()
}

func readLabState() (labState, error) {
	var st labState
	b, err := os.ReadFile(labStatePath())
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

// save writes the record through a temporary file and a rename: a reader
// never sees half of one.
func (st labState) save() error {
	b, _ := json.MarshalIndent(st, "", " ")
	tmp := labStatePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("record the lab in %s: %w", labStateDir, err)
	}
	return os.Rename(tmp, labStatePath())
}

// lockLabDir serializes the look at the record and its writing between
// asym processes with a lock on the directory itself (flock on its
// descriptor), so that no lock file is left behind.
func lockLabDir() (unlock func(), err error) {
	if err := os.MkdirAll(labStateDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", labStateDir, err)
	}
	fd, err := unix.Open(labStateDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", labStateDir, err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lock %s: %w", labStateDir, err)
	}
	return func() { unix.Close(fd) }, nil
}

// claimLab records this process as the owner of the scenario's lab before
// anything of it is built, so that from the first namespace on, asym lab
// down and the tests know it is in use. It refuses while a live process
// owns a lab or namespaces of an earlier one remain.
func claimLab(scenario, owner string) (labState, error) {
	unlock, err := lockLabDir()
	if err != nil {
		return labState{}, err
	}
	defer unlock()
	if err := refuseIfUp(); err != nil {
		return labState{}, err
	}
	self := apply.Self()
	st := labState{Scenario: scenario, Owner: owner, PID: self.PID, Start: self.Start, Since: time.Now()}
	return st, st.save()
}

// releaseLab removes the record if this process still owns it.
func releaseLab() {
	unlock, err := lockLabDir()
	if err != nil {
		return
	}
	defer unlock()
	if st, err := readLabState(); err == nil && st.process() == apply.Self() {
		os.Remove(labStatePath())
	}
}

// refuseIfUp keeps one lab at a time.
func refuseIfUp() error {
	if st, err := readLabState(); err == nil && st.process().Alive() {
		return fmt.Errorf("the lab %q is already up, owned by %s", st.Scenario, st.ownedBy())
	}
	if left, _ := lab.Leftovers(labPrefix()); len(left) > 0 {
		return fmt.Errorf("namespaces of an earlier lab are still there (%s): asym lab down removes them", strings.Join(left, ", "))
	}
	return nil
}

// forgetFixes removes the journals of fixes made in the lab's namespaces,
// with their locks: a watchdog still waiting on one reverts it at once and
// ends, and no file of the lab outlives it.
func forgetFixes(namespaces []string) {
	for _, ns := range namespaces {
		apply.Forget(apply.IDFor("netns", ns))
	}
}

// awaitHolders waits, at most limit, until no other process holds any of
// the namespaces (a watchdog ends once its journal is gone), and returns
// those that still do.
func awaitHolders(namespaces []string, limit time.Duration) map[string][]namespace.Holder {
	deadline := time.Now().Add(limit)
	for {
		held := map[string][]namespace.Holder{}
		for _, ns := range namespaces {
			if hs, err := namespace.Holders(ns); err == nil && len(hs) > 0 {
				held[ns] = hs
			}
		}
		if len(held) == 0 || time.Now().After(deadline) {
			return held
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeLeftovers removes the lab namespaces that no live process owns or
// holds, and the journals of fixes made in them. A namespace a process
// still holds (an asym view on it, a shell in it) is left, and the error
// names the process: removing its name would pull it away under them.
func removeLeftovers() (removed []string, err error) {
	left, err := lab.Leftovers(labPrefix())
	if err != nil || len(left) == 0 {
		return nil, err
	}
	forgetFixes(left)
	held := awaitHolders(left, 3*time.Second)
	var busy []string
	for _, ns := range left {
		if hs := held[ns]; len(hs) > 0 {
			busy = append(busy, fmt.Sprintf("%s is in use by %s", ns, hs[0]))
			continue
		}
		if err := namespace.Remove(ns); err != nil {
			return removed, fmt.Errorf("remove the lab's namespace %s: %w", ns, err)
		}
		removed = append(removed, ns)
	}
	if len(busy) > 0 {
		return removed, errors.New(strings.Join(busy, "; ") + ": end those processes, then asym lab down again")
	}
	return removed, nil
}

package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"asym/evidence"
	"asym/fix"
	"asym/fix/persist"
	"asym/playbook"
	"asym/session"
)

func printPersist(w io.Writer, sess *session.Session, root string, steps fix.Steps) {
	t := sess.Target()
	r, _, err := sess.Persistence(steps)
	if err == nil && r.ForNamespace() {
		fmt.Fprintf(w, "\nTo keep it: %s is not the host's network, which the host's network manager does not configure. For %s:\n",
			playbook.Clean(t.String()), r.Manager)
		printRendered(w, r)
		return
	}
	fmt.Fprintf(w, "\nTo keep it across reboots")
	if t.Kind != "host" {
		fmt.Fprintf(w, " (this is %s: what configures it may not be the host's manager)", playbook.Clean(t.String()))
	}
	if err != nil {
		fmt.Fprintf(w, ": asym cannot render it for this host: %s\n", playbook.Clean(err.Error()))
		return
	}
	fmt.Fprintf(w, ", for %s:\n", r.Manager)
	printRendered(w, r)
	fmt.Fprintf(w, "Write these files (with backups): %s\n", evidence.Command("asym", "fix", "--persist", "--root", root, "…"))
}

func printRendered(w io.Writer, r persist.Rendered) {
	for _, l := range strings.Split(strings.TrimRight(r.Text(), "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", playbook.Clean(l))
	}
}

// writePersist is `asym fix --persist`: an explicit second action that
// writes files (never runs a command), backing up each file first.
func writePersist(w io.Writer, sess *session.Session, root string, steps fix.Steps) error {
	r, _, err := sess.Persistence(steps)
	if err != nil {
		return fmt.Errorf("cannot make the fix permanent here: %v", err)
	}
	if r.ForNamespace() {
		// Never the host's /etc for a namespace: a file there would change
		// the host's own network at its next start, not the namespace's.
		printPersist(w, sess, root, steps)
		return fmt.Errorf("nothing was written: %s is not the host's network, so nothing in the host's /etc configures it; add the commands above to %s (to write a container's own configuration files instead, give its root with --root DIR)",
			playbook.Clean(sess.Target().String()), r.Manager)
	}
	backups, err := persist.Write(root, r, time.Now())
	if err != nil {
		return fmt.Errorf("writing the %s configuration failed: %v (nothing was half-written)", r.Manager, err)
	}
	fmt.Fprintf(w, "\nWrote the fix for %s under %s:\n", r.Manager, root)
	for _, f := range r.Files {
		fmt.Fprintf(w, "  %s\n", playbook.Clean(f.Path))
	}
	for _, b := range backups {
		fmt.Fprintf(w, "  backup: %s\n", playbook.Clean(b))
	}
	if len(r.Commands) > 0 {
		fmt.Fprintf(w, "Run these to finish (asym does not run them):\n")
		for _, c := range r.Commands {
			fmt.Fprintf(w, "  %s\n", playbook.Clean(c))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  - %s\n", playbook.Clean(n))
	}
	return nil
}

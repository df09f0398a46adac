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
	"asym/probes"
)

// renderPersist expresses fix steps for the network manager that owns the
// interface they use, as detected under root.
func renderPersist(root string, steps fix.Steps) (persist.Rendered, persist.Detection, error) {
	det := persist.Detect(root)
	dev := ""
	// The first route or rule that names an interface decides; a sysctl's
	// interface stands in until one does.
	for _, s := range steps {
		named := ""
		switch s := s.(type) {
		case *fix.RouteAdd:
			named = s.Dev
		case *fix.RuleAdd:
			named = s.Dev
		case *fix.SysctlSet:
			if dev == "" {
				dev = s.Iface()
			}
		}
		if named != "" {
			dev = named
			break
		}
	}
	m := det.ManagerFor(dev)
	r, err := persist.Render(m, steps, det)
	return r, det, err
}

func printPersist(w io.Writer, t *probes.Target, root string, steps fix.Steps) {
	r, _, err := renderPersist(root, steps)
	fmt.Fprintf(w, "\nTo keep it across reboots")
	if t.Kind != "host" {
		fmt.Fprintf(w, " (this is %s: what configures it may not be the host's manager)", playbook.Clean(t.String()))
	}
	if err != nil {
		fmt.Fprintf(w, ": asym cannot render it for this host: %s\n", playbook.Clean(err.Error()))
		return
	}
	fmt.Fprintf(w, ", for %s:\n", r.Manager)
	for _, l := range strings.Split(strings.TrimRight(r.Text(), "\n"), "\n") {
		fmt.Fprintf(w, "  %s\n", playbook.Clean(l))
	}
	fmt.Fprintf(w, "Write these files (with backups): %s\n", evidence.Command("asym", "fix", "--persist", "--root", root, "…"))
}

// writePersist is `asym fix --persist`: an explicit second action that
// writes files (never runs a command), backing up each file first.
func writePersist(w io.Writer, root string, steps fix.Steps) error {
	r, _, err := renderPersist(root, steps)
	if err != nil {
		return fmt.Errorf("cannot make the fix permanent here: %v", err)
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

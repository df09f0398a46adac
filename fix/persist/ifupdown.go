package persist

// ifupdown (Debian): /etc/network/interfaces and what it sources, the
// stanza of an interface, and post-up/pre-down lines in an asym block.

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"

	"asym/evidence"
)

// ifupdown reads /etc/network/interfaces and the files it sources
// (interfaces(5): "source" takes a wildcard pattern, "source-directory" a
// directory whose files are named as run-parts(8) accepts).
func (t *tree) ifupdown() bool {
	const main = "/etc/network/interfaces"
	text, ok := t.read(main)
	if !ok {
		return false
	}
	t.d.Evidence = append(t.d.Evidence, main+": ifupdown configuration")
	t.stanzas(main, text, 0)
	return true
}

// runParts is the file names run-parts(8) accepts: source-directory reads
// only those.
var runParts = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// stanzas collects the iface stanzas of one file and reads the files its
// source and source-directory lines name, up to four levels deep.
func (t *tree) stanzas(file, text string, depth int) {
	owned := cloudInitOwned(file, text)
	for _, line := range joinContinued(text) {
		w := strings.Fields(line)
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		switch w[0] {
		case "iface":
			if len(w) >= 4 {
				t.d.Stanzas = append(t.d.Stanzas, Stanza{Iface: w[1], Family: w[2], Method: w[3], File: file, CloudInit: owned})
			}
		case "source", "source-directory":
			if len(w) < 2 || depth > 3 {
				continue
			}
			pat := w[1]
			if !strings.HasPrefix(pat, "/") {
				// Relative to the directory of the file that sources it.
				pat = path.Join(path.Dir(file), pat)
			}
			if strings.HasPrefix(pat, "/etc/network/interfaces.d") {
				t.d.SourcesInterfacesD = true
			}
			var files []string
			if w[0] == "source" {
				ms, _ := fs.Glob(t.fsys, rel(pat))
				for _, m := range ms {
					// glob(3) skips hidden files; fs.Glob does not.
					if !strings.HasPrefix(path.Base(m), ".") {
						files = append(files, "/"+m)
					}
				}
			} else {
				for _, n := range t.files(pat) {
					if runParts.MatchString(n) {
						files = append(files, pat+"/"+n)
					}
				}
			}
			for _, f := range files {
				if sub, ok := t.read(f); ok {
					t.d.Evidence = append(t.d.Evidence, f+": ifupdown configuration (sourced)")
					t.stanzas(f, sub, depth+1)
				}
			}
		}
	}
}

// stanza is the iface stanza of dev, the inet one when there are both:
// asym's block goes right after it.
func (d Detection) stanza(dev string) (Stanza, bool) {
	var inet6 *Stanza
	for i, s := range d.Stanzas {
		if s.Iface != dev {
			continue
		}
		if s.Family == "inet" {
			return s, true
		}
		if inet6 == nil {
			inet6 = &d.Stanzas[i]
		}
	}
	if inet6 != nil {
		return *inet6, true
	}
	return Stanza{}, false
}

// renderIfupdown adds post-up and pre-down commands to the interface's
// stanza: ifupdown runs each with /bin/sh -c, so every word is quoted.
func renderIfupdown(r *Rendered, p *plan, det Detection) error {
	for _, dev := range p.devs {
		st, found := det.stanza(dev)
		begin, end := "# asym begin "+comment(dev), "# asym end "+comment(dev)
		var lines []string
		var downs []string
		for _, s := range p.routes[dev] {
			lines = append(lines, "post-up "+evidence.Command(routeWords(s, "add")...))
			downs = append([]string{"pre-down " + evidence.Command(routeWords(s, "del")...)}, downs...)
		}
		for _, s := range p.rules[dev] {
			lines = append(lines, "post-up "+evidence.Command(ruleWords(s, "add")...))
			downs = append([]string{"pre-down " + evidence.Command(ruleWords(s, "del")...)}, downs...)
		}
		// Removing rules before routes on the way down mirrors the way up.
		lines = append(lines, downs...)

		if found {
			var b strings.Builder
			b.WriteString(begin + "\n")
			for _, l := range lines {
				b.WriteString("    " + l + "\n")
			}
			b.WriteString(end + "\n")
			r.Files = append(r.Files, FileChange{Path: st.File, Mode: "replace-block", Content: b.String(), Begin: begin, End: end, After: []string{"iface", dev, st.Family}})
			if st.CloudInit {
				r.Notes = append(r.Notes, fmt.Sprintf("%s was written by cloud-init, which may rewrite it on boot and take asym's block with it: disable cloud-init's network configuration, or move the stanza for %s to a file of your own.", st.File, dev))
			}
		} else {
			name, err := nameFor(Detection{}, dev, "")
			if err != nil {
				return err
			}
			file := "/etc/network/interfaces.d/asym-" + name
			var b strings.Builder
			b.WriteString("# Written by asym: there was no stanza for " + comment(dev) + " in /etc/network/interfaces.\n")
			b.WriteString(begin + "\n")
			b.WriteString("iface " + dev + " inet manual\n")
			for _, l := range lines {
				b.WriteString("    " + l + "\n")
			}
			b.WriteString(end + "\n")
			r.Files = append(r.Files, FileChange{Path: file, Mode: "create", Content: b.String()})
			note := fmt.Sprintf("No iface stanza for %s was found in /etc/network/interfaces or the files it sources, so ifupdown does not configure it: asym wrote an \"iface %s inet manual\" stanza in %s, which ifupdown runs only when it brings %s up; add \"auto %s\" (or allow-hotplug) there for boot, and check that ifupdown is what should own %s.", dev, dev, file, dev, dev, dev)
			if !det.SourcesInterfacesD {
				note += " /etc/network/interfaces does not source /etc/network/interfaces.d: add \"source /etc/network/interfaces.d/*\" to it."
			}
			r.Notes = append(r.Notes, note)
		}
	}
	if len(p.devs) > 0 {
		r.Notes = append(r.Notes, "ifupdown runs the post-up lines when it brings the interface up (ifup, or at boot) and the pre-down lines when it takes it down; nothing is applied now. A post-up line that fails because the route or rule exists already (asym added it at runtime) makes ifup report the interface as failed, so reboot, or ifdown before ifup.")
	}
	return nil
}

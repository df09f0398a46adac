package persist

// RHEL network-scripts: ifcfg files, the one of an interface, and the
// route-/rule- files initscripts (and ifcfg-rh, for routes) read with it.

import (
	"fmt"
	"strings"
)

// ifcfg reads /etc/sysconfig/network-scripts/ifcfg-*, skipping lo and the
// backup names initscripts itself skips.
func (t *tree) ifcfg() {
	const dir = "/etc/sysconfig/network-scripts"
	for _, n := range t.files(dir) {
		name, ok := strings.CutPrefix(n, "ifcfg-")
		if !ok || name == "lo" || ignoredIfcfg(name) {
			continue
		}
		f := dir + "/" + n
		text, ok := t.read(f)
		if !ok {
			continue
		}
		vars := shellVars(text)
		c := IfcfgFile{Name: name, Device: vars["DEVICE"], ConnName: vars["NAME"], File: f, CloudInit: cloudInitOwned(f, text)}
		if c.Device == "" {
			c.Device = name
		}
		t.d.Ifcfg = append(t.d.Ifcfg, c)
		ev := f + ": ifcfg for " + c.Device
		if c.CloudInit {
			ev += " written by cloud-init"
		}
		t.d.Evidence = append(t.d.Evidence, ev)
	}
}

func ignoredIfcfg(name string) bool {
	for _, s := range []string{"~", ".bak", ".old", ".orig", ".rpmnew", ".rpmorig", ".rpmsave", ".augnew", ".augtmp"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return strings.Contains(name, ".asym-backup-")
}

// shellVars reads the KEY=value lines of an ifcfg file (shell syntax,
// values possibly quoted); it runs nothing.
func shellVars(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		switch {
		case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
			v = v[1 : len(v)-1]
		case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
			v = v[1 : len(v)-1]
		}
		out[k] = v
	}
	return out
}

// ifcfg is the ifcfg file of dev: the NAME Names gives, else the file whose
// DEVICE= is dev.
func (d Detection) ifcfg(dev string) (IfcfgFile, bool) {
	if n, ok := d.Names[dev]; ok {
		for _, f := range d.Ifcfg {
			if f.Name == n {
				return f, true
			}
		}
		return IfcfgFile{Name: n, Device: dev}, true
	}
	for _, f := range d.Ifcfg {
		if f.Device == dev {
			return f, true
		}
	}
	return IfcfgFile{}, false
}

// renderIfcfg writes the "ip" format of route- and rule- files that
// initscripts' ifup-routes passes line by line to "ip route add" and
// "ip rule add" (as the cloud article does); IPv6 goes to route6-/rule6-.
func renderIfcfg(r *Rendered, p *plan, det Detection) error {
	const dir = "/etc/sysconfig/network-scripts/"
	hasNM := false
	for _, m := range det.Managers {
		hasNM = hasNM || m == NetworkManager
	}
	anyRules := false
	for _, dev := range p.devs {
		f, found := det.ifcfg(dev)
		name, err := nameFor(det, dev, f.Name)
		if err != nil {
			return err
		}
		// ifup-routes reads each line unquoted into "ip route add $line":
		// the shell splits it on blanks and expands globs in it.
		if strings.ContainsAny(dev, "*?[") {
			return fmt.Errorf("interface name %q holds a glob character, which initscripts would expand when it reads route-%s", dev, name)
		}
		files := map[string][]string{}
		var order []string
		add := func(file, line string) {
			if _, ok := files[file]; !ok {
				order = append(order, file)
			}
			files[file] = append(files[file], line)
		}
		for _, s := range p.routes[dev] {
			kind := "route-"
			if is6(s) {
				kind = "route6-"
			}
			add(dir+kind+name, strings.Join(routeSpec(s), " "))
		}
		for _, s := range p.rules[dev] {
			kind := "rule-"
			if is6(s) {
				kind = "rule6-"
			}
			anyRules = true
			add(dir+kind+name, strings.Join(ruleSpec(s, true), " "))
		}
		for _, fn := range order {
			r.Files = append(r.Files, FileChange{Path: fn, Mode: "append", Content: strings.Join(files[fn], "\n") + "\n"})
		}
		if !found {
			r.Notes = append(r.Notes, fmt.Sprintf("No ifcfg file for %s was found under %s: ifup-routes and NetworkManager read route-%s and rule-%s only for an interface configured by ifcfg-%s.", dev, dir, name, name, name))
		} else if f.CloudInit {
			r.Notes = append(r.Notes, fmt.Sprintf("%s was written by cloud-init, whose sysconfig renderer also writes route- files: if it renders %s again it may replace route-%s and drop asym's lines.", f.File, dev, name))
		}
	}
	if hasNM && anyRules {
		have := "is not installed here"
		if det.RoutingRulesDispatcher {
			have = "is installed here"
		}
		r.Notes = append(r.Notes, "NetworkManager runs on this host: its ifcfg-rh plugin reads route- files but not rule- files, which only NetworkManager-dispatcher-routing-rules applies (dispatcher.d/10-ifcfg-rh-routes.sh; it "+have+"). Prefer the NetworkManager rendering (ipv4.routing-rules); RHEL 9 deprecates ifcfg files and RHEL 10 ignores them.")
	}
	r.Notes = append(r.Notes, "These files take effect the next time the interface comes up (ifup, or a reboot); the runtime change asym applied holds until then.")
	return nil
}

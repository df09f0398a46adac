package persist

// systemd-networkd: .network files in the order it applies them, the one
// that configures an interface, and a drop-in for it.

import (
	"fmt"
	"path"
	"strings"

	"asym/evidence"
)

// networkd reads .network files in systemd.network(5)'s order. It reports
// whether any is the admin's or the runtime's (files shipped under /usr/lib
// exist on most systems, used or not).
func (t *tree) networkd() bool {
	dirs := []string{"/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network"}
	configured := false
	for _, f := range t.merged(dirs, ".network") {
		text, ok := t.read(f)
		if !ok || strings.TrimSpace(text) == "" {
			// An empty file masks one of the same name (systemd.network(5)).
			continue
		}
		nf := NetworkFile{File: f}
		for _, kv := range parseINI(text).section("Match") {
			switch kv.key {
			case "Name":
				v := strings.TrimSpace(kv.value)
				if v == "" {
					nf.Names, nf.Invert = nil, false
					continue
				}
				if strings.HasPrefix(v, "!") {
					nf.Invert = true
					v = strings.TrimPrefix(v, "!")
				}
				nf.Names = append(nf.Names, strings.Fields(v)...)
			default:
				nf.OtherMatch = true
			}
		}
		t.d.NetworkFiles = append(t.d.NetworkFiles, nf)
		if strings.HasPrefix(f, "/etc/") || strings.HasPrefix(f, "/run/") {
			configured = true
			t.d.Evidence = append(t.d.Evidence, f+": systemd-networkd configuration")
		}
	}
	return configured
}

// networkFile is the .network file systemd-networkd applies to dev (the
// first in its order whose Name= matches), and the files before it that
// match by properties asym cannot check, any of which would win instead.
func (d Detection) networkFile(dev string) (file string, doubtful []string) {
	if n, ok := d.Names[dev]; ok {
		for _, f := range d.NetworkFiles {
			if baseName(f.File) == n || f.File == n {
				return f.File, nil
			}
		}
		return "/etc/systemd/network/" + n, nil
	}
	for _, f := range d.NetworkFiles {
		switch f.matches(dev) {
		case matchYes:
			return f.File, doubtful
		case matchMaybe:
			if namedFor(f.File, dev) {
				// amazon-ec2-net-utils' 70-eth1.network matches by MAC
				// (in a drop-in) and carries the name in its file name;
				// its siblings (70-eth0.network) are for other interfaces.
				num := strings.TrimSuffix(baseName(f.File), "-"+dev+".network")
				var rest []string
				for _, o := range doubtful {
					if !strings.HasPrefix(baseName(o), num+"-") {
						rest = append(rest, o)
					}
				}
				return f.File, rest
			}
			doubtful = append(doubtful, f.File)
		}
	}
	return "", doubtful
}

// namedFor: the file is called NN-dev.network.
func namedFor(file, dev string) bool {
	b := strings.TrimSuffix(baseName(file), ".network")
	b = strings.TrimLeft(b, "0123456789")
	return b == "-"+dev
}

// match is whether a .network file applies to an interface; matchMaybe:
// it tests properties asym cannot see in files.
type match int

const (
	matchNo match = iota
	matchYes
	matchMaybe
)

// matches applies f's [Match] Name= globs to dev as systemd-networkd does.
func (f NetworkFile) matches(dev string) match {
	if len(f.Names) == 0 {
		if f.OtherMatch {
			return matchMaybe
		}
		// systemd.network(5): a file without match conditions matches
		// every interface.
		return matchYes
	}
	hit := false
	for _, g := range f.Names {
		if globMatch(g, dev) {
			hit = true
			break
		}
	}
	if hit == f.Invert {
		return matchNo
	}
	// Name= matches; any other condition (Driver=, MACAddress=) beside it
	// is taken as written for the same interface.
	return matchYes
}

// renderNetworkd writes a drop-in for the .network file that configures the
// interface: systemd.network(5) merges FILE.network.d/*.conf from any of
// its directories after FILE itself, so a drop-in in /etc applies to a file
// in /run or /usr/lib and survives whoever rewrites that file.
func renderNetworkd(r *Rendered, p *plan, det Detection) error {
	for _, dev := range p.devs {
		file, doubtful := det.networkFile(dev)
		base := baseName(file)
		if file == "" {
			base = "10-" + dev + ".network"
		}
		if _, err := nameFor(Detection{}, base, ""); err != nil {
			return err
		}
		dropin := "/etc/systemd/network/" + base + ".d/90-asym.conf"

		var b strings.Builder
		fmt.Fprintf(&b, "# Written by asym: policy routing for %s that must survive a reboot.\n", comment(dev))
		fmt.Fprintf(&b, "# A drop-in for %s (systemd.network(5)).\n", comment(base))
		for _, s := range p.routes[dev] {
			b.WriteString("\n[Route]\n")
			fmt.Fprintf(&b, "Destination=%s\n", s.Dst.String())
			if s.Gateway.IsValid() {
				fmt.Fprintf(&b, "Gateway=%s\n", s.Gateway)
			}
			if s.Scope != "" && !s.Dst.Addr().Is6() {
				// networkd ignores Scope= for IPv6.
				fmt.Fprintf(&b, "Scope=%s\n", s.Scope)
			}
			if s.PrefSrc.IsValid() {
				fmt.Fprintf(&b, "PreferredSource=%s\n", s.PrefSrc)
			}
			if !isMain(s.Table) {
				fmt.Fprintf(&b, "Table=%d\n", s.Table)
			}
		}
		for _, s := range p.rules[dev] {
			b.WriteString("\n[RoutingPolicyRule]\n")
			if s.Src.IsValid() {
				fmt.Fprintf(&b, "From=%s\n", s.Src)
			}
			fmt.Fprintf(&b, "Table=%d\nPriority=%d\n", s.Table, s.Priority)
		}
		r.Files = append(r.Files, FileChange{Path: dropin, Mode: "create", Content: b.String()})

		switch {
		case file == "":
			r.Notes = append(r.Notes, fmt.Sprintf("No .network file under /etc/systemd/network, /run/systemd/network or /usr/lib/systemd/network matches %s by Name=, and a drop-in does nothing without its main file: create /etc/systemd/network/%s with [Match] Name=%s and the interface's addressing (DHCP=yes or Address=), or tell asym which .network file configures %s.", dev, base, dev, dev))
		case strings.HasPrefix(base, "10-netplan-"):
			r.Notes = append(r.Notes, fmt.Sprintf("%s is generated by netplan at every boot: the drop-in in /etc applies to it as long as netplan keeps that name, but netplan's YAML is the place to edit; prefer the netplan rendering.", file))
		case strings.HasPrefix(file, "/run/systemd/network/") && (base == "70-"+dev+".network" || base == "07-"+dev+".network"):
			r.Notes = append(r.Notes, fmt.Sprintf("%s looks like amazon-ec2-net-utils' own file, rewritten from instance metadata; the drop-in lives in /etc and survives its rewrites.", file))
		}
		if len(doubtful) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%s sort before %s and match by properties asym cannot check in files (MACAddress=, Driver=, …): if one of them matches %s, systemd-networkd applies it instead and ignores %s and this drop-in.", strings.Join(doubtful, ", "), base, dev, base))
		}
		r.Notes = append(r.Notes, fmt.Sprintf("systemd-networkd applies only the first .network file (in lexical order across /etc, /run and /usr/lib) that matches an interface, and silently ignores the drop-ins of every other file (amazon-ec2-net-utils#146): check that %s names %s in its \"Network File:\" line.", evidence.Command("networkctl", "status", dev), base))
	}
	r.Notes = append(r.Notes, "Apply with networkctl reload, which re-reads the files and reconfigures the interfaces whose configuration changed (networkctl reconfigure DEV forces it); asym runs neither.")
	return nil
}

// globMatch is fnmatch(3) without flags, as systemd matches Name= globs;
// interface names never hold a slash, so path.Match's treatment of it
// makes no difference.
func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

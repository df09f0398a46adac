package persist

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"

	"asym/evidence"
	"asym/fix"
)

// SysctlFile is where sysctl steps persist, for every manager.
const SysctlFile = "/etc/sysctl.d/90-asym.conf"

// Render expresses the steps for manager m, naming connections and files
// from det (det.Names overrides what Detect found; without either the
// interface name is used).
//
// Pick m with det.ManagerFor(dev): the first of det.Managers need not be
// the one that configures that interface.
//
// The files and blocks asym owns (the netplan 90-asym-DEV.yaml, the
// networkd drop-in, the ifupdown block) hold the steps of the last Render
// written for their interface, so render together every step that must
// survive for it; lines added to files asym does not own (route-/rule-
// files) and sysctl keys accumulate instead. A rule step is persisted
// with the interface in its Dev, else with the interface of a route step to
// the same table, else with the only interface the steps name.
func Render(m Manager, steps fix.Steps, det Detection) (Rendered, error) {
	p, err := newPlan(steps)
	if err != nil {
		return Rendered{}, err
	}
	r := Rendered{Manager: m}
	switch m {
	case NetworkScripts:
		err = renderIfcfg(&r, p, det)
	case NetworkManager:
		err = renderNM(&r, p, det)
	case Netplan:
		err = renderNetplan(&r, p, det)
	case Networkd:
		err = renderNetworkd(&r, p, det)
	case Ifupdown:
		err = renderIfupdown(&r, p, det)
	default:
		if len(p.devs) > 0 {
			return Rendered{}, fmt.Errorf("cannot persist routes and rules for network manager %q: asym knows NetworkManager, systemd-networkd, netplan, ifupdown and network-scripts", string(m))
		}
	}
	if err != nil {
		return Rendered{}, err
	}
	if err := renderSysctl(&r, p); err != nil {
		return Rendered{}, err
	}
	for _, s := range p.dels {
		r.Notes = append(r.Notes, "asym removed the rule "+quoteNote(evidence.Command(s.Words()...))+" at runtime only: if a file configures it (a rule- file, a .network [RoutingPolicyRule], a netplan routing-policy, a NetworkManager ipv4.routing-rules, a post-up line), it comes back at the next boot; asym cannot know which file holds it, so remove it there too.")
	}
	for _, a := range det.Agents {
		r.Notes = append(r.Notes, a.Warning)
	}
	return r, nil
}

// plan is the steps sorted by where they persist.
type plan struct {
	devs    []string                   // interfaces, in order of first appearance
	routes  map[string][]*fix.RouteAdd // by interface
	rules   map[string][]*fix.RuleAdd  // by interface
	sysctls []*fix.SysctlSet
	dels    []*fix.RuleDel
}

func newPlan(steps fix.Steps) (*plan, error) {
	p := &plan{routes: map[string][]*fix.RouteAdd{}, rules: map[string][]*fix.RuleAdd{}}
	addDev := func(d string) {
		for _, x := range p.devs {
			if x == d {
				return
			}
		}
		p.devs = append(p.devs, d)
	}
	tableDev := map[int]string{}
	var rules []*fix.RuleAdd
	for i, s := range steps {
		if m := s.Missing(); m != "" {
			return nil, fmt.Errorf("step %d (%s) is incomplete: asym could not find out %s; fill it in before persisting it", i+1, evidence.Command(s.Words()...), m)
		}
		// Persistence is a visitor over the whole fix: routes and rules go
		// into their interface's configuration together, so the kinds are
		// sorted here rather than each rendering itself.
		switch s := s.(type) {
		case *fix.RouteAdd:
			if err := checkRoute(s); err != nil {
				return nil, fmt.Errorf("step %d (%s): %w", i+1, evidence.Command(s.Words()...), err)
			}
			addDev(s.Dev)
			p.routes[s.Dev] = append(p.routes[s.Dev], s)
			if _, ok := tableDev[s.Table]; !ok {
				tableDev[s.Table] = s.Dev
			}
		case *fix.RuleAdd:
			if s.Table <= 0 {
				return nil, fmt.Errorf("step %d (%s) names no table to look up", i+1, evidence.Command(s.Words()...))
			}
			if s.Priority <= 0 {
				return nil, fmt.Errorf("step %d (%s) has no priority: a persisted rule needs a fixed one so that it sorts the same after a reboot", i+1, evidence.Command(s.Words()...))
			}
			if s.Dev != "" {
				if err := checkIface(s.Dev); err != nil {
					return nil, fmt.Errorf("step %d (%s): %w", i+1, evidence.Command(s.Words()...), err)
				}
			}
			rules = append(rules, s)
		case *fix.RuleDel:
			p.dels = append(p.dels, s)
		case *fix.SysctlSet:
			p.sysctls = append(p.sysctls, s)
		default:
			return nil, fmt.Errorf("step %d is of kind %q, which asym cannot persist", i+1, s.Kind())
		}
	}
	for _, s := range rules {
		dev := s.Dev
		if dev == "" {
			dev = tableDev[s.Table]
		}
		if dev == "" && len(p.devs) == 1 {
			dev = p.devs[0]
		}
		if dev == "" {
			return nil, fmt.Errorf("cannot tell which interface's configuration should carry the rule %s: set the rule step's Dev to the interface that holds %s", evidence.Command(s.Words()...), srcWord(s.Src))
		}
		addDev(dev)
		p.rules[dev] = append(p.rules[dev], s)
	}
	return p, nil
}

func checkRoute(s *fix.RouteAdd) error {
	if err := checkIface(s.Dev); err != nil {
		return err
	}
	if !s.Dst.IsValid() {
		return errors.New("the route has no destination")
	}
	if s.Gateway.IsValid() && s.Gateway.Is6() != s.Dst.Addr().Is6() {
		return errors.New("the gateway and the destination are of different address families")
	}
	if s.PrefSrc.IsValid() && s.PrefSrc.Is6() != s.Dst.Addr().Is6() {
		return errors.New("the preferred source and the destination are of different address families")
	}
	if _, ok := scopes[s.Scope]; !ok {
		return fmt.Errorf("scope %q is not one of global, site, link, host", s.Scope)
	}
	if s.Table < 0 {
		return errors.New("the table number is negative")
	}
	return nil
}

// scopes maps iproute2's scope names to the kernel's numbers (rtnetlink.h),
// which NetworkManager's scope= route attribute takes.
var scopes = map[string]int{"": -1, "global": 0, "site": 200, "link": 253, "host": 254}

// checkIface refuses interface names that cannot be an interface (the
// kernel's dev_valid_name: no "/", ":" or whitespace, at most 15 bytes) or
// that would make an unsafe file name (leading "."). Everything else,
// $ ; ( ) ` ' included, is kept literal and quoted where it is read.
func checkIface(dev string) error {
	switch {
	case dev == "":
		return errors.New("the step names no interface")
	case len(dev) > 15:
		return fmt.Errorf("%q is longer than an interface name can be (15 bytes)", dev)
	case strings.HasPrefix(dev, "."):
		return fmt.Errorf("interface name %q starts with a dot, which asym refuses in a file name", dev)
	}
	for _, c := range dev {
		if c == '/' || c == ':' || c <= ' ' || c == 0x7f {
			return fmt.Errorf("interface name %q holds %q, which no interface name can hold", dev, c)
		}
	}
	return nil
}

// nameFor is the file-name part derived for dev, checked the same way.
func nameFor(det Detection, dev, found string) (string, error) {
	n := dev
	if v, ok := det.Names[dev]; ok {
		n = v
	} else if found != "" {
		n = found
	}
	if n == "" || strings.ContainsRune(n, '/') || strings.HasPrefix(n, ".") || strings.ContainsAny(n, "\x00\n") {
		return "", fmt.Errorf("the name %q for %s cannot be part of a file name (it is empty, holds a slash or starts with a dot)", n, dev)
	}
	return n, nil
}

func isMain(table int) bool { return table == 0 || table == 254 }

func srcWord(p netip.Prefix) string {
	if !p.IsValid() {
		return "all"
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func dstWord(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "default"
	}
	return p.String()
}

// routeWords is the iproute2 route command for s with verb add or del.
func routeWords(s *fix.RouteAdd, verb string) []string {
	w := []string{"ip"}
	if s.Dst.Addr().Is6() {
		w = append(w, "-6")
	}
	w = append(w, "route", verb)
	w = append(w, routeSpec(s)...)
	return w
}

// routeSpec is what follows "ip route add" (and what a route- file holds).
func routeSpec(s *fix.RouteAdd) []string {
	w := []string{dstWord(s.Dst)}
	if s.Gateway.IsValid() {
		w = append(w, "via", s.Gateway.String())
	}
	w = append(w, "dev", s.Dev)
	if s.Scope != "" {
		w = append(w, "scope", s.Scope)
	}
	if s.PrefSrc.IsValid() {
		w = append(w, "src", s.PrefSrc.String())
	}
	if !isMain(s.Table) {
		w = append(w, "table", strconv.Itoa(s.Table))
	}
	return w
}

// ruleWords is the iproute2 rule command for s with verb add or del.
func ruleWords(s *fix.RuleAdd, verb string) []string {
	w := []string{"ip"}
	if s.Src.IsValid() && s.Src.Addr().Is6() {
		w = append(w, "-6")
	}
	return append(append(w, "rule", verb), ruleSpec(s, false)...)
}

// ruleSpec is what follows "ip rule add"; full says whether to keep a /32
// (the rule- file form of the cloud article) or drop it (the ip rule form).
func ruleSpec(s *fix.RuleAdd, full bool) []string {
	from := srcWord(s.Src)
	if full && s.Src.IsValid() {
		from = s.Src.String()
	}
	return []string{"from", from, "lookup", strconv.Itoa(s.Table), "priority", strconv.Itoa(s.Priority)}
}

// is6 says whether a route or rule step is IPv6.
func is6(s interface{ Is6() bool }) bool { return s.Is6() }

// comment makes text safe for a comment line: no control characters.
func comment(text string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, text)
}

func quoteNote(s string) string { return "\u201c" + s + "\u201d" }

// --- network-scripts -----------------------------------------------------

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

// --- NetworkManager --------------------------------------------------------

// renderNM changes the connection profile with nmcli (nm-settings-nmcli(5):
// ipv4.routes "ip[/prefix] [next-hop] [metric] [attribute=value]…" with the
// table=, src= and scope= attributes; ipv4.routing-rules in "ip rule" syntax,
// where the priority is mandatory).
func renderNM(r *Rendered, p *plan, det Detection) error {
	for _, dev := range p.devs {
		c, found := det.connection(dev)
		conn := c.ID
		if !found {
			conn = dev
			r.Notes = append(r.Notes, fmt.Sprintf("No NetworkManager connection bound to %s was found in its files: asym assumed it is named %s. Check with %s and use that name.", dev, evidence.Quote(dev), evidence.Command("nmcli", "-g", "GENERAL.CONNECTION", "device", "show", dev)))
		} else if c.Netplan {
			r.Notes = append(r.Notes, fmt.Sprintf("The connection %s was generated by netplan (%s), which regenerates it from /etc/netplan at every boot: prefer the netplan rendering (where NetworkManager is built with netplan support, as on Ubuntu 23.10 and later, it writes nmcli changes back to /etc/netplan/90-NM-*.yaml; elsewhere they are lost at the next boot).", evidence.Quote(conn), c.File))
		}
		for _, s := range p.routes[dev] {
			fam, dst := "ipv4", s.Dst.String()
			if is6(s) {
				fam = "ipv6"
			}
			spec := []string{dst}
			if s.Gateway.IsValid() {
				spec = append(spec, s.Gateway.String())
			}
			if !isMain(s.Table) {
				spec = append(spec, "table="+strconv.Itoa(s.Table))
			}
			if s.PrefSrc.IsValid() {
				spec = append(spec, "src="+s.PrefSrc.String())
			}
			if s.Scope != "" && fam == "ipv4" {
				// NetworkManager takes the scope as the kernel's number.
				spec = append(spec, "scope="+strconv.Itoa(scopes[s.Scope]))
			}
			r.Commands = append(r.Commands, evidence.Command("nmcli", "connection", "modify", conn, "+"+fam+".routes", strings.Join(spec, " ")))
		}
		for _, s := range p.rules[dev] {
			fam := "ipv4"
			if is6(s) {
				fam = "ipv6"
			}
			rule := fmt.Sprintf("priority %d from %s table %d", s.Priority, srcWord(s.Src), s.Table)
			r.Commands = append(r.Commands, evidence.Command("nmcli", "connection", "modify", conn, "+"+fam+".routing-rules", rule))
		}
		if len(p.routes[dev])+len(p.rules[dev]) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("nmcli connection modify changes only the saved profile of %s. To apply it now without taking the link down: %s. %s applies it too, but takes %s down and up: connections through it drop, and an SSH session over it may not come back.", evidence.Quote(conn), evidence.Command("nmcli", "device", "reapply", dev), evidence.Command("nmcli", "connection", "up", conn), dev))
			r.Notes = append(r.Notes, fmt.Sprintf("Each command adds an entry: before running them a second time, check what the profile holds with %s.", evidence.Command("nmcli", "-g", "ipv4.routes,ipv4.routing-rules,ipv6.routes,ipv6.routing-rules", "connection", "show", conn)))
		}
	}
	return nil
}

// --- netplan ----------------------------------------------------------------

// renderNetplan writes one file per interface that netplan merges with the
// others (netplan-generate(8): files are read in lexical order, later ones
// amending earlier ones), adding routes and routing-policy to the
// interface's existing definition.
func renderNetplan(r *Rendered, p *plan, det Detection) error {
	for _, dev := range p.devs {
		def, ok := det.netplanDef(dev)
		if !ok {
			return fmt.Errorf("netplan has no definition for %s (asym read /etc/netplan, /run/netplan and /lib/netplan): a file that defined it with routes only would take the interface away from what configures it now, and lose its address; tell asym the netplan ID that configures %s, or persist with the manager that does", dev, dev)
		}
		name, err := nameFor(Detection{}, dev, "")
		if err != nil {
			return err
		}
		if !utf8.ValidString(def.ID) {
			return fmt.Errorf("the netplan ID for %s is not valid UTF-8, which YAML cannot hold", dev)
		}
		typ := def.Type
		if typ == "" {
			typ = "ethernets"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "# Written by asym: policy routing for %s that must survive a reboot.\n", comment(dev))
		if def.File != "" {
			fmt.Fprintf(&b, "# netplan merges this file with the others in lexical order: it adds these\n# routes and rules to %s.%s from %s.\n", typ, comment(def.ID), comment(def.File))
		}
		b.WriteString("network:\n  version: 2\n")
		fmt.Fprintf(&b, "  %s:\n    %s:\n", yamlString(typ), yamlString(def.ID))
		if rs := p.routes[dev]; len(rs) > 0 {
			b.WriteString("      routes:\n")
			for _, s := range rs {
				to := s.Dst.String()
				if s.Dst.Bits() == 0 {
					to = "default"
				}
				item := [][2]string{{"to", yamlString(to)}}
				if s.Gateway.IsValid() {
					item = append(item, [2]string{"via", yamlString(s.Gateway.String())})
				}
				if s.Scope != "" {
					item = append(item, [2]string{"scope", yamlString(s.Scope)})
				}
				if s.PrefSrc.IsValid() {
					// netplan's route "from" is the preferred source
					// (networkd PreferredSource=, NetworkManager src=).
					item = append(item, [2]string{"from", yamlString(s.PrefSrc.String())})
				}
				if !isMain(s.Table) {
					item = append(item, [2]string{"table", strconv.Itoa(s.Table)})
				}
				yamlItem(&b, "        ", item)
			}
		}
		if rs := p.rules[dev]; len(rs) > 0 {
			b.WriteString("      routing-policy:\n")
			for _, s := range rs {
				if !s.Src.IsValid() {
					return fmt.Errorf("the rule %s has no source address, which asym's netplan rendering needs (routing-policy from:)", evidence.Command(s.Words()...))
				}
				yamlItem(&b, "        ", [][2]string{
					{"from", yamlString(srcWord(s.Src))},
					{"table", strconv.Itoa(s.Table)},
					{"priority", strconv.Itoa(s.Priority)},
				})
			}
		}
		file := "/etc/netplan/90-asym-" + name + ".yaml"
		r.Files = append(r.Files, FileChange{Path: file, Mode: "create", Content: b.String()})

		where := "its definition"
		if def.File != "" {
			where = "the definition of " + typ + "." + def.ID + " in " + def.File
		}
		r.Notes = append(r.Notes, fmt.Sprintf("netplan reads /etc/netplan/*.yaml (with /run/netplan and /lib/netplan) in lexical order, later files amending earlier ones: %s adds these routes and rules to %s. Check the merged result with %s, and generate the backend's files without applying them with netplan generate.", file, where, evidence.Command("netplan", "get", typ+"."+def.ID)))
		r.Notes = append(r.Notes, "netplan before canonical/netplan#320 (2023) dropped routes of an interface that came from a second file: if netplan get does not show the routes of "+file+", move them into the file that defines "+def.ID+".")
		if def.CloudInit && det.CloudInitNetwork {
			r.Notes = append(r.Notes, fmt.Sprintf("%s is cloud-init's: it may rewrite it on boot. asym's file is separate and survives, but if cloud-init starts naming this interface by another ID, update the ID in %s to match.", def.File, file))
		}
	}
	if det.NetplanRenderer == "NetworkManager" {
		r.Notes = append(r.Notes, "netplan renders for NetworkManager here: releases without canonical/netplan#526 do not pass routing-policy to NetworkManager; after netplan generate, check that /run/NetworkManager/system-connections/netplan-*.nmconnection holds routing-rule lines.")
	}
	r.Notes = append(r.Notes, "Apply with netplan try: it applies the configuration and reverts it after 120 seconds unless you confirm (on systemd-networkd the revert did nothing before canonical/netplan#548). netplan apply applies it without a way back. asym runs neither.")
	return nil
}

// yamlItem writes one block-style sequence item of key: value pairs.
func yamlItem(b *strings.Builder, indent string, kvs [][2]string) {
	for i, kv := range kvs {
		lead := indent + "  "
		if i == 0 {
			lead = indent + "- "
		}
		fmt.Fprintf(b, "%s%s: %s\n", lead, kv[0], kv[1])
	}
}

// yamlString renders s as a YAML scalar that reads back as the same string:
// plain when it is a simple word that YAML would not take for a number,
// boolean or null; double-quoted with escapes otherwise.
func yamlString(s string) string {
	if yamlPlain(s) {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < ' ' || c == 0x7f || c == 0x85 || c == 0x2028 || c == 0x2029 || c == 0xfeff:
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func yamlPlain(s string) bool {
	if s == "" {
		return false
	}
	c0 := s[0]
	if !(c0 >= 'a' && c0 <= 'z' || c0 >= 'A' && c0 <= 'Z' || c0 >= '0' && c0 <= '9') {
		return false
	}
	digits := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '/' || c == '-' || c == '_') {
			return false
		}
		if !(c >= '0' && c <= '9' || c == '_' || c == '.') {
			digits = false
		}
	}
	if digits && strings.Count(s, ".") <= 1 {
		// 100, 1_000, 1.5: numbers to a YAML reader.
		return false
	}
	switch strings.ToLower(s) {
	case "y", "n", "yes", "no", "on", "off", "true", "false", "null":
		return false
	}
	return true
}

// --- systemd-networkd -------------------------------------------------------

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

// --- ifupdown ---------------------------------------------------------------

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

// --- sysctl -----------------------------------------------------------------

func renderSysctl(r *Rendered, p *plan) error {
	if len(p.sysctls) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("# Written by asym: sysctls that must survive a reboot.\n")
	for _, s := range p.sysctls {
		k, err := sysctlKey(s.Sysctl)
		if err != nil {
			return err
		}
		v := strings.TrimSpace(s.Value)
		if v == "" || strings.ContainsAny(v, "\n\r") {
			return fmt.Errorf("the value %q for %s cannot be written to sysctl.d", s.Value, s.Sysctl)
		}
		fmt.Fprintf(&b, "%s = %s\n", k, v)
	}
	r.Files = append(r.Files, FileChange{Path: SysctlFile, Mode: "set", Content: b.String()})
	r.Notes = append(r.Notes, "systemd-sysctl applies "+SysctlFile+" at boot and again for each interface as it appears (udev's 99-systemd.rules); a file that sorts after it and sets the same key wins (sysctl.d(5)), while a glob such as net.ipv4.conf.*.rp_filter does not override an explicit key. asym already set the running value.")
	return nil
}

// sysctlKey writes name the way sysctl.d(5) reads it. In the dotted form a
// dot inside an interface name (a VLAN such as eth0.100) must be written as
// a slash, since the first separator being a dot makes dots and slashes
// trade places: net.ipv4.conf.eth0/100.rp_filter is
// /proc/sys/net/ipv4/conf/eth0.100/rp_filter.
func sysctlKey(name string) (string, error) {
	// sysctl.d(5) has whole-line comments only (# or ; first), so those
	// characters are fine inside a key; "=" would end it, "-" first means
	// "ignore failure".
	if name == "" || strings.ContainsAny(name, "= \t\n\r") || strings.ContainsAny(name[:1], "-#;") {
		return "", fmt.Errorf("the sysctl name %q cannot be written to sysctl.d", name)
	}
	if strings.ContainsAny(name, "*?[") {
		// sysctl.d(5) treats such a key as a glob over every matching key.
		return "", fmt.Errorf("the sysctl name %q holds a glob character, which sysctl.d would apply to every matching key", name)
	}
	if strings.Contains(name, "/") {
		if strings.IndexAny(name, "./") == strings.IndexByte(name, '/') {
			// Already the slash form: dots stay dots.
			return name, nil
		}
		return "", fmt.Errorf("the sysctl name %q mixes separators in a way asym cannot read", name)
	}
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh."} {
		rest, ok := strings.CutPrefix(name, pre)
		if !ok {
			continue
		}
		i := strings.LastIndexByte(rest, '.')
		if i <= 0 {
			return "", fmt.Errorf("the sysctl name %q names no interface and setting", name)
		}
		return pre + strings.ReplaceAll(rest[:i], ".", "/") + rest[i:], nil
	}
	return name, nil
}

// globMatch is fnmatch(3) without flags, as systemd matches Name= globs;
// interface names never hold a slash, so path.Match's treatment of it
// makes no difference.
func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	return err == nil && ok
}

package persist

// Rendering: the steps sorted by interface (the plan), what every manager
// checks before writing them, and the iproute2 words they share.

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/fix"
)

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
		case *fix.ARPAnnounce:
			// A one-time message to the neighbours: nothing to keep.
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

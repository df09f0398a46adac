package persist

// netplan: the merged YAML of /{lib,etc,run}/netplan, the definition of an
// interface, and a file of asym's own that netplan merges into it.

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"asym/evidence"
)

// netplan reads /{lib,etc,run}/netplan/*.yaml as netplan-generate(8) does:
// a file in /run shadows one of the same name in /etc, which shadows /lib;
// files are read in lexical order, later ones amending earlier ones.
func (t *tree) netplan() {
	files := t.merged([]string{"/run/netplan", "/etc/netplan", "/lib/netplan"}, ".yaml")
	for _, f := range files {
		text, ok := t.read(f)
		if !ok {
			continue
		}
		t.netplanFiles++
		owned := cloudInitOwned(f, text)
		ev := f + ": netplan configuration"
		if owned {
			ev += " written by cloud-init"
		}
		defs := map[string]int{}
		for _, e := range scanYAML(text) {
			p := e.path
			switch {
			case len(p) == 2 && p[0] == "network" && p[1] == "renderer":
				t.d.NetplanRenderer = e.value
				ev += ", renderer " + e.value
			case len(p) >= 3 && p[0] == "network" && netplanTypes[p[1]]:
				key := p[1] + "\x00" + p[2]
				i, ok := defs[key]
				if !ok {
					t.d.Netplan = append(t.d.Netplan, NetplanDef{ID: p[2], Type: p[1], File: f, CloudInit: owned})
					i = len(t.d.Netplan) - 1
					defs[key] = i
				}
				switch {
				case len(p) == 4 && p[3] == "set-name":
					t.d.Netplan[i].SetName = e.value
				case len(p) == 5 && p[3] == "match" && p[4] == "name" && !strings.ContainsAny(e.value, "*?["):
					t.d.Netplan[i].MatchName = e.value
				}
			}
		}
		t.d.Evidence = append(t.d.Evidence, ev)
	}
}

var netplanTypes = map[string]bool{
	"ethernets": true, "wifis": true, "bonds": true, "bridges": true, "vlans": true,
	"tunnels": true, "vrfs": true, "dummy-devices": true, "virtual-ethernets": true,
	"modems": true, "nm-devices": true,
}

// netplanDef is the netplan definition of dev: the ID Names gives, else
// the first definition whose set-name, match name or ID is dev.
func (d Detection) netplanDef(dev string) (NetplanDef, bool) {
	if id, ok := d.Names[dev]; ok {
		for _, n := range d.Netplan {
			if n.ID == id {
				return n, true
			}
		}
		return NetplanDef{ID: id, Type: "ethernets"}, true
	}
	var found NetplanDef
	ok := false
	for _, n := range d.Netplan {
		if n.Iface() == dev {
			// Later files amend earlier ones; the first definition names
			// the ID and type, which later files must repeat.
			if !ok {
				found, ok = n, true
			}
		}
	}
	return found, ok
}

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

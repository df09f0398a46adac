package persist

// sysctl.d: sysctl steps, for every manager, in one file of asym's.

import (
	"fmt"
	"strings"
)

// SysctlFile is where sysctl steps persist, for every manager.
const SysctlFile = "/etc/sysctl.d/90-asym.conf"

// renderSysctl sets the keys of the sysctl steps in SysctlFile, whatever
// manager configures the interfaces.
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

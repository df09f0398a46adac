package netconfig

// RHEL's /etc/sysconfig/network-scripts/ifcfg-* files, read by
// initscripts and by NetworkManager's ifcfg-rh plugin.

import (
	"net/netip"
	"strings"
)

// ifcfgFile is what an ifcfg file says about its interface.
type ifcfgFile struct {
	device, hwaddr string
	gw4, gw6       []netip.Addr
}

// parseIfcfg reads the KEY=value lines of an ifcfg file (shell syntax,
// values possibly quoted; nothing is run): DEVICE=, HWADDR=, GATEWAY= and
// IPV6_DEFAULTGW= ("2001:db8::1%eth1": the zone is dropped).
func parseIfcfg(text string) ifcfgFile {
	var f ifcfgFile
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.ContainsAny(k, " \t") {
			continue
		}
		v = unquoteShell(v)
		switch k {
		case "DEVICE":
			f.device = v
		case "HWADDR":
			f.hwaddr = strings.ToLower(v)
		case "GATEWAY":
			f.gw4 = addrs([]string{v})
		case "IPV6_DEFAULTGW":
			f.gw6 = addrs([]string{v})
		}
	}
	return f
}

// unquoteShell strips one level of quotes and a trailing comment.
func unquoteShell(v string) string {
	v = strings.TrimSpace(v)
	switch {
	case len(v) >= 2 && (v[0] == '"' || v[0] == '\''):
		if end := strings.IndexByte(v[1:], v[0]); end >= 0 {
			return v[1 : end+1]
		}
	case strings.Contains(v, " #"):
		v, _, _ = strings.Cut(v, " #")
	}
	return strings.TrimSpace(v)
}

// ifcfgFor says whether the ifcfg file called name is for ifc: DEVICE=
// names it; without DEVICE=, HWADDR= is its MAC or the file is named
// ifcfg-IFACE (initscripts' own fallbacks).
func (f ifcfgFile) ifcfgFor(name string, ifc Interface) bool {
	switch {
	case f.device != "":
		return f.device == ifc.Name
	case f.hwaddr != "" && ifc.MAC != "":
		return f.hwaddr == strings.ToLower(ifc.MAC)
	}
	return name == "ifcfg-"+ifc.Name
}

package netconfig

// Where each manager keeps the files about an interface, and which of them
// concern it.

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// networkdLease reads /run/systemd/netif/leases/IFINDEX.
func (t *tree) networkdLease(ifc Interface) []Found {
	if ifc.Index <= 0 {
		return nil
	}
	p := "/run/systemd/netif/leases/" + strconv.Itoa(ifc.Index)
	text, written, ok := t.read(p)
	if !ok {
		return nil
	}
	return t.lease(NetworkdLease, p, written, parseNetworkdLease(text), false)
}

func (t *tree) lease(k Kind, p string, written time.Time, l dhcpLease, expired bool) []Found {
	gw := l.gateway()
	if !gw.IsValid() {
		return nil
	}
	return []Found{{Gateway: gw, Kind: k, Source: t.shown(p), Written: written, Expired: expired}}
}

const nmStateDir = "/var/lib/NetworkManager"

// networkManagerLeases reads NetworkManager's lease files for the
// interface: internal-UUID-IFACE.lease (its own client) and
// dhclient-UUID-IFACE.lease (with dhcp=dhclient). A file per profile ever
// used on the interface may be there; the newest ranks first.
func (t *tree) networkManagerLeases(ifc Interface) []Found {
	var out []Found
	for _, n := range t.files(nmStateDir) {
		p := nmStateDir + "/" + n
		switch {
		case nmLeaseName(n, "internal-", ifc.Name):
			if text, written, ok := t.read(p); ok {
				out = append(out, t.lease(NetworkManagerLease, p, written, parseNetworkdLease(text), false)...)
			}
		case nmLeaseName(n, "dhclient-", ifc.Name):
			out = append(out, t.dhclientFile(p, ifc, true)...)
		}
	}
	return out
}

// nmLeaseName: n is PREFIX + a 36-character UUID + "-" + iface + ".lease"
// (nm-dhcp-utils.c), so that eth1 does not take veth1's or br-eth1's.
func nmLeaseName(n, prefix, iface string) bool {
	rest, ok := strings.CutPrefix(n, prefix)
	return ok && len(rest) > 37 && rest[36] == '-' && rest[37:] == iface+".lease"
}

// dhclientLeases reads dhclient's databases outside NetworkManager:
// ifupdown's /var/lib/dhcp/dhclient.IFACE.leases, RHEL's
// /var/lib/dhclient/dhclient-IFACE.leases, and the shared dhclient.leases
// of a dhclient started by hand.
func (t *tree) dhclientLeases(ifc Interface) []Found {
	var out []Found
	for _, dir := range []string{"/var/lib/dhcp", "/var/lib/dhclient"} {
		for _, n := range t.files(dir) {
			if named, ok := dhclientName(n, ifc.Name); ok {
				out = append(out, t.dhclientFile(dir+"/"+n, ifc, named)...)
			}
		}
	}
	return out
}

// dhclientName says whether a file in dhclient's directory can hold ifc's
// IPv4 lease, and whether its name is for ifc (then blocks that name no
// interface are taken as its).
func dhclientName(n, iface string) (named, ok bool) {
	rest, isLease := strings.CutPrefix(n, "dhclient")
	if !isLease || strings.HasPrefix(rest, "6") || backup(n) {
		return false, false
	}
	for _, s := range []string{".leases", ".lease"} {
		if r, cut := strings.CutSuffix(rest, s); cut {
			switch {
			case r == "":
				return false, true
			case strings.HasSuffix(r, "."+iface) || strings.HasSuffix(r, "-"+iface):
				return true, true
			}
			return false, false
		}
	}
	return false, false
}

// dhclientFile reads one dhclient lease file and keeps ifc's newest lease.
func (t *tree) dhclientFile(p string, ifc Interface, named bool) []Found {
	text, written, ok := t.read(p)
	if !ok {
		return nil
	}
	l, expired, ok := newestDhclient(parseDhclient(text), ifc.Name, named, time.Now())
	if !ok {
		return nil
	}
	out := t.lease(DhclientLease, p, written, l.dhcpLease, expired)
	if expired && len(out) > 0 {
		out[0].Note = "the lease expired " + l.Expires.Format("2006-01-02 15:04 UTC")
	}
	return out
}

// networkdDirs are systemd-networkd's configuration directories, highest
// precedence first (systemd.network(5)).
var networkdDirs = []string{"/etc/systemd/network", "/run/systemd/network", "/usr/local/lib/systemd/network", "/usr/lib/systemd/network", "/lib/systemd/network"}

// networkdConfig finds the .network file systemd-networkd applies to the
// interface — the first in its order whose [Match] fits, with its drop-ins
// — and the gateways it sets.
func (t *tree) networkdConfig(ifc Interface) []Found {
	for _, p := range t.merged(networkdDirs, ".network") {
		text, _, ok := t.read(p)
		if !ok || strings.TrimSpace(text) == "" {
			continue // unreadable, or masked by an empty file or a link to /dev/null
		}
		dropins := t.merged(dropinDirs(path.Base(p)), ".conf")
		texts := []string{text}
		for _, d := range dropins {
			s, _, _ := t.read(d)
			texts = append(texts, s)
		}
		fit, untested := parseNetworkFile(strings.Join(texts, "\n")).matches(ifc)
		if fit == fitNo {
			continue
		}
		note := ""
		if fit == fitMaybe {
			note = "its [Match] also tests " + strings.Join(untested, ", ") + ", which asym cannot check from files"
		}
		var out []Found
		for i, file := range append([]string{p}, dropins...) {
			for _, gw := range parseNetworkFile(texts[i]).gateways {
				out = append(out, Found{Gateway: gw, Kind: NetworkdConfig, Source: t.shown(file), Note: note})
			}
		}
		return out
	}
	return nil
}

// dropinDirs are the directories of a unit file's drop-ins.
func dropinDirs(name string) []string {
	out := make([]string, len(networkdDirs))
	for i, d := range networkdDirs {
		out[i] = d + "/" + name + ".d"
	}
	return out
}

// merged lists the files with suffix in dirs (highest precedence first) as
// systemd merges them: one per name, from the directory of highest
// precedence, all sorted by name whatever their directory.
func (t *tree) merged(dirs []string, suffix string) []string {
	byName := map[string]string{}
	var names []string
	for _, dir := range dirs {
		for _, n := range t.files(dir) {
			if _, seen := byName[n]; !seen && strings.HasSuffix(n, suffix) {
				byName[n] = dir + "/" + n
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// networkManagerDirs hold keyfile profiles: the administrator's, the
// runtime ones (netplan writes netplan-*.nmconnection there) and the
// distribution's.
var networkManagerDirs = []string{"/etc/NetworkManager/system-connections", "/run/NetworkManager/system-connections", "/usr/lib/NetworkManager/system-connections"}

// networkManagerProfiles reads the keyfile profiles bound to the
// interface (by interface-name=, or by mac-address= when they name no
// interface). Several may be: the device state file says which one is
// active, and only that one counts when it is among them.
func (t *tree) networkManagerProfiles(ifc Interface) []Found {
	type profile struct {
		nmProfile
		file string
	}
	var bound []profile
	for _, dir := range networkManagerDirs {
		for _, n := range t.files(dir) {
			if backup(n) {
				continue
			}
			text, _, ok := t.read(dir + "/" + n)
			if !ok {
				continue
			}
			p := parseKeyfile(text)
			if p.iface == ifc.Name || p.iface == "" && p.mac != "" && strings.EqualFold(p.mac, ifc.MAC) {
				bound = append(bound, profile{p, dir + "/" + n})
			}
		}
	}
	if len(bound) == 0 {
		return nil
	}
	active := ""
	if ifc.Index > 0 {
		if text, _, ok := t.read("/run/NetworkManager/devices/" + strconv.Itoa(ifc.Index)); ok {
			active = activeUUID(text)
		}
	}
	for _, p := range bound {
		if active != "" && p.uuid == active {
			bound = []profile{p}
			break
		}
	}
	var out []Found
	for _, p := range bound {
		note := ""
		switch {
		case active != "" && p.uuid != active:
			note = "NetworkManager has another profile active on " + ifc.Name
		case len(bound) > 1:
			note = "one of " + strconv.Itoa(len(bound)) + " profiles for " + ifc.Name
		}
		for _, gw := range append(p.gw4, p.gw6...) {
			out = append(out, Found{Gateway: gw, Kind: NetworkManagerProfile, Source: t.shown(p.file), Note: note})
		}
	}
	return out
}

// ifupdown reads /etc/network/interfaces and the files it sources for the
// interface's stanzas.
func (t *tree) ifupdown(ifc Interface) []Found {
	var out []Found
	seen := map[string]bool{}
	var walk func(file string, depth int)
	walk = func(file string, depth int) {
		if seen[file] || depth > 3 {
			return
		}
		seen[file] = true
		text, _, ok := t.read(file)
		if !ok {
			return
		}
		stanzas, incs := parseInterfaces(text)
		for _, s := range stanzas {
			if s.iface == ifc.Name && s.gateway.IsValid() && (s.family == "inet" || s.family == "inet6") {
				out = append(out, Found{Gateway: s.gateway, Kind: IfupdownConfig, Source: t.shown(file)})
			}
		}
		for _, inc := range incs {
			for _, f := range t.included(file, inc) {
				walk(f, depth+1)
			}
		}
	}
	walk("/etc/network/interfaces", 0)
	return out
}

// included is the files an include line names: a relative pattern is
// relative to the including file's directory; a wildcard is taken in the
// last component only (the one Debian's default uses: interfaces.d/*).
func (t *tree) included(from string, inc include) []string {
	p := inc.pattern
	if !strings.HasPrefix(p, "/") {
		p = path.Join(path.Dir(from), p)
	}
	dir, base := path.Dir(p), path.Base(p)
	if inc.dir {
		dir, base = p, ""
	}
	if strings.ContainsAny(dir, "*?[") {
		t.note("%s: %q was not followed: asym follows wildcards in the last component of a path only", t.shown(from), inc.pattern)
		return nil
	}
	if !inc.dir && !strings.ContainsAny(base, "*?[") {
		return []string{p}
	}
	var out []string
	for _, n := range t.files(dir) {
		ok := runPartsName(n)
		if !inc.dir {
			ok, _ = path.Match(base, n)
		}
		if ok {
			out = append(out, dir+"/"+n)
		}
	}
	return out
}

const networkScripts = "/etc/sysconfig/network-scripts"

// ifcfg reads the interface's ifcfg file: ifcfg-IFACE when it is for the
// interface, else the one whose DEVICE= (or HWADDR=) names it.
func (t *tree) ifcfg(ifc Interface) []Found {
	own := "ifcfg-" + ifc.Name
	f, p, ok := t.readIfcfg(own, ifc)
	if !ok {
		for _, n := range t.files(networkScripts) {
			if strings.HasPrefix(n, "ifcfg-") && n != own && n != "ifcfg-lo" && !backup(n) {
				if f, p, ok = t.readIfcfg(n, ifc); ok {
					break
				}
			}
		}
	}
	if !ok {
		return nil
	}
	var out []Found
	for _, gw := range append(f.gw4, f.gw6...) {
		out = append(out, Found{Gateway: gw, Kind: IfcfgConfig, Source: t.shown(p)})
	}
	return out
}

// readIfcfg reads one ifcfg file and says whether it is for ifc.
func (t *tree) readIfcfg(name string, ifc Interface) (ifcfgFile, string, bool) {
	p := networkScripts + "/" + name
	text, _, ok := t.read(p)
	if !ok {
		return ifcfgFile{}, p, false
	}
	f := parseIfcfg(text)
	return f, p, f.ifcfgFor(name, ifc)
}

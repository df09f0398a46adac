package persist

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Detect looks under root for signs of each network manager and cloud
// agent, and reads what their files say about interfaces. It never fails:
// what it cannot read it names in Evidence.
func Detect(root string) Detection {
	d := Detection{}
	rt, err := os.OpenRoot(root)
	if err != nil {
		d.Managers = []Manager{Unknown}
		d.Evidence = append(d.Evidence, "cannot read the root "+root+": "+err.Error())
		return d
	}
	defer rt.Close()
	t := tree{rt: rt, fsys: rt.FS(), d: &d}

	score := map[Manager]int{}
	// Netplan generates its backend's configuration (under /run) from its
	// YAML at every boot, so when it is there its YAML is what to edit.
	t.netplan()
	if len(d.Netplan) > 0 || t.netplanFiles > 0 {
		score[Netplan] = 100
	}

	// NetworkManager: running (it owns /run/NetworkManager) or configured.
	if t.isDir("/run/NetworkManager") {
		score[NetworkManager] += 50
		d.Evidence = append(d.Evidence, "/run/NetworkManager exists: NetworkManager is running")
	}
	t.keyfiles()
	if n := countConn(d.Connections, false); n > 0 {
		score[NetworkManager] += 20
	}

	// systemd-networkd: running (it keeps link state under
	// /run/systemd/netif/links) or configured.
	if t.isDir("/run/systemd/netif/links") {
		score[Networkd] += 50
		d.Evidence = append(d.Evidence, "/run/systemd/netif/links exists: systemd-networkd is running")
	}
	if t.networkd() {
		score[Networkd] += 20
	}

	// RHEL ifcfg files: the legacy network service, or NetworkManager's
	// ifcfg-rh plugin when NetworkManager runs.
	t.ifcfg()
	if len(d.Ifcfg) > 0 {
		score[NetworkScripts] += 30
	}
	for _, p := range []string{
		"/etc/NetworkManager/dispatcher.d/10-ifcfg-rh-routes.sh",
		"/usr/lib/NetworkManager/dispatcher.d/10-ifcfg-rh-routes.sh",
	} {
		if t.exists(p) {
			d.RoutingRulesDispatcher = true
			d.Evidence = append(d.Evidence, p+": NetworkManager-dispatcher-routing-rules applies rule- files")
			break
		}
	}

	// ifupdown: a stanza for anything but lo means it configures the host.
	if t.ifupdown() {
		score[Ifupdown] += 5
		for _, s := range d.Stanzas {
			if s.Iface != "lo" {
				score[Ifupdown] += 25
				break
			}
		}
	}

	t.agents()

	order := []Manager{Netplan, NetworkManager, Networkd, NetworkScripts, Ifupdown}
	for _, m := range order {
		if score[m] > 0 {
			d.Managers = append(d.Managers, m)
		}
	}
	sort.SliceStable(d.Managers, func(i, j int) bool { return score[d.Managers[i]] > score[d.Managers[j]] })
	// Netplan's renderer comes right after netplan: it is what runs.
	if len(d.Managers) > 0 && d.Managers[0] == Netplan {
		r := Networkd
		if d.NetplanRenderer == "NetworkManager" {
			r = NetworkManager
		}
		rest := []Manager{Netplan}
		if score[r] > 0 {
			rest = append(rest, r)
		}
		for _, m := range d.Managers[1:] {
			if m != r {
				rest = append(rest, m)
			}
		}
		d.Managers = rest
	}
	if len(d.Managers) == 0 {
		d.Managers = []Manager{Unknown}
		d.Evidence = append(d.Evidence, "no network manager's files were found under "+root)
	}
	return d
}

func countConn(cs []NMConnection, netplan bool) int {
	n := 0
	for _, c := range cs {
		if c.Netplan == netplan {
			n++
		}
	}
	return n
}

// tree reads files under the root. os.Root refuses any path (or symlink)
// that leads outside it, so a fake root never reads the real /etc.
type tree struct {
	rt           *os.Root
	fsys         fs.FS
	d            *Detection
	netplanFiles int
}

func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// exists says whether p is there, a dangling or absolute symlink included:
// systemctl enable makes absolute links, which os.Root does not follow.
func (t tree) exists(p string) bool {
	_, err := t.rt.Lstat(rel(p))
	return err == nil
}

func (t tree) isDir(p string) bool {
	fi, err := fs.Stat(t.fsys, rel(p))
	return err == nil && fi.IsDir()
}

func (t tree) read(p string) (string, bool) {
	target := t.resolve(p)
	if target == "/dev/null" {
		// Masked: the systemd way to disable a file of the same name in a
		// lower-precedence directory.
		return "", false
	}
	b, err := fs.ReadFile(t.fsys, rel(target))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			t.d.Evidence = append(t.d.Evidence, p+": unreadable: "+err.Error())
		}
		return "", false
	}
	return string(b), true
}

// resolve follows a symlink with an absolute target as if the root were
// "/": os.Root refuses such links, and a live system has them (e.g.
// amazon-ec2-net-utils links /run/systemd/network/70-eth1.network to
// /usr/lib/systemd/network/80-ec2.network). The target is still read
// through os.Root, so it cannot leave the root.
func (t tree) resolve(p string) string {
	for range 8 {
		l, err := t.rt.Readlink(rel(p))
		if err != nil || !strings.HasPrefix(l, "/") {
			return p
		}
		p = path.Clean(l)
	}
	return p
}

// files lists the names of the non-directory entries of dir, sorted,
// without hidden files (asym's own backups and temp files are hidden where
// a directory is read whole).
func (t tree) files(dir string) []string {
	ents, err := fs.ReadDir(t.fsys, rel(dir))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || strings.Contains(e.Name(), ".asym-backup-") {
			continue
		}
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// merged lists files with suffix from dirs given highest precedence first,
// the way systemd and netplan merge them: one file per base name (the one
// in the highest-precedence directory), all sorted by base name whatever
// their directory.
func (t tree) merged(dirs []string, suffix string) []string {
	byName := map[string]string{}
	for _, dir := range dirs {
		for _, n := range t.files(dir) {
			if !strings.HasSuffix(n, suffix) {
				continue
			}
			if _, ok := byName[n]; !ok {
				byName[n] = dir + "/" + n
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = byName[n]
	}
	return out
}

// cloudInitHeader: the first lines cloud-init writes into the network files
// it renders (netplan, ENI, sysconfig).
func cloudInitOwned(p, text string) bool {
	return strings.Contains(baseName(p), "cloud-init") ||
		strings.Contains(text, "generated from information provided by the datasource") ||
		strings.Contains(text, "Created by cloud-init")
}

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

// keyfiles reads NetworkManager's keyfile profiles: /etc is the admin's,
// /run holds runtime ones (netplan writes netplan-*.nmconnection there).
func (t *tree) keyfiles() {
	for _, dir := range []string{"/etc/NetworkManager/system-connections", "/run/NetworkManager/system-connections"} {
		for _, n := range t.files(dir) {
			if strings.HasSuffix(n, "~") || strings.HasSuffix(n, ".bak") || strings.HasSuffix(n, ".orig") || strings.HasSuffix(n, ".rej") {
				continue
			}
			f := dir + "/" + n
			text, ok := t.read(f)
			if !ok {
				continue
			}
			sec := parseINI(text)
			c := NMConnection{
				ID:      keyfileUnescape(sec.get("connection", "id")),
				Iface:   keyfileUnescape(sec.get("connection", "interface-name")),
				File:    f,
				Netplan: strings.HasPrefix(n, "netplan-"),
			}
			if c.ID == "" {
				continue
			}
			t.d.Connections = append(t.d.Connections, c)
			ev := f + ": NetworkManager connection " + quoteEv(c.ID)
			if c.Iface != "" {
				ev += " for " + c.Iface
			}
			if c.Netplan {
				ev += " (generated by netplan)"
			}
			t.d.Evidence = append(t.d.Evidence, ev)
		}
	}
}

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

var runParts = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

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

func joinContinued(text string) []string {
	var out []string
	cur := ""
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimRight(l, "\r")
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\")
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

var flowDisabled = regexp.MustCompile(`(?m)^network:\s*\{\s*config:\s*["']?disabled["']?\s*\}`)

func (t *tree) agents() {
	d := t.d
	first := func(paths ...string) string {
		for _, p := range paths {
			if t.exists(p) {
				return p
			}
		}
		return ""
	}
	if ev := first(
		"/usr/lib/systemd/system/refresh-policy-routes@.service",
		"/lib/systemd/system/refresh-policy-routes@.service",
		"/usr/lib/systemd/system/policy-routes@.service",
		"/lib/systemd/system/policy-routes@.service",
		"/usr/share/amazon-ec2-net-utils",
		"/usr/lib/systemd/network/80-ec2.network",
		"/lib/systemd/network/80-ec2.network",
		"/usr/bin/setup-policy-routes",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "amazon-ec2-net-utils", Evidence: ev, Warning: "amazon-ec2-net-utils writes its own policy routing for every secondary ENI (rules \"from <each address> lookup T\" with table and priority T = 10000 plus the device number) as systemd-networkd drop-ins under /run/systemd/network/70-IFACE.network.d (07- on Debian), and its refresh-policy-routes@ timer rewrites them from instance metadata: a manual rule for the same source address with a lower priority number is looked up first, and a manual table numbered 10000 or more may be the one it fills. After the next refresh, check ip rule and ip route show table N; keep asym's table below 10000, or stop the agent for that interface (systemctl disable --now refresh-policy-routes@IFACE.timer policy-routes@IFACE.service)."})
	} else if ev := first("/etc/sysconfig/network-scripts/ec2net-functions"); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "ec2-net-utils", Evidence: ev, Warning: "ec2-net-utils 1.x (Amazon Linux 2) rewrites route-/rule- style policy routing for secondary ENIs when they come up (ec2ifup): keep asym's table number away from its 10000+ tables and check ip rule after the interface is next brought up."})
	}

	if ev := first("/etc/cloud/cloud.cfg", "/usr/bin/cloud-init"); ev != "" {
		disabled := ""
		if t.exists("/etc/cloud/cloud-init.disabled") {
			disabled = "/etc/cloud/cloud-init.disabled"
		}
		for _, f := range append([]string{"/etc/cloud/cloud.cfg"}, prefix("/etc/cloud/cloud.cfg.d/", t.files("/etc/cloud/cloud.cfg.d"))...) {
			if !strings.HasSuffix(f, ".cfg") {
				continue
			}
			text, ok := t.read(f)
			if !ok {
				continue
			}
			// Later files override earlier ones (cloud-init merges
			// cloud.cfg.d/*.cfg in lexical order after cloud.cfg).
			if flowDisabled.MatchString(text) {
				disabled = f
			}
			for _, e := range scanYAML(text) {
				if len(e.path) == 2 && e.path[0] == "network" && e.path[1] == "config" {
					if e.value == "disabled" {
						disabled = f
					} else if disabled == f {
						disabled = ""
					}
				}
			}
		}
		a := Agent{Name: "cloud-init", Evidence: ev}
		if disabled != "" {
			a.Evidence += "; network configuration disabled by " + disabled
			a.Warning = "cloud-init is installed but its network configuration is disabled (" + disabled + "): it will not rewrite the network files it once wrote, but re-enabling it (or a new image) brings its own files back."
		} else {
			d.CloudInitNetwork = true
			a.Warning = "cloud-init renders the network configuration from the cloud's metadata (/etc/netplan/50-cloud-init.yaml, /etc/network/interfaces.d/50-cloud-init, ifcfg files marked \"Created by cloud-init\") and rewrites those files on boot on some clouds (every boot on EC2 and Azure); since 24.1 it also adds its own routing-policy for extra NICs on EC2. asym never writes into its files; to stop it, write network: {config: disabled} to /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg."
		}
		d.Agents = append(d.Agents, a)
	}

	if ev := first(
		"/usr/bin/google_guest_agent",
		"/usr/lib/systemd/system/google-guest-agent.service",
		"/lib/systemd/system/google-guest-agent.service",
		"/etc/default/instance_configs.cfg",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "google-guest-agent", Evidence: ev, Warning: "google-guest-agent configures secondary NICs through the host's network manager and, when it restarts or a DHCP lease renews, has removed routes from user-defined tables (GoogleCloudPlatform/guest-agent#76); the manager restores persisted routes only when it reconfigures the link. After systemctl restart google-guest-agent, check ip route show table N and reapply (nmcli device reapply DEV, or networkctl reconfigure DEV)."})
	}

	if ev := first(
		"/etc/systemd/system/NetworkManager.service.wants/nm-cloud-setup.service",
		"/etc/systemd/system/timers.target.wants/nm-cloud-setup.timer",
	); ev != "" {
		d.Agents = append(d.Agents, Agent{Name: "nm-cloud-setup", Evidence: ev, Warning: "nm-cloud-setup is enabled: it adds NetworkManager routing tables and rules of its own for the addresses it reads from the cloud's metadata, which may sit before or after asym's rule; check ip rule after its next run (its timer runs it periodically)."})
	}
}

func prefix(p string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = p + n
	}
	return out
}

func quoteEv(s string) string { return "\"" + s + "\"" }

// --- small parsers -------------------------------------------------------

type kv struct{ key, value string }

type ini []struct {
	name string
	kvs  []kv
}

// parseINI reads systemd unit and NetworkManager keyfile syntax: [Section]
// headers, key=value lines, whole-line comments starting with # or ;.
func parseINI(text string) ini {
	var out ini
	for _, l := range joinContinued(text) {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			out = append(out, struct {
				name string
				kvs  []kv
			}{name: l[1 : len(l)-1]})
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || len(out) == 0 {
			continue
		}
		out[len(out)-1].kvs = append(out[len(out)-1].kvs, kv{strings.TrimSpace(k), strings.TrimSpace(v)})
	}
	return out
}

func (s ini) section(name string) []kv {
	var out []kv
	for _, sec := range s {
		if sec.name == name {
			out = append(out, sec.kvs...)
		}
	}
	return out
}

func (s ini) get(section, key string) string {
	v := ""
	for _, e := range s.section(section) {
		if e.key == key {
			v = e.value
		}
	}
	return v
}

// keyfileUnescape undoes GKeyFile's escapes, which NetworkManager keyfiles
// use for values (\s space, \t, \n, \r, \\).
func keyfileUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
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

// yentry is one "key: value" of a YAML document with the keys above it.
type yentry struct {
	path  []string
	value string
}

// scanYAML reads the block-style mappings of a YAML document well enough to
// find netplan's device IDs, set-name, match name and renderer, and
// cloud-init's network config switch. It is not a YAML parser: flow-style
// collections and multi-line scalars are seen only as values.
func scanYAML(text string) []yentry {
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var out []yentry
	for _, raw := range strings.Split(text, "\n") {
		raw = strings.TrimRight(raw, "\r")
		trimmed := strings.TrimLeft(raw, " ")
		if trimmed == "" || trimmed[0] == '#' || trimmed == "---" || trimmed == "..." {
			continue
		}
		indent := len(raw) - len(trimmed)
		content := trimmed
		for strings.HasPrefix(content, "- ") {
			// A sequence item: its mapping starts after the dash and
			// the blanks that follow it.
			rest := strings.TrimLeft(content[2:], " ")
			indent += len(content) - len(rest)
			content = rest
		}
		key, value, ok := yamlKey(content)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		if !ok {
			continue
		}
		stack = append(stack, level{indent, key})
		p := make([]string, len(stack))
		for i, l := range stack {
			p[i] = l.key
		}
		out = append(out, yentry{path: p, value: value})
	}
	return out
}

// yamlKey splits `key: value # comment`, unquoting a quoted key or value.
func yamlKey(s string) (key, value string, ok bool) {
	var rest string
	switch {
	case s == "":
		return "", "", false
	case s[0] == '"' || s[0] == '\'':
		k, n, good := yamlQuoted(s)
		if !good {
			return "", "", false
		}
		rest = strings.TrimLeft(s[n:], " ")
		if !strings.HasPrefix(rest, ":") {
			return "", "", false
		}
		key, rest = k, rest[1:]
	default:
		i := strings.Index(s, ": ")
		switch {
		case i >= 0:
			key, rest = s[:i], s[i+1:]
		case strings.HasSuffix(s, ":"):
			key, rest = s[:len(s)-1], ""
		default:
			return "", "", false
		}
		if strings.HasPrefix(key, "#") {
			return "", "", false
		}
	}
	rest = strings.TrimSpace(rest)
	if rest != "" && (rest[0] == '"' || rest[0] == '\'') {
		if v, _, good := yamlQuoted(rest); good {
			return key, v, true
		}
	}
	if i := strings.Index(rest, " #"); i >= 0 {
		rest = strings.TrimSpace(rest[:i])
	}
	if strings.HasPrefix(rest, "#") {
		rest = ""
	}
	return key, rest, true
}

// yamlQuoted reads a quoted scalar at the start of s and returns its value
// and how many bytes it took.
func yamlQuoted(s string) (string, int, bool) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case q == '\'' && c == '\'':
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, true
		case q == '"' && c == '"':
			return b.String(), i + 1, true
		case q == '"' && c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			default:
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

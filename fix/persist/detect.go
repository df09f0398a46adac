package persist

// Detection: which managers configure the host, from the files under the
// root, read through os.Root so that nothing outside it is ever read.

import (
	"errors"
	"io/fs"
	"os"
	"path"
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

// countConn counts the profiles netplan generated (netplan true) or the
// others.
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

package probes

// Where the target's network configuration lies on disk: the files its
// network manager and DHCP client keep (probes/netconfig reads them).

import (
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// UseConfigRoot makes the probes read the target's network configuration
// (DHCP leases, systemd-networkd, NetworkManager, ifupdown and ifcfg files)
// under dir instead of where the target's own files are: for tests, which
// give a namespace the files of a temporary tree, and for reading a copy
// of a host's /etc, /run and /var/lib taken elsewhere (as fix --persist
// --root writes under one).
func (t *Target) UseConfigRoot(dir string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.configRoot = dir
}

// ConfigRoot is the directory under which the target's network
// configuration lies: / for the host, /proc/PID/root for a process (a
// container's own file system). It is empty, with the reason, when the
// target has no files of its own: a named namespace (ip netns) shares the
// host's files, which say nothing about its interfaces, although these
// may have the same names as the host's.
func (t *Target) ConfigRoot() (root, why string) {
	t.mu.Lock()
	set := t.configRoot
	t.mu.Unlock()
	if set != "" {
		return set, ""
	}
	switch t.Kind {
	case "host":
		switch {
		case t.ownName != "":
			return "", "asym runs in netns " + t.ownName + ", whose files on disk are the host's"
		case t.own != "" && sameFile("/", "/proc/1/root"):
			return "", "asym runs in a network namespace of its own, but with the host's files"
		}
		return "/", ""
	case "pid":
		return processRoot("/proc/"+t.Value, "process "+t.Value)
	case "path":
		if pid, ok := procPID(t.Value); ok {
			return processRoot("/proc/"+pid, "process "+pid)
		}
		return "", "a namespace given by a path has no files of its own that asym can find"
	}
	return "", t.String() + " has no files of its own: those on disk are the host's"
}

// processRoot is a process's view of the file system (proc is its
// directory under /proc), unless that is the very root asym sees while its
// network namespace is another (unshare -n; ip netns exec, which keeps the
// root): then the files there are about other interfaces. asym's own
// process is the reference, not init: /proc/1 may be out of reach (a
// sandbox, another user namespace), /proc/self never is.
func processRoot(proc, who string) (string, string) {
	root := proc + "/root"
	if sameFile(root, "/proc/self/root") && !sameFile(proc+"/ns/net", "/proc/self/ns/net") {
		return "", who + " sees the same files as asym, not files of its own network namespace"
	}
	return root, ""
}

// procPID takes the pid out of /proc/PID/ns/net.
func procPID(p string) (string, bool) {
	p = path.Clean(p)
	rest, ok := strings.CutPrefix(p, "/proc/")
	pid, tail, _ := strings.Cut(rest, "/")
	if _, err := strconv.Atoi(pid); !ok || err != nil || tail != "ns/net" {
		return "", false
	}
	return pid, true
}

// sameFile says whether two paths lead to the same inode; false when
// either cannot be looked at.
func sameFile(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

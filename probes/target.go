package probes

import (
	"asym/evidence"
	"asym/probes/nsthread"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Target is the network namespace asym inspects: the host's own, a named one
// (ip netns), one given by path, or a process's (a container). Probes open
// their sockets inside it; the asym process itself never moves.
type Target struct {
	Kind  string // "host", "netns", "path", "pid"
	Value string // the name, path or pid as given
	// own names the namespace asym runs in when it is not the host's (asym
	// started by ip netns exec, or inside a container): "host namespace"
	// would be wrong there.
	own     string
	ownName string // its ip-netns name, when it has one: commands shown are prefixed with it
	ns      netns.NsHandle
	nl      *netlink.Handle
	strict  *netlink.Handle // strict checking: for table dumps only

	mu         sync.Mutex
	raw        *nl.SocketHandle // route socket for raw requests the library lacks
	names      map[int]string   // ifindex → name inside the target
	configRoot string           // set by UseConfigRoot: where to read the network configuration instead

	// What the kernel sent back, counted where the probes take it in, so a
	// test can prove that asym never dumps main or the conntrack table.
	gotRoutes, gotRules, gotConntrack atomic.Int64
}

// Received counts what the kernel has sent the probes so far in this
// target: route messages (lookup answers and policy-table dumps), policy
// rules, and conntrack entries. Route messages that the netlink library
// discards before a table-dump callback sees them are not counted.
func (t *Target) Received() (routes, rules, conntrack int64) {
	return t.gotRoutes.Load(), t.gotRules.Load(), t.gotConntrack.Load()
}

// probeSocketTimeout bounds every netlink answer.
const probeSocketTimeout = 2 * time.Second

// OpenTarget opens the namespace a person named. At most one of name and pid
// may be set; a name containing "/" is taken as a path.
func OpenTarget(name string, pid int) (*Target, error) {
	t := &Target{Kind: "host"}
	var err error
	switch {
	case name != "" && pid != 0:
		return nil, fmt.Errorf("give either --netns or --pid, not both")
	case pid != 0:
		t.Kind, t.Value = "pid", strconv.Itoa(pid)
		if pid < 0 {
			return nil, fmt.Errorf("--pid %d is not a process id: give a positive number", pid)
		}
		t.ns, err = netns.GetFromPid(pid)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("there is no process %d: check the pid (for a container: docker inspect -f '{{.State.Pid}}' NAME)", pid)
			}
			return nil, fmt.Errorf("reading the network namespace of process %d needs root: run asym with sudo (%v)", pid, err)
		}
	case strings.Contains(name, "/"):
		t.Kind, t.Value = "path", name
		t.ns, err = netns.GetFromPath(name)
		if errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("reading the network namespace at %s needs root: run asym with sudo (%v)", name, err)
		}
		if err != nil {
			return nil, fmt.Errorf("cannot open the network namespace at %s: %v", name, err)
		}
	case name != "":
		t.Kind, t.Value = "netns", name
		t.ns, err = netns.GetFromName(name)
		if err != nil {
			if os.IsNotExist(err) {
				return nil, fmt.Errorf("there is no network namespace named %q: `ip netns list` shows the names", name)
			}
			return nil, fmt.Errorf("cannot open network namespace %q: %v (run asym as root)", name, err)
		}
	default:
		// The host's own: the namespace of process 1 would be "the host" for
		// a tool running in a container, but the user asked about where asym
		// runs; take our own.
		t.ns, err = netns.GetFromPath("/proc/self/ns/net")
		if err != nil {
			return nil, fmt.Errorf("cannot open this host's network namespace: %v", err)
		}
		t.own, t.ownName = ownNamespace()
	}
	var stat unix.Stat_t
	if err := unix.Fstat(int(t.ns), &stat); err != nil || stat.Dev == 0 {
		t.ns.Close()
		return nil, fmt.Errorf("%s is not a network namespace", t)
	}
	if t.Kind != "host" && !canEnterNamespaces() {
		t.ns.Close()
		return nil, fmt.Errorf("asym enters %s to read it, which needs root (CAP_SYS_ADMIN): run asym with sudo", t)
	}
	open := func() (*netlink.Handle, error) {
		if t.Kind == "host" {
			// Entering even our own namespace needs CAP_SYS_ADMIN; a handle in
			// the current namespace lets a non-root user run what needs no root.
			return netlink.NewHandle(unix.NETLINK_ROUTE)
		}
		return netlink.NewHandleAt(t.ns, unix.NETLINK_ROUTE)
	}
	if t.nl, err = open(); err == nil {
		t.strict, err = open()
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("cannot open a netlink socket in %s: %v", t, err)
	}
	// Strict checking makes the kernel filter route dumps by table itself
	// instead of sending every route it has. It stays off on the other
	// handle: strict mode rejects the header the library sends for rule dumps.
	if err := t.strict.SetStrictCheck(true); err != nil {
		t.Close()
		return nil, fmt.Errorf("cannot enable strict netlink checking in %s (kernel older than 4.20?): %v", t, err)
	}
	return t, nil
}

// Close releases the namespace handle and sockets.
func (t *Target) Close() {
	if t.nl != nil {
		t.nl.Close()
	}
	if t.strict != nil {
		t.strict.Close()
	}
	if t.raw != nil {
		t.raw.Socket.Close()
	}
	t.ns.Close()
}

// String names the target for people: "host", "netns asym-lab", "pid 4242".
func (t *Target) String() string {
	if t.Kind == "host" {
		if t.own != "" {
			return t.own
		}
		return "host namespace"
	}
	return t.Kind + " " + t.Value
}

// HostNetwork says whether the target is the host's own network
// namespace, the one of process 1, which the host's network manager and
// /etc/sysctl.d configure. A named namespace, a container's or the one
// asym was started in by ip netns exec is not (--pid 1, or the pid of a
// process sharing the host's network, is). When process 1's namespace
// cannot be read (not root), a target asym was asked to enter is taken as
// another namespace.
func (t *Target) HostNetwork() bool {
	if t.Kind == "host" {
		return t.own == ""
	}
	var init unix.Stat_t
	if unix.Stat("/proc/1/ns/net", &init) != nil {
		return false
	}
	return init.Ino == t.Inode() && init.Dev == t.Dev()
}

// OwnName is the ip-netns name of the namespace asym runs in when it is
// not the host's (asym started by ip netns exec NAME), "" otherwise.
func (t *Target) OwnName() string { return t.ownName }

// NS is the namespace file descriptor, for libraries that take one.
func (t *Target) NS() netns.NsHandle { return t.ns }

// IsHost says the target is the namespace asym runs in. The packages that
// take the target as an interface (probes/watch) need to know: entering
// even our own namespace needs CAP_SYS_ADMIN, so their sockets for it are
// made where we are instead.
func (t *Target) IsHost() bool { return t.Kind == "host" }

// Netlink is the route socket opened inside the namespace.
func (t *Target) Netlink() *netlink.Handle { return t.nl }

// IfName maps an interface index to its name inside the target. Exported
// for probes/capture, which names the interface of every packet it sees and
// takes the target through an interface, since probes imports it.
func (t *Target) IfName(idx int) string { return t.ifName(idx) }

// IfIndex maps an interface name to its index inside the target, 0 when
// there is no such interface: one lookup of that link (RTM_GETLINK by
// name), remembered with the name.
func (t *Target) IfIndex(name string) int {
	if name == "" {
		return 0
	}
	t.mu.Lock()
	for idx, n := range t.names {
		if n == name {
			t.mu.Unlock()
			return idx
		}
	}
	t.mu.Unlock()
	l, err := t.nl.LinkByName(name)
	if err != nil {
		return 0
	}
	idx := l.Attrs().Index
	t.mu.Lock()
	if t.names == nil {
		t.names = map[int]string{}
	}
	t.names[idx] = name
	t.mu.Unlock()
	return idx
}

// Prefix is what a person types before a command to run it in the target,
// as words (to be quoted).
func (t *Target) Prefix() []string {
	if t.Kind == "host" && t.ownName != "" {
		// asym was started inside a named namespace (ip netns exec NAME
		// asym): a command pasted into the person's shell must go there.
		return PrefixFor("netns", t.ownName)
	}
	return PrefixFor(t.Kind, t.Value)
}

// PrefixFor is Prefix for a target of kind and value that is not open (a
// journal's): nothing for the host, whose commands run where the person
// types them.
func PrefixFor(kind, value string) []string {
	switch kind {
	case "netns":
		return []string{"ip", "netns", "exec", value}
	case "pid":
		return []string{"nsenter", "-t", value, "-n"}
	case "path":
		return []string{"nsenter", "--net=" + value}
	}
	return nil
}

// Cmd renders the equivalent command for a person, prefixed and quoted.
func (t *Target) Cmd(words ...string) string {
	return evidence.Command(append(t.Prefix(), words...)...)
}

// IPCmd renders an iproute2 command: "ip -n NAME ..." for named
// namespaces (shorter than ip netns exec), the prefix otherwise.
func (t *Target) IPCmd(words ...string) string {
	switch {
	case t.Kind == "netns":
		return evidence.Command(append([]string{"ip", "-n", t.Value}, words...)...)
	case t.Kind == "host" && t.ownName != "":
		return evidence.Command(append([]string{"ip", "-n", t.ownName}, words...)...)
	}
	return t.Cmd(append([]string{"ip"}, words...)...)
}

// InNS runs fn on a fresh OS thread that has entered the target namespace,
// for what only a thread's namespace decides (/proc/sys/net, /proc/thread-self/net,
// sockets that have no namespace option). The thread is locked and never
// unlocked, so the Go runtime discards it when fn returns: no goroutine ever
// runs in the wrong namespace afterwards, and it is never the main thread
// (nsthread.Run says why that matters).
func (t *Target) InNS(ctx context.Context, fn func() error) error {
	done := make(chan error, 1)
	nsthread.Run(func() {
		if t.Kind != "host" {
			if err := unix.Setns(int(t.ns), unix.CLONE_NEWNET); err != nil {
				done <- fmt.Errorf("enter %s: %w", t, err)
				return
			}
		}
		done <- fn()
	})
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ReadProc reads a file under /proc/thread-self/net or /proc/sys/net of the
// target namespace. Paths are relative to /proc, e.g. "sys/net/ipv4/ip_forward"
// or "thread-self/net/netstat". /proc/net follows the thread-group leader's
// namespace, not the thread's, hence thread-self.
func (t *Target) ReadProc(ctx context.Context, paths ...string) (map[string]string, error) {
	out := make(map[string]string, len(paths))
	err := t.InNS(ctx, func() error {
		for _, p := range paths {
			b, err := os.ReadFile(filepath.Join("/proc", p))
			if err != nil {
				if os.IsNotExist(err) {
					continue // absent: the caller decides what that means
				}
				return err
			}
			out[p] = string(b)
		}
		return nil
	})
	return out, err
}

// Inode identifies the namespace: a watchdog compares it before reverting,
// so it never changes a different namespace that reused a name or pid.
func (t *Target) Inode() uint64 {
	var st unix.Stat_t
	if unix.Fstat(int(t.ns), &st) != nil {
		return 0
	}
	return st.Ino
}

// NSPath is a path another process can open the namespace by.
func (t *Target) NSPath() string {
	switch t.Kind {
	case "netns":
		return "/run/netns/" + t.Value
	case "pid":
		return "/proc/" + t.Value + "/ns/net"
	case "path":
		return t.Value
	}
	return "/proc/self/ns/net"
}

// ownNamespace names the namespace asym runs in when it is not init's: by
// its ip-netns name when one of /run/netns is it, otherwise by its inode.
// Empty when it is the host's, or when that cannot be told.
func ownNamespace() (label, name string) {
	var self, init unix.Stat_t
	if unix.Stat("/proc/self/ns/net", &self) != nil {
		return "", ""
	}
	entries, _ := os.ReadDir("/run/netns")
	for i, e := range entries {
		if i >= 1024 {
			break
		}
		var st unix.Stat_t
		if unix.Stat("/run/netns/"+e.Name(), &st) == nil && st.Ino == self.Ino && st.Dev == self.Dev {
			return "netns " + e.Name() + " (asym runs in it)", e.Name()
		}
	}
	// /proc/1 may be unreadable (not root, or a sandbox): then say nothing
	// rather than guess.
	if unix.Stat("/proc/1/ns/net", &init) != nil || (self.Ino == init.Ino && self.Dev == init.Dev) {
		return "", ""
	}
	return fmt.Sprintf("the namespace asym runs in (net:[%d], not the host's)", self.Ino), ""
}

// TargetKind says what OpenTarget makes of a name and a pid, without
// opening anything: the kind and value a target's journal is filed under,
// for reading it when the namespace cannot be opened by that name any
// more (the process of --pid exited).
func TargetKind(name string, pid int) (kind, value string) {
	switch {
	case pid != 0:
		return "pid", strconv.Itoa(pid)
	case strings.Contains(name, "/"):
		return "path", name
	case name != "":
		return "netns", name
	}
	return "host", ""
}

// OpenTargetFile opens the namespace file at path (/proc/PID/fd/N,
// /proc/PID/ns/net, /run/netns/NAME) as the target a person named with
// kind and value. The fix watchdog reverts through the very namespace the
// fix changed, handed to it as an open file, whatever bears the name by
// then: a --pid process that exits or a namespace deleted and made again
// under its name must not redirect or cancel the revert. The caller checks
// that it is the namespace it expects (Dev, Inode, Cookie).
func OpenTargetFile(kind, value, path string) (*Target, error) {
	t := &Target{Kind: kind, Value: value}
	var err error
	if t.ns, err = netns.GetFromPath(path); err != nil {
		return nil, fmt.Errorf("cannot open the network namespace at %s: %w", path, err)
	}
	var stat unix.Stat_t
	if err := unix.Fstat(int(t.ns), &stat); err != nil || stat.Dev == 0 {
		t.ns.Close()
		return nil, fmt.Errorf("%s is not a network namespace", path)
	}
	if t.nl, err = netlink.NewHandleAt(t.ns, unix.NETLINK_ROUTE); err == nil {
		t.strict, err = netlink.NewHandleAt(t.ns, unix.NETLINK_ROUTE)
	}
	if err == nil {
		err = t.strict.SetStrictCheck(true)
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("cannot open a netlink socket in the namespace at %s: %v", path, err)
	}
	// A "host" target is not entered by InNS: the caller must run in it,
	// and Cookie, read on the caller's thread then, proves that it does.
	return t, nil
}

// Dev is the device of the namespace file (nsfs): with Inode it names the
// namespace while it exists.
func (t *Target) Dev() uint64 {
	var st unix.Stat_t
	if unix.Fstat(int(t.ns), &st) != nil {
		return 0
	}
	return st.Dev
}

// Cookie is the namespace's cookie (SO_NETNS_COOKIE, Linux 5.14): unlike
// its inode, which the kernel hands to a new namespace once the old one is
// freed, a cookie is never reused while the system runs. Read from a
// socket made inside the namespace.
func (t *Target) Cookie(ctx context.Context) (uint64, error) {
	var cookie uint64
	err := t.InNS(ctx, func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read the cookie of %s (SO_NETNS_COOKIE needs Linux 5.14): %w", t, err)
	}
	return cookie, nil
}

package apply

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"asym/probes"
)

// Process names one process for the life of the system: a pid alone is
// handed to another process once this one has exited; with its start time
// (clock ticks after boot, field 22 of /proc/PID/stat) it is not.
type Process struct {
	PID   int    `json:"pid"`
	Start uint64 `json:"start_ticks"`
}

// Self is this process.
func Self() Process {
	p := Process{PID: os.Getpid()}
	p.Start, _, _ = procStat(p.PID)
	return p
}

// Alive says whether the process still runs: the pid exists, has the same
// start time, and is not a zombie waiting for its parent.
func (p Process) Alive() bool {
	if p.PID <= 0 {
		return false
	}
	start, state, err := procStat(p.PID)
	return err == nil && start == p.Start && state != 'Z' && state != 'X'
}

func (p Process) String() string { return "pid " + strconv.Itoa(p.PID) }

// procStat reads a process's start time and state from /proc/PID/stat:
// "pid (comm) S ppid …", where comm may hold spaces and parentheses, so the
// fields are counted after the last ')'.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat has no command", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 { // f[0] is field 3 (state), f[19] field 22 (starttime)
		return 0, 0, fmt.Errorf("/proc/%d/stat is short", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

// TargetRef lets another process find the namespace again, and tell it
// from a namespace that merely has its name.
type TargetRef struct {
	Kind   string `json:"kind"` // host, netns, path, pid
	Value  string `json:"value"`
	NSPath string `json:"ns_path"`
	// Dev and Inode name the namespace while it exists; the kernel gives
	// its inode to a new namespace once it is freed. The cookie
	// (SO_NETNS_COOKIE) is never reused while the system runs.
	Dev    uint64 `json:"ns_dev"`
	Inode  uint64 `json:"ns_inode"`
	Cookie uint64 `json:"ns_cookie"`
}

// Ref describes a target so that another process can open it again and
// check it is the same namespace.
func Ref(ctx context.Context, t *probes.Target) (TargetRef, error) {
	cookie, err := t.Cookie(ctx)
	if err != nil {
		return TargetRef{}, err
	}
	return TargetRef{Kind: t.Kind, Value: t.Value, NSPath: t.NSPath(), Dev: t.Dev(), Inode: t.Inode(), Cookie: cookie}, nil
}

// String names the namespace for messages: by what the person typed and
// by its inode, which `ls -l /proc/PID/ns/net` shows.
func (r TargetRef) String() string {
	name := "the host namespace"
	if r.Kind != "host" {
		name = r.Kind + " " + r.Value
	}
	return fmt.Sprintf("%s (net:[%d])", name, r.Inode)
}

// same says whether t is the namespace r names; otherwise a sentence.
func (r TargetRef) same(ctx context.Context, t *probes.Target) error {
	if t.Dev() != r.Dev || t.Inode() != r.Inode {
		return fmt.Errorf("net:[%d] is not the namespace the fix changed (net:[%d])", t.Inode(), r.Inode)
	}
	cookie, err := t.Cookie(ctx)
	if err != nil {
		return err
	}
	if cookie != r.Cookie {
		return fmt.Errorf("net:[%d] is a new namespace that was given the inode of the one the fix changed (cookie %d, not %d)", r.Inode, cookie, r.Cookie)
	}
	return nil
}

// openRef opens the namespace at path as r's and checks it is r's.
func openRef(ctx context.Context, r TargetRef, path string) (*probes.Target, error) {
	t, err := probes.OpenTargetFile(r.Kind, r.Value, path)
	if err != nil {
		return nil, err
	}
	if err := r.same(ctx, t); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// errNamespaceGone says the namespace a fix changed exists no more: its
// changes went with it.
var errNamespaceGone = errors.New("the namespace the fix changed is gone")

// Find opens the namespace a journal's fix changed, wherever it is now:
// under its name, held open by the fix's watchdog (a namespace deleted
// while the fix was pending, or a --pid process that exited), mounted or
// held elsewhere. It never returns a namespace that only has the name:
// dev, inode and cookie must all agree. how says where it was found when
// that is not its name.
func Find(ctx context.Context, j *Journal) (t *probes.Target, how string, err error) {
	r := j.Target
	if t, err := openRef(ctx, r, r.NSPath); err == nil {
		return t, "", nil
	}
	for path := range candidates(r, j.WatchdogProcess) {
		if t, err := openRef(ctx, r, path); err == nil {
			return t, "found at " + path + ", no longer as " + r.Kind + " " + r.Value, nil
		}
	}
	if os.Geteuid() != 0 {
		return nil, "", fmt.Errorf("asym cannot look for the namespace the fix changed, %s, without root: run it as root", r)
	}
	return nil, "", fmt.Errorf("%w: %s is not named, held by the fix's watchdog, mounted, nor the namespace, an open file or a thread of any process, so its changes went with it; asym touches no other namespace",
		errNamespaceGone, r)
}

// candidates yields the files that may be the namespace of r, cheapest
// first: the watchdog's open files, nsfs mounts (ip netns and container
// runtimes bind-mount namespaces), the namespaces of processes, and last
// the open files and threads of every process. While a namespace exists no other has
// its inode, so what is found by inode is the one there is, and its cookie
// says whether it is r's or a newer one. The scans are bounded: a host has
// at most tens of thousands of processes.
func candidates(r TargetRef, wd *Process) iter.Seq[string] {
	want := fmt.Sprintf("net:[%d]", r.Inode)
	return func(yield func(string) bool) {
		if wd != nil && wd.Alive() && !yieldLinks(fmt.Sprintf("/proc/%d/fd", wd.PID), want, yield) {
			return
		}
		for _, m := range nsfsMounts(want) {
			if !yield(m) {
				return
			}
		}
		pids := processes()
		for _, pid := range pids {
			if p := "/proc/" + pid + "/ns/net"; hasInode(p, r) && !yield(p) {
				return
			}
		}
		for _, pid := range pids {
			if !yieldLinks("/proc/"+pid+"/fd", want, yield) || !yieldThreads(pid, r, yield) {
				return
			}
		}
	}
}

// yieldLinks yields the entries of dir (a /proc/PID/fd) that link to want.
func yieldLinks(dir, want string, yield func(string) bool) bool {
	fds, _ := os.ReadDir(dir)
	for _, fd := range fds {
		p := dir + "/" + fd.Name()
		if l, err := os.Readlink(p); err == nil && l == want && !yield(p) {
			return false
		}
	}
	return true
}

// yieldThreads yields the namespaces of a process's threads that have
// r's inode: a thread may have entered a namespace its process is not in.
func yieldThreads(pid string, r TargetRef, yield func(string) bool) bool {
	tasks, _ := os.ReadDir("/proc/" + pid + "/task")
	for _, task := range tasks {
		if p := "/proc/" + pid + "/task/" + task.Name() + "/ns/net"; task.Name() != pid && hasInode(p, r) && !yield(p) {
			return false
		}
	}
	return true
}

// nsfsMounts lists the mount points of namespace files whose root is want
// (field 4 of /proc/self/mountinfo, with the file system type after " - ").
func nsfsMounts(want string) []string {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[3] == want && strings.Contains(l, " - nsfs ") {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

// unescapeMount undoes mountinfo's octal escapes of space, tab, newline
// and backslash in paths.
func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func processes() []string {
	ds, _ := os.ReadDir("/proc")
	var out []string
	for _, d := range ds {
		if _, err := strconv.Atoi(d.Name()); err == nil && len(out) < 1<<17 {
			out = append(out, d.Name())
		}
	}
	return out
}

func hasInode(path string, r TargetRef) bool {
	var st unix.Stat_t
	return unix.Stat(path, &st) == nil && st.Ino == r.Inode && st.Dev == r.Dev
}

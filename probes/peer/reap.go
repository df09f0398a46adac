package peer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The peer command runs in a session of its own, and asym kills its
// process group when the time is up. But what it starts may leave both: a
// `setsid … &` has a new session and group, and a daemon may double-fork.
// So everything it starts is also tracked two more ways, and killed with
// it:
//   - a cgroup of its own (cgroup v2, a child of asym's own cgroup), when
//     asym may make one: nothing it starts can leave it without privileges
//     to write cgroup.procs elsewhere, and cgroup.kill (Linux 5.14) kills
//     all of it at once;
//   - a token in the environment, which every process it starts inherits
//     unless it clears its environment (sudo's env_reset does), and its
//     session id, kept by everything that does not call setsid: both found
//     by a scan of /proc.

// tokenVar carries the token in the peer's environment.
const tokenVar = "ASYM_PEER_RUN"

// useCgroup says whether the peer gets a cgroup when one can be made;
// tests turn it off to test the scan alone.
var useCgroup = true

// group is what one peer run started.
type group struct {
	token  string
	leader int      // the peer command's pid: its session and group id
	cg     string   // the cgroup's directory, "" without one
	cgDir  *os.File // held open for clone3's CLONE_INTO_CGROUP
}

// newGroup prepares cmd (not started) to be tracked: its token in the
// environment and, when one can be made, a cgroup it starts in.
func newGroup(cmd *exec.Cmd) *group {
	var b [12]byte
	rand.Read(b[:])
	g := &group{token: hex.EncodeToString(b[:])}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, tokenVar+"="+g.token)
	if useCgroup {
		g.makeCgroup()
	}
	if g.cgDir != nil {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(g.cgDir.Fd())
	}
	return g
}

// makeCgroup makes a child of asym's own cgroup v2; without one (cgroup
// v1 only, a read-only cgroupfs in a container, no privileges) the scan
// alone tracks the peer.
func (g *group) makeCgroup() {
	mnt := cgroup2Mount()
	own := ownCgroup()
	if mnt == "" || own == "" {
		return
	}
	dir := filepath.Join(mnt, own, "asym-peer-"+strconv.Itoa(os.Getpid())+"-"+g.token[:8])
	if err := os.Mkdir(dir, 0o755); err != nil {
		return
	}
	f, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return
	}
	g.cg, g.cgDir = dir, f
}

// started records the peer command's pid.
func (g *group) started(pid int) { g.leader = pid }

// withoutCgroup undoes newGroup's cgroup when the command could not start
// in it (a kernel without clone3's CLONE_INTO_CGROUP, before 5.7): the
// caller starts it again without.
func (g *group) withoutCgroup(cmd *exec.Cmd) {
	g.release()
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = false, 0
}

// kill kills everything the peer started, a few rounds until nothing is
// left: a process may fork while it is being killed.
func (g *group) kill() {
	if g.leader > 0 {
		syscall.Kill(-g.leader, syscall.SIGKILL)
	}
	for round := 0; round < 5; round++ {
		n := g.killCgroup() + g.killScanned()
		if n == 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// killCgroup kills the cgroup's processes and says how many were there.
func (g *group) killCgroup() int {
	if g.cg == "" {
		return 0
	}
	pids := cgroupProcs(g.cg)
	if len(pids) == 0 {
		return 0
	}
	if os.WriteFile(filepath.Join(g.cg, "cgroup.kill"), []byte("1"), 0) != nil {
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return len(pids)
}

// killScanned kills the processes whose environment holds the token or
// whose session is the peer command's, and says how many it found.
func (g *group) killScanned() int {
	n := 0
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if g.inSession(pid) || g.hasToken(pid) {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				n++
			}
		}
	}
	return n
}

func (g *group) inSession(pid int) bool {
	if g.leader <= 0 {
		return false
	}
	sid, err := unix.Getsid(pid)
	return err == nil && sid == g.leader
}

func (g *group) hasToken(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(tokenVar + "=" + g.token)
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.Equal(kv, want) {
			return true
		}
	}
	return false
}

// release removes the cgroup. Processes still in it (the peer ended but
// left something running, as ssh's ControlMaster may) are moved back to
// asym's own cgroup first: a cgroup with processes cannot be removed.
func (g *group) release() {
	if g.cg == "" {
		return
	}
	parent := filepath.Dir(g.cg)
	for end := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
		pids := cgroupProcs(g.cg)
		for _, pid := range pids {
			os.WriteFile(filepath.Join(parent, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0)
		}
		if os.Remove(g.cg) == nil || time.Now().After(end) {
			break
		}
	}
	g.cgDir.Close()
	g.cg, g.cgDir = "", nil
}

func cgroupProcs(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cgroup2Mount is where the cgroup v2 hierarchy is mounted (/sys/fs/cgroup,
// or /sys/fs/cgroup/unified on a hybrid host), "" when it is not.
func cgroup2Mount() string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if _, after, ok := strings.Cut(l, " - "); ok && strings.HasPrefix(after, "cgroup2 ") {
			if f := strings.Fields(l); len(f) > 4 {
				return f[4]
			}
		}
	}
	return ""
}

// ownCgroup is this process's cgroup v2 path ("0::/path" in
// /proc/self/cgroup), "" when it has none.
func ownCgroup() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok && strings.HasPrefix(p, "/") && !strings.Contains(p, "..") {
			return p
		}
	}
	return ""
}

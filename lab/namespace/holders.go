package namespace

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Holder is a process that keeps a namespace alive: it holds it open (a
// handle, as the lab, asym and its watchdog do) or runs in it.
type Holder struct {
	PID     int
	Command string // its command line, spaces for NULs, cut at 120 bytes
}

func (h Holder) String() string { return fmt.Sprintf("pid %d (%s)", h.PID, h.Command) }

// Holders lists the processes other than this one that hold the named
// namespace, read from /proc (a link "net:[INODE]" among a process's
// descriptors, or as its ns/net). Removing the name of a namespace a
// process holds pulls it away under that process. Processes that vanish
// while they are read are skipped.
func Holders(name string) ([]Holder, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(Dir, name), &st); err != nil {
		return nil, fmt.Errorf("namespace %s: %w", name, err)
	}
	want := "net:[" + strconv.FormatUint(st.Ino, 10) + "]"
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []Holder
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid == os.Getpid() || !holds(pid, want) {
			continue
		}
		out = append(out, Holder{PID: pid, Command: command(pid)})
	}
	return out, nil
}

func holds(pid int, want string) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	if l, err := os.Readlink(dir + "/ns/net"); err == nil && l == want {
		return true
	}
	fds, _ := os.ReadDir(dir + "/fd")
	for _, fd := range fds {
		if l, err := os.Readlink(dir + "/fd/" + fd.Name()); err == nil && l == want {
			return true
		}
	}
	return false
}

func command(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	s := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(s) > 120 {
		s = s[:120] + "…"
	}
	return s
}

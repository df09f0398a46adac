package netconfig

// The bounded reader: files under the root, through os.Root, each capped in
// size, each directory capped in entries, the whole read capped in files
// and stopped by the context.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

const (
	maxFileBytes  = 256 << 10 // a lease or a profile is a few KiB; anything bigger is not one
	maxDirEntries = 256       // per directory listed
	maxFiles      = 128       // per Gateways call
	maxLinkHops   = 8
)

// tree reads files under a root. os.Root resolves every component itself
// (openat with O_NOFOLLOW, one component at a time) and refuses a relative
// symbolic link that climbs out of the root, so a link planted in a
// container's /var/lib cannot make asym read the host's files.
type tree struct {
	ctx   context.Context
	root  string // as given: paths shown to people are under it
	rt    *os.Root
	count int // files read so far
	notes []string
	cut   bool // the context ended the read
}

// rel turns a path on the target ("/run/x") into one os.Root takes ("run/x").
func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return p
}

// shown is a path on the target as a path on this machine.
func (t *tree) shown(p string) string { return filepath.Join(t.root, p) }

func (t *tree) note(format string, a ...any) { t.notes = append(t.notes, fmt.Sprintf(format, a...)) }

// live says the context still allows reading, and says once when it
// does not.
func (t *tree) live() bool {
	if t.ctx.Err() == nil {
		return true
	}
	if !t.cut {
		t.cut = true
		t.notes = append(t.notes, cutShort(t.root, t.ctx.Err()))
	}
	return false
}

func cutShort(root string, err error) string {
	return fmt.Sprintf("reading the network configuration under %s was cut short (%v): what it holds is unknown", root, err)
}

// resolve follows a final symbolic link whose target is absolute as if the
// root were /: os.Root refuses absolute links outright, and real systems
// have them (amazon-ec2-net-utils links /run/systemd/network/70-eth1.network
// to /usr/lib/systemd/network/80-ec2.network; in a container they name the
// container's own files). The target is then opened through os.Root again,
// so it cannot leave the root either.
func (t *tree) resolve(p string) string {
	for range maxLinkHops {
		l, err := t.rt.Readlink(rel(p))
		if err != nil || !strings.HasPrefix(l, "/") {
			return p
		}
		p = path.Clean(l)
	}
	return p
}

// read returns the text of the file at p (a path on the target) and when
// it was written. ok is false when it is absent (said nothing about: a
// host has few of these files) or could not be read (said in a note).
func (t *tree) read(p string) (text string, written time.Time, ok bool) {
	if !t.live() {
		return "", time.Time{}, false
	}
	if t.count >= maxFiles {
		if t.count == maxFiles {
			t.note("stopped after reading %d files under %s: the rest were not looked at", maxFiles, t.root)
			t.count++
		}
		return "", time.Time{}, false
	}
	target := t.resolve(p)
	if target == "/dev/null" {
		// Masked: systemd's way to disable a file of the same name in a
		// directory of lower precedence. It reads as empty.
		return "", time.Time{}, true
	}
	t.count++
	// O_NONBLOCK: a FIFO where a lease should be would block open(2)
	// forever; it is refused below as not a regular file.
	f, err := t.rt.OpenFile(rel(target), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.unreadable(p, err)
		return "", time.Time{}, false
	}
	defer f.Close()
	st, err := f.Stat()
	switch {
	case err != nil:
		t.unreadable(p, err)
		return "", time.Time{}, false
	case !st.Mode().IsRegular():
		t.note("%s was not read: it is not a regular file", t.shown(p))
		return "", time.Time{}, false
	case st.Size() > maxFileBytes:
		t.note("%s was not read: it holds %d bytes, more than the %d a configuration file or lease can need", t.shown(p), st.Size(), maxFileBytes)
		return "", time.Time{}, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	switch {
	case err != nil:
		t.unreadable(p, err)
		return "", time.Time{}, false
	case len(b) > maxFileBytes:
		t.note("%s was not read: it grew past %d bytes while being read", t.shown(p), maxFileBytes)
		return "", time.Time{}, false
	}
	return string(b), st.ModTime(), true
}

// unreadable notes why a file that exists was not read.
func (t *tree) unreadable(p string, err error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Absent: the usual case, nothing to say.
	case errors.Is(err, fs.ErrPermission):
		t.note("%s could not be read: permission denied (run asym as root)", t.shown(p))
	case strings.Contains(err.Error(), "path escapes from parent"):
		// os.Root's error for a link out of the root has no sentinel.
		t.note("%s was not read: a symbolic link on its path leads out of %s", t.shown(p), t.root)
	default:
		t.note("%s could not be read: %v", t.shown(p), err)
	}
}

// entry is one name in a directory.
type entry struct {
	name string
	dir  bool
}

// list returns the entries of dir (a path on the target) sorted by name,
// at most maxDirEntries of them, hidden ones left out (editors' and
// asym's own backups are hidden).
func (t *tree) list(dir string) []entry {
	if !t.live() {
		return nil
	}
	d, err := t.rt.Open(rel(t.resolve(dir)))
	if err != nil {
		t.unreadable(dir, err)
		return nil
	}
	defer d.Close()
	des, err := d.ReadDir(maxDirEntries + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		t.unreadable(dir, err)
		return nil
	}
	if len(des) > maxDirEntries {
		t.note("%s holds more than %d entries: only %d of them (in directory order) were looked at", t.shown(dir), maxDirEntries, maxDirEntries)
		des = des[:maxDirEntries]
	}
	var out []entry
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".") {
			continue
		}
		out = append(out, entry{de.Name(), de.IsDir()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// files is the names of the entries of dir that are not directories.
func (t *tree) files(dir string) []string {
	var out []string
	for _, e := range t.list(dir) {
		if !e.dir {
			out = append(out, e.name)
		}
	}
	return out
}

// backup says a file name is an editor's or a package manager's copy, which
// no manager reads (initscripts' and ifcfg-rh's own ignore list).
func backup(name string) bool {
	for _, s := range []string{"~", ".bak", ".old", ".orig", ".rej", ".rpmnew", ".rpmorig", ".rpmsave", ".dpkg-old", ".dpkg-dist", ".ucf-old", ".augnew", ".augtmp"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return strings.Contains(name, ".asym-backup-")
}

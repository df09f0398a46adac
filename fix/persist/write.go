package persist

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
	"time"
)

// Write applies r's Files under root. Every existing file it changes is
// first copied to PATH.asym-backup-<UTC yyyymmddThhmmssZ> (with a counter
// when that name is taken: an existing backup is never overwritten); a file
// whose content would not change is left alone and not backed up. Parent
// directories are created 0755, new files 0644 (0600 for NetworkManager
// keyfiles and netplan YAML, which both refuse or warn about readable
// files); existing files keep their mode and owner. Each file is written to a
// temporary file beside it and renamed over it, so a reader never sees half
// of it. Write returns the backups it made, as paths on the host (like
// FileChange.Path). It never runs a command.
//
// Every change is worked out before anything is written, so a Rendered that
// cannot be applied (a block whose stanza is gone, a symlink) changes
// nothing. A Rendered for a namespace other than the host's is refused:
// it has no file, only a script for what makes the namespace.
func Write(root string, r Rendered, now time.Time) (backups []string, err error) {
	if r.ForNamespace() {
		return nil, fmt.Errorf("the fix is for %s, which asym does not write: its commands go into what makes the namespace", r.Manager)
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open the root %s: %w", root, err)
	}
	defer rt.Close()

	type target struct {
		path     string
		old      []byte
		exists   bool
		mode     fs.FileMode
		uid, gid int // of the existing file, -1 for a new one
		now      string
	}
	var order []string
	targets := map[string]*target{}
	for _, fc := range r.Files {
		if err := checkPath(fc.Path); err != nil {
			return nil, err
		}
		t, ok := targets[fc.Path]
		if !ok {
			t = &target{path: fc.Path, mode: filePerm(fc.Path), uid: -1, gid: -1}
			fi, err := rt.Lstat(rel(fc.Path))
			switch {
			case err == nil && fi.Mode()&fs.ModeSymlink != 0:
				return nil, fmt.Errorf("%s is a symbolic link: asym writes only regular files, so edit the file it points to", fc.Path)
			case err == nil && !fi.Mode().IsRegular():
				return nil, fmt.Errorf("%s exists and is not a regular file", fc.Path)
			case err == nil:
				b, err := rt.ReadFile(rel(fc.Path))
				if err != nil {
					return nil, fmt.Errorf("read %s: %w", fc.Path, err)
				}
				t.old, t.exists, t.mode = b, true, fi.Mode().Perm()
				if st, ok := fi.Sys().(*syscall.Stat_t); ok {
					t.uid, t.gid = int(st.Uid), int(st.Gid)
				}
			case !errors.Is(err, fs.ErrNotExist):
				return nil, fmt.Errorf("look at %s: %w", fc.Path, err)
			}
			t.now = string(t.old)
			targets[fc.Path] = t
			order = append(order, fc.Path)
		}
		next, err := apply(fc, t.now, t.exists || t.now != "")
		if err != nil {
			return nil, err
		}
		t.now = next
	}

	stamp := now.UTC().Format("20060102T150405Z")
	for _, p := range order {
		t := targets[p]
		if t.exists && t.now == string(t.old) {
			continue
		}
		if t.exists {
			b, err := backup(rt, p, t.old, t.mode, stamp)
			if err != nil {
				return backups, err
			}
			backups = append(backups, b)
		}
		if err := mkdirs(rt, path.Dir(p)); err != nil {
			return backups, err
		}
		if err := atomicWrite(rt, p, []byte(t.now), t.mode, t.uid, t.gid); err != nil {
			return backups, err
		}
	}
	return backups, nil
}

// checkPath refuses anything but a clean absolute path below "/".
func checkPath(p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" || strings.Contains(p, "\x00") {
		return fmt.Errorf("%q is not a clean absolute file path", p)
	}
	for _, el := range strings.Split(p[1:], "/") {
		if el == ".." || el == "." {
			return fmt.Errorf("%q is not a clean absolute file path", p)
		}
	}
	return nil
}

// filePerm is the mode of a file asym creates: NetworkManager ignores
// keyfiles that others can read, and netplan warns that its YAML "should
// NOT be accessible by others" (it may hold secrets).
func filePerm(p string) fs.FileMode {
	switch {
	case strings.HasPrefix(p, "/etc/NetworkManager/system-connections/"),
		strings.HasPrefix(p, "/etc/netplan/") && strings.HasSuffix(p, ".yaml"):
		return 0o600
	}
	return 0o644
}

// apply computes the file's new content from its current one.
func apply(fc FileChange, cur string, exists bool) (string, error) {
	switch fc.Mode {
	case "create":
		return fc.Content, nil
	case "append":
		return appendLines(cur, fc.Content), nil
	case "replace-block":
		return replaceBlock(fc, cur, exists)
	case "set":
		return setKeys(cur, fc.Content), nil
	}
	return "", fmt.Errorf("%s: unknown mode %q (want create, append, replace-block or set)", fc.Path, fc.Mode)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func joinLines(ls []string) string {
	if len(ls) == 0 {
		return ""
	}
	return strings.Join(ls, "\n") + "\n"
}

// appendLines adds the lines of add that cur does not hold (compared
// without surrounding blanks), so appending twice adds nothing: a second
// "ip rule add" of the same rule at boot would fail or duplicate it.
func appendLines(cur, add string) string {
	have := map[string]bool{}
	for _, l := range splitLines(cur) {
		have[strings.TrimSpace(l)] = true
	}
	out := cur
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	for _, l := range splitLines(add) {
		if t := strings.TrimSpace(l); t == "" || have[t] {
			continue
		}
		have[strings.TrimSpace(l)] = true
		out += l + "\n"
	}
	return out
}

// replaceBlock puts fc.Content (a block from fc.Begin to fc.End) in place
// of an existing block with the same markers, or right after the anchor
// line, or at the end.
func replaceBlock(fc FileChange, cur string, exists bool) (string, error) {
	block := splitLines(fc.Content)
	if fc.Begin == "" || fc.End == "" || len(block) < 2 || strings.TrimSpace(block[0]) != fc.Begin || strings.TrimSpace(block[len(block)-1]) != fc.End {
		return "", fmt.Errorf("%s: a replace-block change must start with its begin marker and end with its end marker", fc.Path)
	}
	lines := splitLines(cur)
	b, e := -1, -1
	for i, l := range lines {
		switch strings.TrimSpace(l) {
		case fc.Begin:
			if b >= 0 {
				return "", fmt.Errorf("%s holds the marker %q twice: fix the file by hand", fc.Path, fc.Begin)
			}
			b = i
		case fc.End:
			if b >= 0 && e < 0 {
				e = i
			}
		}
	}
	switch {
	case b >= 0 && e < 0:
		return "", fmt.Errorf("%s holds %q without %q: fix the file by hand", fc.Path, fc.Begin, fc.End)
	case b >= 0:
		out := append(append(append([]string{}, lines[:b]...), block...), lines[e+1:]...)
		return joinLines(out), nil
	case len(fc.After) == 0:
		return joinLines(append(lines, block...)), nil
	case !exists:
		return "", fmt.Errorf("%s does not exist, so it has no line %q to add to", fc.Path, strings.Join(fc.After, " "))
	}
	for i, l := range lines {
		w := strings.Fields(l)
		if len(w) < len(fc.After) {
			continue
		}
		match := true
		for j, a := range fc.After {
			if w[j] != a {
				match = false
				break
			}
		}
		if match {
			out := append(append(append([]string{}, lines[:i+1]...), block...), lines[i+1:]...)
			return joinLines(out), nil
		}
	}
	return "", fmt.Errorf("%s has no line starting %q any more: detect again", fc.Path, strings.Join(fc.After, " "))
}

// setKeys merges the "key = value" lines of add into cur: a line for the
// same key is replaced in place, others are appended. A new file gets add
// whole, comments included.
func setKeys(cur, add string) string {
	if cur == "" {
		return add
	}
	key := func(l string) string {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' || t[0] == ';' {
			return ""
		}
		k, _, ok := strings.Cut(t, "=")
		if !ok {
			return ""
		}
		return strings.TrimSpace(strings.TrimPrefix(k, "-"))
	}
	lines := splitLines(cur)
	for _, l := range splitLines(add) {
		k := key(l)
		if k == "" {
			continue
		}
		done := false
		for i := range lines {
			if key(lines[i]) == k {
				if !done {
					lines[i] = l
					done = true
				} else {
					// A second assignment would override ours (the last one wins).
					lines[i] = "# " + lines[i] + " (replaced by asym)"
				}
			}
		}
		if !done {
			lines = append(lines, l)
		}
	}
	return joinLines(lines)
}

// backupName is where a backup of p goes. In directories whose every file
// is read (ifupdown sources interfaces.d/*, NetworkManager loads every
// keyfile) a visible backup would be loaded as configuration: there it is
// hidden, which glob(3) and NetworkManager skip.
func backupName(p, stamp string, n int) string {
	suffix := ".asym-backup-" + stamp
	if n > 0 {
		suffix += fmt.Sprintf("-%d", n)
	}
	dir, base := path.Split(p)
	switch strings.TrimSuffix(dir, "/") {
	case "/etc/network/interfaces.d", "/etc/NetworkManager/system-connections":
		return dir + "." + base + suffix
	}
	return p + suffix
}

func backup(rt *os.Root, p string, data []byte, mode fs.FileMode, stamp string) (string, error) {
	for n := 0; n < 1000; n++ {
		name := backupName(p, stamp, n)
		f, err := rt.OpenFile(rel(name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("back up %s: %w", p, err)
		}
		_, werr := f.Write(data)
		if werr == nil {
			werr = f.Chmod(mode)
		}
		if werr == nil {
			werr = f.Sync()
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return "", fmt.Errorf("back up %s to %s: %w", p, name, werr)
		}
		return name, nil
	}
	return "", fmt.Errorf("back up %s: a thousand backups from %s already exist", p, stamp)
}

// mkdirs creates dir and its missing parents with mode 0755 whatever the
// umask.
func mkdirs(rt *os.Root, dir string) error {
	var missing []string
	for d := dir; d != "/" && d != "."; d = path.Dir(d) {
		if _, err := rt.Lstat(rel(d)); err == nil {
			break
		}
		missing = append(missing, d)
	}
	if err := rt.MkdirAll(rel(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for _, d := range missing {
		if err := rt.Chmod(rel(d), 0o755); err != nil {
			return fmt.Errorf("set the mode of %s: %w", d, err)
		}
	}
	return nil
}

// atomicWrite replaces p by a file holding data, with the given mode and,
// when uid is not -1 and differs from ours, the given owner: the new file
// takes the place of the old one, so it must look like it.
func atomicWrite(rt *os.Root, p string, data []byte, mode fs.FileMode, uid, gid int) error {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	dir, base := path.Split(p)
	// Hidden, so that no manager reading the directory loads it meanwhile.
	tmp := dir + "." + base + ".asym-tmp-" + hex.EncodeToString(rnd[:])
	f, err := rt.OpenFile(rel(tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		// OpenFile's mode is cut by the umask.
		werr = f.Chmod(mode)
	}
	if werr == nil && uid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		werr = f.Chown(uid, gid)
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = rt.Rename(rel(tmp), rel(p))
	}
	if werr != nil {
		rt.Remove(rel(tmp))
		return fmt.Errorf("write %s: %w", p, werr)
	}
	// The rename is durable once the directory is.
	if d, err := rt.Open(rel(path.Dir(p))); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

package apply

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Dir is where journals live: a tmpfs, so a reboot (which loses the runtime
// change too) also loses the journal. ASYM_STATE_DIR overrides it for tests.
func Dir() string {
	if d := os.Getenv("ASYM_STATE_DIR"); d != "" {
		return d
	}
	return "/run/asym"
}

// checkDir refuses a state directory that someone other than root (or the
// user asym runs as) could write: a journal planted there would be undone
// by asym, as root, as if it were its own. create makes it (0700) when it
// is missing.
func checkDir(dir string, create bool) error {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("create the state directory %s: %w", dir, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("the state directory %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("the state directory %s is not a directory (a symbolic link?): asym keeps its journals only in a directory of its own; remove it, or set ASYM_STATE_DIR to one", dir)
	case st.Uid != 0 && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("the state directory %s belongs to uid %d, not to root or to you: asym will not trust journals there; remove it, or set ASYM_STATE_DIR to a directory of your own", dir, st.Uid)
	case st.Mode&0o022 != 0:
		return fmt.Errorf("the state directory %s can be written by group or others (mode %04o): anyone could plant a journal there that asym would undo as root; chmod 700 %s", dir, st.Mode&0o7777, dir)
	}
	return nil
}

// maxJournal bounds what Load reads: a journal is a few KiB.
const maxJournal = 4 << 20

// Load reads a journal. It follows no symbolic link and reads only a
// regular file owned by root or by the user asym runs as.
func Load(path string) (*Journal, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("the journal %s is a symbolic link: asym reads only its own files; remove it", path)
		}
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) {
		return nil, fmt.Errorf("the journal %s is not a regular file of root's or yours: asym will not act on it; remove it", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxJournal))
	if err != nil {
		return nil, err
	}
	var v struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("the journal %s is damaged: %v", path, err)
	}
	if v.Version != JournalVersion {
		return nil, fmt.Errorf("the journal %s was written by another version of asym (journal format %d, this asym reads %d): keep or undo that fix with the asym that applied it", path, v.Version, JournalVersion)
	}
	var j Journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("the journal %s is damaged: %v", path, err)
	}
	j.path = path
	return &j, nil
}

// save writes the journal atomically and durably: the watchdog must never
// read half a journal, and must find it after a crash of the writer. The
// temporary file has a random name and is created new (O_EXCL), never
// through a symbolic link: nothing planted in the directory is written
// through.
func (j *Journal) save() error {
	b, err := json.MarshalIndent(j, "", " ")
	if err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := j.path + ".tmp-" + hex.EncodeToString(rnd[:])
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("write the journal %s: %w", j.path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err != nil {
		os.Remove(tmp) // a full disk leaves no half file behind
		return fmt.Errorf("write the journal %s: %w", j.path, err)
	}
	return nil
}

// lockWait bounds how long asym waits for another holder of a journal's
// lock: a watchdog reverting holds it for at most revertTimeout.
const lockWait = revertTimeout + 10*time.Second

// store is one target's journal and its lock file, which stays open: a
// lock taken on an open file works after the directory became read-only
// or full, when no file can be opened or written there any more.
type store struct {
	path string
	lk   *os.File
}

// openStore opens the lock of the journal at path. flock locks belong to
// the open file, so one process takes a journal's lock through one store
// only. The file is opened read-only (flock needs no more): a file held
// open for writing would make a remount of the directory read-only fail.
func openStore(path string) (*store, error) {
	s := &store{path: path}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *store) open() error {
	f, err := os.OpenFile(s.path+".lock", os.O_RDONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, unix.EROFS) {
		f, err = os.OpenFile(s.path+".lock", os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return fmt.Errorf("open the lock of %s: %w", s.path, err)
	}
	s.lk = f
	return nil
}

func (s *store) close() { s.lk.Close() }

// lock takes the lock, waiting at most lockWait. A lock file is removed
// only by its holder (removeLock), so one this store took after it was
// removed locks nothing anybody else sees: the next asym creates a new
// file under that name. After taking it, the lock is checked to still be
// the file the name gives, and otherwise taken again on that one.
func (s *store) lock(ctx context.Context) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := unix.Flock(int(s.lk.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil && s.named():
			return nil
		case err == nil:
			s.unlock()
			s.close()
			if err := s.open(); err != nil {
				return err
			}
			continue
		case !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR):
			return fmt.Errorf("lock %s: %w", s.path, err)
		case time.Now().After(deadline):
			return fmt.Errorf("another asym has held the lock of %s for %s: it is stuck; find it with `fuser %s.lock`", s.path, lockWait, s.path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// named says whether the lock file's name still gives the file this store
// holds open.
func (s *store) named() bool {
	var held, named unix.Stat_t
	if unix.Fstat(int(s.lk.Fd()), &held) != nil || unix.Lstat(s.path+".lock", &named) != nil {
		return false
	}
	return held.Dev == named.Dev && held.Ino == named.Ino
}

func (s *store) unlock() { unix.Flock(int(s.lk.Fd()), unix.LOCK_UN) }

// removeLock removes the lock file; the caller holds the lock. Whoever
// waited on it finds it gone once it has the lock, and starts again.
func (s *store) removeLock() { os.Remove(s.path + ".lock") }

// release removes the lock file and lets the lock go: a namespace's lock
// (ns-COOKIE) is needed only while a fix is begun, and a cookie is never
// reused, so a file kept would only pile up.
func (s *store) release() {
	s.removeLock()
	s.unlock()
	s.close()
}

// Forget removes the journal of id and its lock file, under the lock.
// asym lab calls it when it removes the namespace the journal is about,
// so that no file of a lab outlives it. A watchdog still waiting on that
// fix finds its journal gone and reverts at once.
func Forget(id string) error {
	path := PathFor(id)
	if err := checkDir(filepath.Dir(path), false); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	s, err := openStore(path)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.lock(context.Background()); err != nil {
		return err
	}
	defer s.unlock()
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the journal %s: %w", path, err)
	}
	s.removeLock()
	return nil
}

// update loads the journal under the lock, lets fn change it and saves it.
func (s *store) update(ctx context.Context, fn func(j *Journal) error) (*Journal, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.unlock()
	j, err := Load(s.path)
	if errors.Is(err, os.ErrNotExist) {
		s.removeLock() // opening it made it: a lock without a journal guards nothing
	}
	if err != nil {
		return nil, err
	}
	if err := fn(j); err != nil {
		return j, err
	}
	return j, j.save()
}

// update is store.update for a process that holds no store of the journal.
func update(ctx context.Context, path string, fn func(j *Journal) error) (*Journal, error) {
	if err := checkDir(filepath.Dir(path), false); err != nil {
		return nil, err
	}
	s, err := openStore(path)
	if err != nil {
		return nil, err
	}
	defer s.close()
	return s.update(ctx, fn)
}

package apply

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Outcome is what a revert did, written elsewhere when the journal could
// not be written (the state directory read-only or full): the kernel is
// put back first, the record comes second, and a record that cannot go in
// the journal must still reach a person.
type Outcome struct {
	ID        string    `json:"id"`
	Created   time.Time `json:"created"` // the journal's: which fix it is about
	State     string    `json:"state"`
	Time      time.Time `json:"time"`
	Why       string    `json:"why"` // why the journal could not be written
	LeftAlone []string  `json:"left_alone,omitempty"`
	Log       []string  `json:"log"`
}

// FallbackDir is where outcomes go when the journal cannot be written:
// $ASYM_FALLBACK_DIR, or the temporary directory ($TMPDIR, /tmp), which
// is rarely on the same file system as /run.
func FallbackDir() string {
	if d := os.Getenv("ASYM_FALLBACK_DIR"); d != "" {
		return d
	}
	return os.TempDir()
}

func outcomePrefix(j *Journal) string {
	return "asym-outcome-" + j.ID + "-" + strconv.FormatInt(j.Created.UnixNano(), 10) + "-"
}

// recordElsewhere writes what j's revert did, which its journal could not
// hold, to every place that may take it: standard error (the journal of
// the systemd unit, when the watchdog is one), a file in FallbackDir, and
// the kernel log (/dev/kmsg needs no disk). It returns a sentence saying
// where it went.
func recordElsewhere(j *Journal, cause error) string {
	o := Outcome{ID: j.ID, Created: j.Created, State: j.State, Time: time.Now().UTC(), Why: cause.Error(), LeftAlone: j.LeftAlone, Log: j.Log}
	line := fmt.Sprintf("asym: the fix on %s (%s) was %s at %s; its journal %s could not be written: %v",
		j.Target, j.Summary, j.State, o.Time.Format(time.RFC3339), j.path, cause)
	fmt.Fprintln(os.Stderr, line)
	var where []string
	if f, err := writeOutcome(o, outcomePrefix(j)); err == nil {
		where = append(where, f)
	} else {
		fmt.Fprintf(os.Stderr, "asym: nor could the outcome be written to %s: %v\n", FallbackDir(), err)
	}
	if k, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
		// <4>: a warning; the kernel log splits lines itself.
		if _, err := fmt.Fprintf(k, "<4>%s\n", oneLine(line)); err == nil {
			where = append(where, "the kernel log (dmesg)")
		}
		k.Close()
	}
	where = append(where, "standard error")
	return strings.Join(where, ", ")
}

// oneLine keeps a kernel log line to one printable line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func writeOutcome(o Outcome, prefix string) (string, error) {
	b, err := json.MarshalIndent(o, "", " ")
	if err != nil {
		return "", err
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	path := filepath.Join(FallbackDir(), prefix+hex.EncodeToString(rnd[:])+".json")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// findOutcome returns the newest outcome recorded elsewhere for j's fix,
// and its file: only regular files of root's (or the user's) that nobody
// else can write, since the fallback directory may be shared (/tmp).
func findOutcome(j *Journal) (*Outcome, string) {
	files, _ := filepath.Glob(filepath.Join(FallbackDir(), outcomePrefix(j)+"*.json"))
	var best *Outcome
	where := ""
	for _, p := range files {
		o, err := readOutcome(p)
		if err != nil || o.ID != j.ID || !o.Created.Equal(j.Created) {
			continue
		}
		if best == nil || o.Time.After(best.Time) {
			best, where = o, p
		}
	}
	return best, where
}

func readOutcome(path string) (*Outcome, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) || st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("%s is not asym's", path)
	}
	var o Outcome
	err = json.NewDecoder(io.LimitReader(f, maxJournal)).Decode(&o)
	return &o, err
}

// clearOutcomes removes the outcomes of j's fix once its journal holds
// the truth again.
func clearOutcomes(j *Journal) {
	files, _ := filepath.Glob(filepath.Join(FallbackDir(), outcomePrefix(j)+"*.json"))
	for _, p := range files {
		if _, err := readOutcome(p); err == nil {
			os.Remove(p)
		}
	}
}

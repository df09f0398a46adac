package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
)

// TestNotesRefusesWhatIsNotAFile (issue #16, case 11): --notes on a FIFO
// would block every export for ever; a directory, a device or a link is
// never what was meant. Each is refused at once with a sentence, before
// the view opens; a regular file and a new one pass (then the view wants
// a terminal, which a test has not).
func TestNotesRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "notes.md")
	os.WriteFile(file, []byte("# notes\n"), 0o600)
	link := filepath.Join(dir, "link.md")
	os.Symlink(file, link)
	for _, c := range []struct{ path, says string }{
		{fifo, "is a named pipe (FIFO), which would block every export, not a regular file"},
		{dir, "is a directory, not a regular file"},
		{"/dev/null", "is a device, not a regular file"},
		{link, "is a symbolic link"},
		{filepath.Join(dir, "no-such-dir", "n.md"), "does not exist"},
		{file, "needs a terminal"},
		{filepath.Join(dir, "new.md"), "needs a terminal"},
	} {
		var out, errb bytes.Buffer
		start := time.Now()
		code := run([]string{"--notes", c.path, "tcp", "203.0.113.10:40000", "198.51.100.11:8080"}, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), c.says) || time.Since(start) > 2*time.Second {
			t.Errorf("--notes %s: exit %d after %s, want 2 at once saying %q: %s", c.path, code, time.Since(start), c.says, errb.String())
		}
	}
	if b, _ := os.ReadFile(file); string(b) != "# notes\n" {
		t.Errorf("the notes file changed: %q", b)
	}
}

// TestNotesBeforeAnyStep (issue #16, case 11): notes exported before any
// step ran are the report the view builds then (ui's report: no probe ran,
// no finding). They must not claim the flow works.
func TestNotesBeforeAnyStep(t *testing.T) {
	f, err := flow.ParseString("tcp 203.0.113.10:40000 198.51.100.11:8080")
	if err != nil {
		t.Fatal(err)
	}
	ev := evidence.Evidence{Flow: f}
	rep := playbook.NewReport(time.Now(), &ev, nil, map[evidence.ProbeID]evidence.Reporter{}, nil)
	var b bytes.Buffer
	rep.WriteMarkdown(&b)
	md := b.String()
	if !strings.Contains(md, "does not prove the flow works") || strings.Contains(md, "nothing breaks") || strings.Contains(md, "works (proven") {
		t.Fatalf("notes before any step must say nothing is proven:\n%s", md)
	}
}

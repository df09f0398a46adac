package probetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"asym/probes/nsthread"
)

// skipped counts the tests RequireRoot skipped in this test binary.
var skipped struct {
	sync.Mutex
	n int
}

// noteSkip counts a skip. The first one also keeps go test from caching
// the package's result, so that a second run without root prints the skip
// line again instead of a silent "ok (cached)". go test caches a result
// under its inputs, among them the directories the tests changed to and
// their state; the temporary directory changes with every go command (it
// makes its work directory there), so a change into it makes every run's
// inputs new. The change is made on a thread of its own whose working
// directory is its own (CLONE_FS unshared): no other test sees it.
func noteSkip() {
	skipped.Lock()
	defer skipped.Unlock()
	if skipped.n == 0 {
		done := make(chan struct{})
		nsthread.Run(func() {
			defer close(done)
			if unix.Unshare(unix.CLONE_FS) == nil {
				os.Chdir(os.TempDir())
			}
		})
		<-done
	}
	skipped.n++
}

// Main is the TestMain of a package with tests that need root: it runs
// them and exits with their status, after one line that says how many
// were skipped for want of root, so that "ok" is never taken for "all
// tested".
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that does more: it runs the tests and
// reports the skipped ones, and returns the exit status.
func Run(m *testing.M) int {
	code := m.Run()
	skipped.Lock()
	n := skipped.n
	skipped.Unlock()
	if n > 0 {
		reportSkips(n)
	}
	return code
}

// reportSkips writes the line. go test ./... shows a package whose tests
// pass as "ok" and nothing else, whatever they printed (only -v shows it),
// so without -v the line goes to the terminal itself, /dev/tty.
func reportSkips(n int) {
	line := fmt.Sprintf("%s: %d test(s) skipped: they need root (sudo \"$(command -v go)\" test ./..., or go test ./... as root)\n", packagePath(), n)
	if !testing.Verbose() {
		if tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0); err == nil {
			defer tty.Close()
			fmt.Fprint(tty, line)
			return
		}
	}
	fmt.Print(line)
}

// packagePath names the package under test: go test runs its binary in
// the package's directory, below the module's go.mod.
func packagePath() string {
	cwd, err := os.Getwd()
	if err != nil {
		return "this package"
	}
	for root := cwd; root != filepath.Dir(root); root = filepath.Dir(root) {
		b, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if mod, ok := strings.CutPrefix(line, "module "); ok {
				rel, _ := filepath.Rel(root, cwd)
				return filepath.ToSlash(filepath.Join(strings.TrimSpace(mod), rel))
			}
		}
	}
	return "this package"
}

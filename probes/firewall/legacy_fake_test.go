package firewall

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// When the test binary is started through a symlink named
// iptables-legacy-save, it plays that tool: the machine has no iptables,
// and this is how the test checks that Probe runs it with -c inside
// the target namespace (not asym's own) and parses what it prints.
func init() {
	if filepath.Base(os.Args[0]) == "iptables-legacy-save" {
		os.Exit(fakeLegacySave(os.Args[1:]))
	}
}

// fakeSaveNetnsEnv names the variable that tells the fake the inode of the
// namespace it must run in.
const fakeSaveNetnsEnv = "ASYM_TEST_FAKE_SAVE_NETNS"

func fakeLegacySave(args []string) int {
	if !slices.Equal(args, []string{"-c"}) {
		fmt.Fprintf(os.Stderr, "fake iptables-legacy-save: want the single argument -c, got %q\n", args)
		return 2
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		fmt.Fprintln(os.Stderr, "fake iptables-legacy-save:", err)
		return 1
	}
	if got, want := strconv.FormatUint(st.Ino, 10), os.Getenv(fakeSaveNetnsEnv); got != want {
		fmt.Fprintf(os.Stderr, "fake iptables-legacy-save: running in network namespace %s, not the target %s\n", got, want)
		return 3
	}
	fmt.Print(recordedLegacySave)
	return 0
}

package drops

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// TestUnavailableWords: each way the witness cannot run reads as what to
// do, and keeps the kernel's error underneath.
func TestUnavailableWords(t *testing.T) {
	dir := t.TempDir()
	none, locked := filepath.Join(dir, "none"), filepath.Join(dir, "locked")
	os.WriteFile(none, []byte("[none] integrity confidentiality\n"), 0o644)
	os.WriteFile(locked, []byte("none integrity [confidentiality]\n"), 0o644)
	defer func(old string) { lockdownFile = old }(lockdownFile)
	cases := []struct {
		file string
		err  error
		want string
	}{
		{none, fmt.Errorf("create the ring buffer: %w", unix.EPERM), "kernel drop witness is unavailable: needs root (CAP_BPF and CAP_PERFMON"},
		{filepath.Join(dir, "absent"), fmt.Errorf("load: %w", unix.EACCES), "unavailable: needs root"},
		{locked, fmt.Errorf("load: %w", unix.EINVAL), "unavailable: the kernel is locked down (confidentiality)"},
		{locked, fmt.Errorf("load: %w", unix.EPERM), "unavailable: the kernel is locked down (confidentiality)"},
		{none, fmt.Errorf("create the ring buffer: %w", ebpf.ErrNotSupported), "unavailable: this kernel lacks what the witness needs"},
		{none, errNoReasons, "unavailable: this kernel's kfree_skb tracepoint carries no drop reason (Linux 5.17 and later have one)"},
	}
	for _, c := range cases {
		lockdownFile = c.file
		got := unavailable(c.err)
		if !strings.HasPrefix(got.Error(), "kernel drop witness is unavailable: ") || !strings.Contains(got.Error(), strings.TrimPrefix(c.want, "kernel drop witness is ")) || !errors.Is(got, c.err) {
			t.Errorf("%v (lockdown %s): %q, want %q", c.err, filepath.Base(c.file), got, c.want)
		}
	}
}

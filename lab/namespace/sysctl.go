package namespace

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netns"
)

// Sysctl is one sysctl: its path below /proc/sys
// ("net/ipv4/conf/all/rp_filter") and its value.
type Sysctl struct {
	Path, Value string
	// Optional: a kernel without this sysctl (its file is missing) is no
	// error, e.g. the IPv6 tree of a kernel booted with ipv6.disable=1.
	Optional bool
}

// Write writes s on the calling thread, which must be inside the namespace
// (Do): /proc/sys follows the thread's namespace. The path is written as a
// file, never put through a shell, so an interface name with $ ; ( ) or
// backquotes in it stays literal.
func (s Sysctl) Write() error {
	err := os.WriteFile("/proc/sys/"+s.Path, []byte(s.Value), 0)
	if err == nil || s.Optional && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("set %s=%s: %w", strings.ReplaceAll(s.Path, "/", "."), s.Value, err)
}

// WriteSysctls writes sysctls in order inside the namespace h, and stops
// at the first that fails.
func WriteSysctls(h netns.NsHandle, sysctls ...Sysctl) error {
	return Do(h, func() error { return writeSysctls(sysctls) })
}

func writeSysctls(sysctls []Sysctl) error {
	for _, s := range sysctls {
		if err := s.Write(); err != nil {
			return err
		}
	}
	return nil
}

// Package probetest gives kernel tests a throwaway network namespace and
// what they build in it: veth links, nftables rules, TCP connections, raw
// segments, and recorders for the streams probes deliver. Tests that need
// root skip when not root, and that skip is a failure when CI=true: CI runs
// as root, so a skip there means a test silently did not run.
//
// Every helper that takes an NS needs root; NewNS, the only way to get an
// NS, calls RequireRoot. The namespace plumbing itself is asym/lab/namespace,
// shared with the lab and the benchmark; the helpers here turn its errors
// into test failures. The package must import no package whose internal
// tests import it, asym/probes first among them: that is an import cycle.
package probetest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"asym/lab/namespace"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// RequireRoot skips the test when not root, or fails it under CI=true.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("this test needs root and CI=true: CI must run it as root, not skip it")
	}
	noteSkip()
	t.Skip("needs root: it builds real network namespaces (run as root: go test ./...)")
}

// NS is a named throwaway namespace.
type NS = namespace.NS

// NewNS creates a namespace named asym-t-<random> and removes it when the
// test ends, also on failure. The calling thread's namespace is untouched.
// Loopback is brought up.
func NewNS(t testing.TB) NS {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	ns, err := namespace.Create("asym-t-" + hex.EncodeToString(b))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ns.Remove(); err != nil {
			t.Error(err)
		}
	})
	return ns
}

// Netlink opens a netlink handle inside ns, closed at the end of the test.
func Netlink(t testing.TB, ns netns.NsHandle) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatalf("netlink handle: %v", err)
	}
	t.Cleanup(h.Close)
	return h
}

// Do runs fn on a thread inside ns (for sysctls, sockets and /proc/thread-self).
func Do(t testing.TB, ns netns.NsHandle, fn func() error) {
	t.Helper()
	if err := namespace.Do(ns, fn); err != nil {
		t.Fatal(err)
	}
}

// Sysctl writes /proc/sys/<path> inside ns, e.g. "net/ipv4/conf/all/rp_filter".
func Sysctl(t testing.TB, ns netns.NsHandle, path, value string) {
	t.Helper()
	if err := namespace.WriteSysctls(ns, namespace.Sysctl{Path: path, Value: value}); err != nil {
		t.Fatal(err)
	}
}

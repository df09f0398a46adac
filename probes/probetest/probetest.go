// Package probetest gives kernel tests a throwaway network namespace and
// what they build in it: veth links, nftables rules, TCP connections, raw
// segments, and recorders for the streams probes deliver. Tests that need
// root skip when not root, and that skip is a failure when CI=true: CI runs
// as root, so a skip there means a test silently did not run.
//
// Every helper that takes an NS needs root; NewNS, the only way to get an
// NS, calls RequireRoot. The package must import no package whose internal
// tests import it, asym/probes first among them: that is an import cycle.
package probetest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"runtime"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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
	t.Skip("needs root: it builds real network namespaces (run: sudo go test ./...)")
}

// NS is a named throwaway namespace.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// NewNS creates a namespace named asym-t-<random> and removes it when the
// test ends, also on failure. The calling thread's namespace is untouched.
// Loopback is brought up.
func NewNS(t testing.TB) NS {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := "asym-t-" + hex.EncodeToString(b)
	h, err := newNamed(name)
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		h.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("remove namespace %s: %v", name, err)
		}
	})
	nl := Netlink(t, h)
	lo, err := nl.LinkByName("lo")
	if err == nil {
		err = nl.LinkSetUp(lo)
	}
	if err != nil {
		t.Fatalf("bring up lo in %s: %v", name, err)
	}
	return NS{Name: name, Handle: h}
}

// newNamed creates the namespace on a locked thread that is then discarded,
// because netns.NewNamed also moves the calling thread into the new namespace.
func newNamed(name string) (netns.NsHandle, error) {
	type res struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.NewNamed(name)
		c <- res{h, err}
	}()
	r := <-c
	return r.h, r.err
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
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see newNamed
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			c <- err
			return
		}
		c <- fn()
	}()
	if err := <-c; err != nil {
		t.Fatal(err)
	}
}

// Sysctl writes /proc/sys/<path> inside ns, e.g. "net/ipv4/conf/all/rp_filter".
func Sysctl(t testing.TB, ns netns.NsHandle, path, value string) {
	t.Helper()
	Do(t, ns, func() error { return os.WriteFile("/proc/sys/"+path, []byte(value), 0) })
}

// Package namespace is the network namespace plumbing that the kernel tests
// (probes/probetest), the lab and the scale benchmark share: named
// namespaces under /run/netns, where ip netns and asym --netns find them;
// work on a thread inside one; sysctls; veth pairs across two; and the
// nftables rules all three install.
//
// It is named for what it handles, not after vishvananda/netns, which its
// callers import beside it for netns.NsHandle. It imports no asym package:
// probetest uses it, and the probes' internal tests use probetest, so
// anything of asym here would be an import cycle.
package namespace

import (
	"asym/probes/nsthread"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Dir is where named namespaces live: iproute2 and vishvananda/netns agree.
const Dir = "/run/netns"

// NS is a named namespace this process created, with a handle open on it.
// The zero NS is no namespace.
type NS struct {
	Name   string
	Handle netns.NsHandle
}

// Create makes the namespace Dir/name, writes sysctls in it in order and
// brings up its loopback. On any error it removes what it made; when the
// name is taken, the error wraps os.ErrExist and the namespace that holds
// the name is left alone. The calling thread's namespace is untouched.
//
// Write sysctls on "default" here, before any link exists: a link takes
// its per-interface values from "default" when it is created.
func Create(name string, sysctls ...Sysctl) (NS, error) {
	if err := checkName(name); err != nil {
		return NS{}, err
	}
	type created struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan created, 1)
	// netns.NewNamed moves the thread it runs on into the new namespace,
	// where the sysctls are then written: /proc/sys follows the thread.
	onThrowawayThread(func() {
		h, err := newNamed(name)
		if err == nil {
			err = writeSysctls(sysctls)
		}
		c <- created{h, err}
	})
	r := <-c
	if !r.h.IsOpen() {
		return NS{}, fmt.Errorf("create namespace %s: %w", name, r.err)
	}
	ns := NS{Name: name, Handle: r.h}
	if r.err == nil {
		r.err = ns.loopbackUp()
	}
	if r.err != nil {
		if rerr := ns.Remove(); rerr != nil {
			return NS{}, fmt.Errorf("create namespace %s: %w (and removing it failed too: %v)", name, r.err, rerr)
		}
		return NS{}, fmt.Errorf("create namespace %s: %w", name, r.err)
	}
	return ns, nil
}

// newNamed is netns.NewNamed, which leaves the empty file behind when the
// bind mount fails: it is removed here, but only when it was not there
// before (then the name was someone else's and NewNamed refused it).
func newNamed(name string) (netns.NsHandle, error) {
	p := filepath.Join(Dir, name)
	_, statErr := os.Lstat(p)
	h, err := netns.NewNamed(name)
	if err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.Remove(p)
		}
		return netns.None(), err
	}
	return h, nil
}

// loopbackUp brings up lo: a new namespace has one, and it starts down.
func (ns NS) loopbackUp() error {
	h, err := netlink.NewHandleAt(ns.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// Remove closes ns's handle and removes its name; the kernel frees the
// namespace, its links, routes and rulesets once nothing else holds it.
// Removing the zero NS does nothing.
func (ns NS) Remove() error {
	if ns.Name == "" {
		return nil
	}
	ns.Handle.Close()
	return Remove(ns.Name)
}

// Remove unmounts and removes Dir/name, as ip netns delete does. Unlike
// netns.DeleteNamed it also removes a file that is no longer a mount point
// (left by a crash between create and mount), and a name that is not
// there is no error.
func Remove(name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	p := filepath.Join(Dir, name)
	if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove namespace %s: unmount %s: %w", name, p, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// checkName refuses a name that is not a plain file name in Dir, so that
// nothing outside Dir is ever created or removed.
func checkName(name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("%q cannot name a namespace: it must be a file name in %s", name, Dir)
	}
	return nil
}

// List returns the names in Dir that start with prefix, sorted.
func List(prefix string) ([]string, error) {
	entries, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list named namespaces in %s: %w", Dir, err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// Do runs fn on a thread inside the namespace h and returns its error: for
// sysctls, sockets that must live in the namespace, and
// /proc/thread-self/net, which follow the thread's namespace where
// /proc/net follows the thread-group leader's. The thread is thrown away
// afterwards (onThrowawayThread), so nothing else ever runs in the
// namespace by accident.
func Do(h netns.NsHandle, fn func() error) error {
	c := make(chan error, 1)
	onThrowawayThread(func() {
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			c <- fmt.Errorf("enter the network namespace: %w", err)
			return
		}
		c <- fn()
	})
	return <-c
}

// onThrowawayThread runs fn on a thread of its own that is thrown away
// afterwards, never the main thread: see nsthread.Run.
func onThrowawayThread(fn func()) { nsthread.Run(fn) }

package namespace_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"asym/lab/namespace"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testName returns a fresh asym-t-* name that is removed when the test
// ends, whatever the test did with it.
func testName(t *testing.T) string {
	t.Helper()
	probetest.RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := "asym-t-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		if err := namespace.Remove(name); err != nil {
			t.Error(err)
		}
	})
	return name
}

// create is Create that fails the test on error and removes the namespace
// when the test ends.
func create(t *testing.T, sysctls ...namespace.Sysctl) namespace.NS {
	t.Helper()
	ns, err := namespace.Create(testName(t), sysctls...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Handle.Close() })
	return ns
}

func readIn(t *testing.T, h netns.NsHandle, path string) string {
	t.Helper()
	var b []byte
	if err := namespace.Do(h, func() (err error) {
		b, err = os.ReadFile(path)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func listed(t *testing.T, name string) bool {
	t.Helper()
	names, err := namespace.List("asym-t-")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

// TestCreate checks that a created namespace is a new one bound at
// /run/netns/NAME, with its sysctls written in it and lo up, that Do runs
// in it, and that Remove takes it away, twice without error.
func TestCreate(t *testing.T) {
	ns := create(t,
		namespace.Sysctl{Path: "net/ipv4/conf/all/rp_filter", Value: "2"},
		namespace.Sysctl{Path: "net/ipv4/no_such_sysctl", Value: "1", Optional: true},
		namespace.Sysctl{Path: "net/ipv4/conf/default/rp_filter", Value: "1"},
	)
	path := filepath.Join(namespace.Dir, ns.Name)
	if inode(t, path) == inode(t, "/proc/thread-self/ns/net") {
		t.Fatalf("%s is this process's own namespace", path)
	}
	var inside uint64
	if err := namespace.Do(ns.Handle, func() error {
		var st syscall.Stat_t
		err := syscall.Stat("/proc/thread-self/ns/net", &st)
		inside = st.Ino
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != inode(t, path) {
		t.Errorf("Do ran in namespace inode %d, not in %s (inode %d)", inside, path, inode(t, path))
	}
	for p, want := range map[string]string{
		"/proc/sys/net/ipv4/conf/all/rp_filter":     "2",
		"/proc/sys/net/ipv4/conf/default/rp_filter": "1",
	} {
		if got := readIn(t, ns.Handle, p); got != want {
			t.Errorf("%s in the namespace = %s, want %s", p, got, want)
		}
	}
	h, err := netlink.NewHandleAt(ns.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Error("lo is down in the new namespace")
	}
	if !listed(t, ns.Name) {
		t.Errorf("List does not name %s", ns.Name)
	}
	if err := ns.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Remove: %v", path, err)
	}
	if listed(t, ns.Name) {
		t.Errorf("List still names %s after Remove", ns.Name)
	}
	if err := namespace.Remove(ns.Name); err != nil {
		t.Errorf("removing a name that is gone: %v", err)
	}
	if err := (namespace.NS{}).Remove(); err != nil {
		t.Errorf("removing the zero NS: %v", err)
	}
}

// TestMainThreadStays checks that the process's main thread never ends up
// in a namespace Create or Do entered (the runtime cannot end it as it ends
// other locked threads): /proc/self/ns/net, which probes.OpenTarget opens as
// the host's namespace, follows the main thread, and must stay the
// namespace every other thread is in. Before onThrowawayThread, the first
// Create in a test binary often landed on the main thread, so this also
// catches what the tests before it did.
func TestMainThreadStays(t *testing.T) {
	probetest.RequireRoot(t)
	check := func(after string) {
		t.Helper()
		if main, own := inode(t, "/proc/self/ns/net"), inode(t, "/proc/thread-self/ns/net"); main != own {
			t.Fatalf("after %s the main thread is in namespace inode %d, the others in %d", after, main, own)
		}
	}
	check("the tests before this one")
	for range 50 {
		ns := create(t, namespace.Sysctl{Path: "net/ipv4/conf/all/rp_filter", Value: "1"})
		check("Create")
		if err := namespace.Do(ns.Handle, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := namespace.WriteSysctls(ns.Handle, namespace.Sysctl{Path: "net/ipv4/ip_forward", Value: "1"}); err != nil {
			t.Fatal(err)
		}
		check("Do")
	}
}

// TestCreateTaken checks that a taken name is refused with os.ErrExist and
// that the namespace holding it is left as it was.
func TestCreateTaken(t *testing.T) {
	first := create(t, namespace.Sysctl{Path: "net/ipv4/conf/all/rp_filter", Value: "2"})
	before := inode(t, filepath.Join(namespace.Dir, first.Name))
	_, err := namespace.Create(first.Name)
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create of a taken name: %v, want an error wrapping os.ErrExist", err)
	}
	if after := inode(t, filepath.Join(namespace.Dir, first.Name)); after != before {
		t.Errorf("the namespace that held the name changed (inode %d, was %d)", after, before)
	}
	if got := readIn(t, first.Handle, "/proc/sys/net/ipv4/conf/all/rp_filter"); got != "2" {
		t.Errorf("rp_filter in the first namespace = %s, want 2", got)
	}
}

// TestCreateFailsClean checks that a sysctl that cannot be written fails
// Create with a sentence naming it, and leaves no namespace behind.
func TestCreateFailsClean(t *testing.T) {
	for _, tc := range []struct {
		sysctl namespace.Sysctl
		want   string
	}{
		{namespace.Sysctl{Path: "net/ipv4/no_such_sysctl", Value: "1"}, "set net.ipv4.no_such_sysctl=1"},
		{namespace.Sysctl{Path: "net/ipv4/conf/all/rp_filter", Value: "strict"}, "set net.ipv4.conf.all.rp_filter=strict"},
	} {
		name := testName(t)
		_, err := namespace.Create(name, tc.sysctl)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name) {
			t.Errorf("Create with %v: %v, want an error naming %s and %q", tc.sysctl, err, name, tc.want)
		}
		if _, err := os.Lstat(filepath.Join(namespace.Dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed Create left %s behind (%v)", name, err)
		}
	}
}

// TestRemoveStale checks that Remove also takes away a name that is no
// longer a mount point, as a crash between create and mount leaves it.
func TestRemoveStale(t *testing.T) {
	name := testName(t)
	path := filepath.Join(namespace.Dir, name)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if !listed(t, name) {
		t.Errorf("List does not name the stale %s", name)
	}
	if err := namespace.Remove(name); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there after Remove: %v", path, err)
	}
}

// TestRefusesPaths checks that a name that is not a plain file name in
// /run/netns is refused before anything is touched.
func TestRefusesPaths(t *testing.T) {
	probetest.RequireRoot(t)
	for _, name := range []string{"", ".", "..", "../asym-t-x", "asym-t-a/b", "asym-t-\x00"} {
		if _, err := namespace.Create(name); err == nil {
			t.Errorf("Create(%q) worked", name)
		}
		if err := namespace.Remove(name); err == nil {
			t.Errorf("Remove(%q) worked", name)
		}
	}
}

// TestDoFails checks that a handle Do cannot enter is an error, and that
// fn does not run then (it would run in the caller's namespace).
func TestDoFails(t *testing.T) {
	ran := false
	err := namespace.Do(netns.None(), func() error { ran = true; return nil })
	if err == nil || !strings.Contains(err.Error(), "enter the network namespace") {
		t.Errorf("Do with no namespace: %v", err)
	}
	if ran {
		t.Error("fn ran although Do could not enter the namespace")
	}
}

// TestVeth checks that a veth pair joins two namespaces and that no end is
// ever in this process's namespace.
func TestVeth(t *testing.T) {
	a, b := create(t), create(t)
	if err := namespace.Veth(a, "va", b, "vb"); err != nil {
		t.Fatal(err)
	}
	for _, end := range []struct {
		ns   namespace.NS
		name string
	}{{a, "va"}, {b, "vb"}} {
		h, err := netlink.NewHandleAt(end.ns.Handle)
		if err != nil {
			t.Fatal(err)
		}
		l, err := h.LinkByName(end.name)
		h.Close()
		if err != nil {
			t.Errorf("%s in %s: %v", end.name, end.ns.Name, err)
			continue
		}
		if l.Type() != "veth" {
			t.Errorf("%s in %s is a %s, want a veth", end.name, end.ns.Name, l.Type())
		}
	}
	for _, n := range []string{"va", "vb"} {
		if _, err := net.InterfaceByName(n); err == nil {
			t.Errorf("%s exists in this process's namespace", n)
		}
	}
	if err := namespace.Veth(a, "va", b, "vb2"); err == nil {
		t.Error("a second veth named va in the same namespace was created")
	}
}

// TestTrackConntrack checks the rule as the kernel holds it: `ct state
// invalid counter drop` in chain input of table inet filter, a base chain
// on the input hook with policy accept.
func TestTrackConntrack(t *testing.T) {
	ns := create(t)
	if err := namespace.TrackConntrack(ns); err != nil {
		t.Fatal(err)
	}
	c, err := namespace.Nft(ns)
	if err != nil {
		t.Fatal(err)
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 1 || chains[0].Name != "input" || chains[0].Table.Name != "filter" ||
		chains[0].Hooknum == nil || *chains[0].Hooknum != *nftables.ChainHookInput ||
		chains[0].Policy == nil || *chains[0].Policy != nftables.ChainPolicyAccept {
		t.Fatalf("chains of family inet: %+v, want only filter/input on the input hook with policy accept", chains)
	}
	rules, err := c.GetRules(&nftables.Table{Name: "filter", Family: nftables.TableFamilyINet}, &nftables.Chain{Name: "input"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 1 {
		t.Fatalf("%d rules in chain input, want 1", len(rules))
	}
	if want := namespace.CtInvalidDrop(); !reflect.DeepEqual(rules[0].Exprs, want) {
		t.Errorf("the rule reads back as %#v, want %#v", rules[0].Exprs, want)
	}
}

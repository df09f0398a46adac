package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vishvananda/netlink"

	"asym/probes/probetest"
)

// TestWithoutRoot runs the built asym as nobody inside a throwaway
// namespace (forked from a thread in it, so the process starts there
// without entering it): what cannot be read says why, nothing unread
// passes for a result, and this host's part in the flow is told right.
// The namespace has eth0 192.0.2.2/24 (default via 192.0.2.1) and eth1
// 198.51.100.2/24 with a second default via 198.51.100.1, and does not
// forward.
func TestWithoutRoot(t *testing.T) {
	host, router := probetest.NewNS(t), probetest.NewNS(t)
	probetest.Quiet(t, host)
	probetest.Veth(t, host, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.2/24"}}, router, probetest.Link{Name: "r0", Addrs: []string{"192.0.2.1/24"}})
	probetest.Veth(t, host, probetest.Link{Name: "eth1", Addrs: []string{"198.51.100.2/24"}}, router, probetest.Link{Name: "r1", Addrs: []string{"198.51.100.1/24"}})
	h := probetest.Netlink(t, host.Handle)
	for _, r := range []struct {
		gw, dev string
		metric  int
	}{{"192.0.2.1", "eth0", 0}, {"198.51.100.1", "eth1", 200}} {
		l, _ := h.LinkByName(r.dev)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP(r.gw), Priority: r.metric}); err != nil {
			t.Fatalf("default via %s: %v", r.gw, err)
		}
	}
	bin := nobodyBinary(t)
	journals := t.TempDir() // root's alone (0700), as /run/asym is
	asNobody := func(args ...string) (string, int) {
		t.Helper()
		out, code := runAsNobody(t, host, bin, journals, args...)
		if !strings.Contains(out, "running without CAP_NET_ADMIN") && !strings.HasPrefix(out, "asym: ") {
			t.Fatalf("%q did not run without privileges:\n%s", args, out)
		}
		if strings.Contains(out, `\x`) {
			t.Errorf("%q: a literal escape in the text:\n%s", args, out)
		}
		return out, code
	}
	expect := func(what, out string, says, never []string) {
		t.Helper()
		for _, s := range says {
			if !strings.Contains(out, s) {
				t.Errorf("%s: the output does not say %q:\n%s", what, s, out)
			}
		}
		for _, s := range never {
			if strings.Contains(out, s) {
				t.Errorf("%s: the output says %q:\n%s", what, s, out)
			}
		}
	}

	// The README's own example flow, on a host that holds neither address
	// and does not forward.
	out, code := asNobody("check", "tcp", "203.0.113.10:40000", "198.51.100.11:8080")
	expect("off the path", out, []string{
		"not on the flow's path (this host holds neither address and does not forward)",
		"this host is not on the flow's path: it holds neither address and does not forward (net.ipv4.ip_forward = 0)",
		"== Findings\n   this host is not on the flow's path",
		"unavailable: needs root (CAP_NET_ADMIN)",
		"note: whether a fix asym applied here is pending is unknown",
	}, []string{"in the middle", "   none:", "!! "})
	if code != exitNotProven {
		t.Errorf("off the path: exit status %d, want %d (not proven)", code, exitNotProven)
	}

	// A loopback flow, watched: nothing can be captured, and no gateway
	// stands between two addresses of this host.
	out, _ = asNobody("check", "--watch", "1s", "tcp", "127.0.0.1:40000", "127.0.0.2:8080")
	expect("loopback, watched", out, []string{
		"client side",
		"-- Live evidence over 1s [unavailable: packet capture is unavailable: needs root (CAP_NET_RAW)",
		"the flow's packets could not be captured: packet capture is unavailable: needs root (CAP_NET_RAW)",
	}, []string{"gateway of", "Live evidence over 1s [ok"})

	// An on-link flow: its way has no gateway, whatever eth1's is.
	out, _ = asNobody("check", "tcp", "192.0.2.2:40000", "192.0.2.9:8080")
	expect("on-link", out, []string{"client side"}, []string{"gateway of"})

	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"check", "--netns", host.Name, "tcp", "192.0.2.2:40000", "192.0.2.9:8080"}, "asym: asym enters netns " + host.Name + " to read it, which needs root (CAP_SYS_ADMIN): run asym with sudo"},
		{[]string{"check", "--pid", "1", "tcp", "192.0.2.2:40000", "192.0.2.9:8080"}, "asym: reading the network namespace of process 1 needs root: run asym with sudo"},
		{[]string{"lab", "run"}, "asym: the lab builds network namespaces, veths and firewall rules, which needs root: run it with sudo"},
	} {
		out, code := asNobody(c.args...)
		if code != exitError || !strings.HasPrefix(out, c.says) || strings.Count(out, "\n") != 1 {
			t.Errorf("%q: exit status %d, want %d and the one line %q:\n%s", c.args, code, exitError, c.says, out)
		}
	}
}

// runAsNobody runs bin as nobody inside ns, forked from a thread in it so
// that the process starts there without entering it, with journals as its
// state directory; it returns the output and the exit status.
func runAsNobody(t *testing.T, ns probetest.NS, bin, journals string, args ...string) (string, int) {
	t.Helper()
	var out []byte
	var err error
	probetest.Do(t, ns.Handle, func() error {
		cmd := exec.Command(bin, args...)
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "ASYM_STATE_DIR=" + journals}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err = cmd.CombinedOutput()
		return nil
	})
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("run %q as nobody: %v", args, err)
	}
	return string(out), 0
}

// nobodyBinary is the built asym in a directory nobody may enter (the
// build's own is root's alone).
func nobodyBinary(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(asymBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "asym-nobody-") // t.TempDir's parent is root's alone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "asym")
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

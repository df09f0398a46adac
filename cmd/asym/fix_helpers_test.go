package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"asym/evidence"
	"asym/fix"
	"asym/fix/apply"
	"asym/lab/namespace"
	"asym/probes/nsthread"
	"asym/probes/probetest"
)

// proc is the built asym run as a process of its own: concurrency and
// signals need real processes. It inherits the test's environment
// (ASYM_STATE_DIR, ASYM_EXE, ASYM_WATCHDOG).
type proc struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

func startAsym(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(asymBinary(t), args...)}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// wait returns the exit status (-1 when killed by a signal) and output.
func (p *proc) wait() (int, string) {
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode(), p.out.String()
}

// asymExec runs the built asym to its end.
func asymExec(t *testing.T, args ...string) (int, string) {
	t.Helper()
	return startAsym(t, args...).wait()
}

// journalOf reads the journal of a named namespace's fix.
func journalOf(t *testing.T, kind, value string) *apply.Journal {
	t.Helper()
	j, err := apply.Load(apply.PathFor(apply.IDFor(kind, value)))
	if err != nil {
		t.Fatalf("read the journal of %s %s: %v", kind, value, err)
	}
	return j
}

// waitJournal waits until the journal of kind/value satisfies ok.
func waitJournal(t *testing.T, kind, value string, limit time.Duration, ok func(j *apply.Journal) bool) *apply.Journal {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		j, err := apply.Load(apply.PathFor(apply.IDFor(kind, value)))
		if err == nil && ok(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journal of %s %s did not get there within %s: %+v %v", kind, value, limit, j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// noWatchdogLeft waits for every watchdog of this test's state directory
// to end: other tests (and other people's runs on the machine) may have
// watchdogs of their own.
func noWatchdogLeft(t *testing.T) {
	t.Helper()
	dir := os.Getenv("ASYM_STATE_DIR")
	deadline := time.Now().Add(5 * time.Second)
	for {
		var left []string
		for _, p := range ourProcesses() {
			if strings.Contains(p, "fix --watchdog "+dir+"/") {
				left = append(left, p)
			}
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watchdogs left behind: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// rollbackOnFailure undoes a fix a failing test left pending, so that no
// watchdog outlives the test.
func rollbackOnFailure(t *testing.T, flags ...string) {
	dir := os.Getenv("ASYM_STATE_DIR")
	t.Cleanup(func() {
		if t.Failed() {
			cmd := exec.Command(asymBinary(t), append([]string{"fix", "--rollback"}, flags...)...)
			cmd.Env = append(os.Environ(), "ASYM_STATE_DIR="+dir)
			cmd.Run()
		}
	})
}

// dumpHandle is dump for a namespace held by a handle (one that may no
// longer have a name).
func dumpHandle(t *testing.T, h netns.NsHandle) string {
	t.Helper()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	var lines []string
	rules, err := nl.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		lines = append(lines, "rule "+ruleLine(r))
	}
	routes, err := nl.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		lines = append(lines, "route "+routeLine(r))
	}
	probetest.Do(t, h, func() error {
		paths, _ := filepath.Glob("/proc/sys/net/ipv4/conf/*/*")
		for _, p := range paths {
			switch filepath.Base(p) {
			case "rp_filter", "arp_ignore", "arp_announce", "arp_filter":
				b, _ := os.ReadFile(p)
				lines = append(lines, p+" = "+strings.TrimSpace(string(b)))
			}
		}
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// ruleLine renders every field of a rule the kernel reads back, so that a
// look-alike (another iif, another protocol) differs.
func ruleLine(r netlink.Rule) string {
	port := func(p *netlink.RulePortRange) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%d-%d", p.Start, p.End)
	}
	mask, uid := "-", "-"
	if r.Mask != nil {
		mask = fmt.Sprintf("%#x", *r.Mask)
	}
	if r.UIDRange != nil {
		uid = fmt.Sprintf("%d-%d", r.UIDRange.Start, r.UIDRange.End)
	}
	return fmt.Sprintf("%s iif %q oif %q mark %#x/%s tos %d tun %d goto %d flow %d supp %d/%d not %v sport %s dport %s ipproto %d uid %s proto %d type %d",
		r.String(), r.IifName, r.OifName, r.Mark, mask, r.Tos, r.TunID, r.Goto, r.Flow, r.SuppressIfgroup, r.SuppressPrefixlen, r.Invert,
		port(r.Sport), port(r.Dport), r.IPProto, uid, r.Protocol, r.Type)
}

// routeLine renders every field of a route a fix may set.
func routeLine(r netlink.Route) string {
	return fmt.Sprintf("table %d %s metric %d proto %d scope %d type %d", r.Table, r.String(), r.Priority, r.Protocol, r.Scope, r.Type)
}

// makeLookAlike makes in the namespace h exactly what the journal's fix
// added: its rules and routes with asym's own protocol, its sysctls. A
// revert that trusted a name would undo them there.
func makeLookAlike(t *testing.T, h netns.NsHandle, j *apply.Journal) {
	t.Helper()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	for _, s := range j.Steps {
		switch st := s.Do.Step.(type) {
		case *fix.RuleAdd:
			r := netlink.NewRule()
			r.Family, r.Priority, r.Table, r.Protocol = netlink.FAMILY_V4, st.Priority, st.Table, st.Protocol
			r.Src = &net.IPNet{IP: st.Src.Addr().AsSlice(), Mask: net.CIDRMask(st.Src.Bits(), 32)}
			if err := nl.RuleAdd(r); err != nil {
				t.Fatalf("look-alike rule: %v", err)
			}
		case *fix.RouteAdd:
			l, err := nl.LinkByName(st.Dev)
			if err != nil {
				t.Fatal(err)
			}
			r := &netlink.Route{LinkIndex: l.Attrs().Index, Table: st.Table, Protocol: netlink.RouteProtocol(st.Protocol), Priority: st.Metric,
				Dst: &net.IPNet{IP: st.Dst.Addr().AsSlice(), Mask: net.CIDRMask(st.Dst.Bits(), 32)}}
			if st.Gateway.IsValid() {
				r.Gw = st.Gateway.AsSlice()
			}
			if st.PrefSrc.IsValid() {
				r.Src = st.PrefSrc.AsSlice()
			}
			if st.Scope == "link" {
				r.Scope = netlink.SCOPE_LINK
			}
			if err := nl.RouteAdd(r); err != nil {
				t.Fatalf("look-alike route: %v", err)
			}
		case *fix.SysctlSet:
			probetest.Sysctl(t, h, strings.TrimPrefix(evidence.SysctlPath(st.Sysctl), "sys/"), st.Value)
		case *fix.ARPAnnounce:
			// A message to the neighbours: it leaves nothing to look like.
		default:
			t.Fatalf("a step of kind %s in the fix", s.Do.Step.Kind())
		}
	}
}

// twoNICHost builds the namespace name as a host with two NICs on one
// subnet (eth0 198.51.100.10, eth1 198.51.100.11) and a default route by
// each: the reply to eth1's address leaves by eth0. It is removed at the
// end of the test if it still has the name. release closes the returned
// handle (once; also at the end of the test).
func twoNICHost(t *testing.T, name string) (h netns.NsHandle, release func()) {
	t.Helper()
	ns, err := namespace.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	return twoNICSetUp(t, ns)
}

// twoNICSetUp makes the namespace ns the host twoNICHost builds.
func twoNICSetUp(t *testing.T, ns namespace.NS) (h netns.NsHandle, release func()) {
	t.Helper()
	name := ns.Name
	r := struct{ h netns.NsHandle }{ns.Handle}
	release = sync.OnceFunc(func() { r.h.Close() })
	t.Cleanup(func() {
		release()
		if _, err := os.Stat("/run/netns/" + name); err == nil {
			namespace.Remove(name)
		}
	})
	host := probetest.NS{Name: name, Handle: r.h}
	probetest.Quiet(t, host)
	// Sockets hold their namespace: the host's handle is closed here, so
	// that once the test lets go of the namespace the kernel frees it.
	nl, err := netlink.NewHandleAt(r.h)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	peer := probetest.NewNS(t)
	pnl := probetest.Netlink(t, peer.Handle)
	for i := range 2 {
		eth, p := fmt.Sprintf("eth%d", i), fmt.Sprintf("p%d", i)
		if err := pnl.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: eth, Namespace: netlink.NsFd(r.h)}, PeerName: p}); err != nil {
			t.Fatal(err)
		}
		pl, _ := pnl.LinkByName(p)
		pnl.LinkSetUp(pl)
		l, err := nl.LinkByName(eth)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(fmt.Sprintf("198.51.100.%d/24", 10+i))
		if err := nl.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		nl.LinkSetUp(l)
		if err := nl.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("198.51.100.1"), Priority: 100 + i}); err != nil {
			t.Fatal(err)
		}
	}
	return r.h, release
}

var twoNICFlow = []string{"tcp", "203.0.113.9:40000", "198.51.100.11:8080"}

// killWatchdog kills the journal's watchdog with SIGKILL and waits until
// it is gone.
func killWatchdog(t *testing.T, j *apply.Journal) {
	t.Helper()
	wd := j.WatchdogProcess
	if wd == nil || !wd.Alive() {
		t.Fatalf("the watchdog is not running: %+v", j)
	}
	if err := syscall.Kill(wd.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(5 * time.Second); wd.Alive(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("the watchdog %d survived SIGKILL", wd.PID)
		}
	}
}

// harmless fails when text holds raw control characters or bidi overrides.
func harmless(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069') {
			t.Errorf("%s holds the raw control %U", what, r)
			return
		}
	}
}

// mustJSON decodes JSON or fails.
func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, s)
	}
}

// createWithInode makes the namespace name and tries to give it inode
// ino, which a freed namespace had: the kernel gives a new namespace the
// lowest free number (ida_alloc in fs/proc/generic.c, shared by every kind
// of namespace), so each free number below ino is first taken by a UTS
// namespace, cheap to make, held open meanwhile. Other processes making
// namespaces at the same time may still take it: reused says whether it
// worked.
func createWithInode(t *testing.T, name string, ino uint64) (ns namespace.NS, reused bool) {
	t.Helper()
	var held []int
	defer func() {
		for _, fd := range held {
			unix.Close(fd)
		}
	}()
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end) && len(held) < 20000; {
		fd, got := utsNamespace(t)
		switch {
		case got < ino:
			held = append(held, fd)
			continue
		case got > ino: // not freed yet: the kernel frees a network namespace in a work queue
			unix.Close(fd)
			time.Sleep(20 * time.Millisecond)
			continue
		}
		unix.Close(fd) // ino is free again, and the lowest free number
		break
	}
	ns, err := namespace.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Fstat(int(ns.Handle), &st)
	return ns, st.Ino == ino
}

// utsNamespace makes a UTS namespace and returns a descriptor holding it
// and its inode.
func utsNamespace(t *testing.T) (int, uint64) {
	t.Helper()
	type res struct {
		fd  int
		err error
	}
	c := make(chan res, 1)
	nsthread.Run(func() {
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			c <- res{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		c <- res{fd, err}
	})
	r := <-c
	if r.err != nil {
		t.Fatal(r.err)
	}
	var st unix.Stat_t
	unix.Fstat(r.fd, &st)
	return r.fd, st.Ino
}

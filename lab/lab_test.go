package lab

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	asymflow "asym/flow" // package lab has a flow type of its own: the traffic's
	"asym/lab/namespace"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
)

// tryTimeout is long enough for one SYN retransmission (1 s) and short
// enough to keep the package under a minute.
const tryTimeout = 2 * time.Second

// healedTimeout leaves room for one more retransmission: a request socket
// left by the failing try can swallow the first SYN after the fix (the server
// answers it with an ACK, the client resets, and the retransmission wins).
const healedTimeout = 4 * time.Second

func testPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 2)
	rand.Read(b)
	return "asym-t" + hex.EncodeToString(b) + "-"
}

// up builds a scenario under a fresh prefix and takes it down when the test
// ends, also on failure, then checks that no namespace with the prefix is
// left in /run/netns.
func up(t *testing.T, name string) *Env {
	t.Helper()
	probetest.RequireRoot(t)
	s, ok := Find(name)
	if !ok {
		t.Fatalf("scenario %q not found; have %v", name, Names())
	}
	prefix := testPrefix(t)
	var env *Env
	t.Cleanup(func() {
		if env != nil {
			if err := env.Down(); err != nil {
				t.Errorf("down: %v", err)
			}
			if err := env.Down(); err != nil {
				t.Errorf("second down: %v", err)
			}
		}
		left, err := Leftovers(prefix)
		if err != nil {
			t.Errorf("list leftovers: %v", err)
		}
		if len(left) > 0 {
			t.Errorf("namespaces left after Down: %v", left)
			Cleanup(prefix)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	e, err := s.Up(ctx, prefix)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	env = e
	t.Logf("%s up in %s: %d namespaces, flow %q", name, time.Since(start).Round(time.Millisecond), len(e.Namespaces), e.Checks[0].Flow)
	return e
}

// checkChecks verifies the shape of a scenario's checks.
func checkChecks(t *testing.T, e *Env) {
	t.Helper()
	if len(e.Checks) == 0 {
		t.Fatal("no checks")
	}
	// The first check's flow is the traffic the lab generates: a full
	// tuple. The others are flows as a person types them to asym, maybe
	// without the client's port.
	if _, err := parseFlow(e.Checks[0].Flow); err != nil {
		t.Errorf("check flow: %v", err)
	}
	for _, c := range e.Checks {
		if !strings.HasPrefix(c.Target, e.Prefix) || !slices.Contains(e.Namespaces, c.Target) {
			t.Errorf("check target %q is not one of the namespaces %v", c.Target, e.Namespaces)
		}
		if _, err := asymflow.ParseString(c.Flow); err != nil {
			t.Errorf("check flow: %v", err)
		}
		if !slices.IsSorted(c.Expect) || !slices.IsSorted(c.Live) {
			t.Errorf("check %s: Expect %v or Live %v is not sorted", c.Target, c.Expect, c.Live)
		}
	}
	for _, n := range e.Namespaces {
		if len(n) >= 32 {
			t.Errorf("namespace name %q is 32 characters or longer", n)
		}
		if _, err := os.Stat("/run/netns/" + n); err != nil {
			t.Errorf("namespace %s: %v", n, err)
		}
	}
}

// scenarioTest is what each scenario must show beyond its Try result.
type scenarioTest struct {
	failure  string                     // what the failing try says; "" is "timed out" (the connect)
	evidence func(t *testing.T, e *Env) // why the flow failed (healthy: that it takes the path it claims)
	heal     func(t *testing.T, e *Env) // the host-local fix asym will propose
	contrast func(t *testing.T, e *Env) // a flow that works next to the failing one
}

var scenarioTests = map[string]scenarioTest{
	"two-nics-strict": {
		evidence: func(t *testing.T, e *Env) {
			if n := tcpExt(t, e, "host", "IPReversePathFilter"); n == 0 {
				t.Error("host: TcpExt IPReversePathFilter is 0: the SYN was not dropped by rp_filter")
			}
		},
		heal: sourceRouting,
	},
	"two-nics-fabric": {
		evidence: func(t *testing.T, e *Env) {
			if n := tcpExt(t, e, "host", "IPReversePathFilter"); n != 0 {
				t.Errorf("host: TcpExt IPReversePathFilter is %d with loose rp_filter", n)
			}
			if n := nftCounter(t, e, "fabric", nftables.TableFamilyBridge, "fabric", "forward", "host0"); n == 0 {
				t.Error("fabric: the source check on port host0 dropped nothing: the reply did not leave by eth0")
			}
		},
		heal: sourceRouting,
	},
	"two-isps": {
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "isp-b", nftables.TableFamilyIPv4, "filter", "forward", "eth0"); n == 0 {
				t.Error("isp-b: the ingress filter dropped nothing: the reply did not leave by eth1")
			}
		},
		heal: func(t *testing.T, e *Env) {
			h := nlh(t, e, "host")
			eth0 := link(t, h, "eth0")
			for _, r := range []*netlink.Route{
				{Table: 100, Dst: cidr("192.0.2.0/24"), LinkIndex: eth0, Scope: netlink.SCOPE_LINK, Src: ip("192.0.2.2")},
				{Table: 100, Dst: cidr("0.0.0.0/0"), LinkIndex: eth0, Gw: ip("192.0.2.1")},
			} {
				if err := h.RouteAdd(r); err != nil {
					t.Fatalf("heal: add route %v: %v", r, err)
				}
			}
			if err := h.RuleAdd(newRule("192.0.2.2", 100, 1000)); err != nil {
				t.Fatalf("heal: add rule: %v", err)
			}
		},
	},
	"rule-typo": {
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "fabric", nftables.TableFamilyBridge, "fabric", "forward", "host1"); n == 0 {
				t.Error("fabric: the source check on port host1 dropped nothing: the reply did not leave by eth1")
			}
		},
		heal: func(t *testing.T, e *Env) {
			h := nlh(t, e, "host")
			typo := newRule("198.51.100.12", 100, 32765)
			if err := h.RuleDel(typo); err != nil {
				t.Fatalf("heal: delete the typo rule: %v", err)
			}
			if err := h.RuleAdd(newRule("198.51.100.10", 100, 32765)); err != nil {
				t.Fatalf("heal: add the right rule: %v", err)
			}
		},
	},
	"missing-link-route": {
		evidence: func(t *testing.T, e *Env) {
			if n := tcpExt(t, e, "host", "IPReversePathFilter"); n != 0 {
				t.Errorf("host: TcpExt IPReversePathFilter is %d: strict rp_filter should pass via table 200", n)
			}
			if n := nftCounter(t, e, "gw", nftables.TableFamilyINet, "filter", "forward", ""); n == 0 {
				t.Error("gw: `ct state invalid counter drop` dropped nothing: the SYN-ACK did not hairpin through the gateway")
			}
			f, _ := parseFlow(e.Checks[0].Flow)
			if _, ok := conntrackState(t, e, "gw", f); ok {
				t.Error("gw: tracks the flow: the SYN went through the gateway instead of straight over L2")
			}
		},
		heal: func(t *testing.T, e *Env) {
			h := nlh(t, e, "host")
			r := &netlink.Route{Table: 200, Dst: cidr("198.51.100.0/24"), LinkIndex: link(t, h, "eth1"), Scope: netlink.SCOPE_LINK, Src: ip("198.51.100.11")}
			if err := h.RouteAdd(r); err != nil {
				t.Fatalf("heal: add the link route to table 200: %v", err)
			}
		},
	},
	"firewall-ecmp": {
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "fw2", nftables.TableFamilyINet, "filter", "forward", ""); n == 0 {
				t.Error("fw2: `ct state invalid counter drop` dropped nothing: the SYN-ACK did not come back by fw2")
			}
			if n := nftCounter(t, e, "fw1", nftables.TableFamilyINet, "filter", "forward", ""); n != 0 {
				t.Errorf("fw1: `ct state invalid` dropped %d packets, want 0", n)
			}
			f, _ := parseFlow(e.Checks[0].Flow)
			if st, ok := conntrackState(t, e, "fw1", f); !ok {
				t.Error("fw1: no conntrack entry for the flow: the SYN did not go by fw1")
			} else if st != 1 {
				t.Errorf("fw1: conntrack state %d, want 1 (SYN_SENT)", st)
			}
			if _, ok := conntrackState(t, e, "fw2", f); ok {
				t.Error("fw2: has a conntrack entry for the flow: the SYN went by fw2 too")
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// A port whose SYN and SYN-ACK both hash to fw1 works: the
			// failure is the asymmetry, not the firewalls or the lab.
			f, _ := parseFlow(e.Checks[0].Flow)
			b := &builder{env: e, ctx: t.Context()}
			for p := uint16(41000); p < 42000; p++ {
				fwd, err := b.outputIf("r1", "eth0", f.src.Addr(), f.dst.Addr(), p, f.dst.Port())
				if err != nil {
					t.Fatal(err)
				}
				back, err := b.outputIf("r2", "eth0", f.dst.Addr(), f.src.Addr(), f.dst.Port(), p)
				if err != nil {
					t.Fatal(err)
				}
				if fwd == "eth1" && back == "eth1" {
					g := f
					g.src = netip.AddrPortFrom(f.src.Addr(), p)
					if err := e.try(t.Context(), g, tryTimeout); err != nil {
						t.Errorf("a flow that keeps to fw1 both ways failed too: %v", err)
					} else {
						t.Logf("%s (fw1 both ways) works", g)
					}
					return
				}
			}
			t.Error("no port in 41000-41999 keeps to fw1 both ways")
		},
	},
	"mtu-blackhole": {
		failure: "only 0 of the 8192 bytes of the answer came back",
		evidence: func(t *testing.T, e *Env) {
			if n := nftCounter(t, e, "r2", nftables.TableFamilyIPv4, "filter", "output", ""); n == 0 {
				t.Error("r2: the frag-needed drop counted nothing: no segment was too big for the 1280 link")
			}
			if n := tcpExt(t, e, "server", "TCPTimeouts"); n == 0 {
				t.Error("server: TcpExt TCPTimeouts is 0: the answer was not retransmitted on a timer")
			}
			if n := tcpExt(t, e, "client", "TCPTimeouts"); n != 0 {
				t.Errorf("client: TcpExt TCPTimeouts is %d: the small request should have passed", n)
			}
			// What asym on r2 reads from its own state (the r2 check):
			// each full-sized segment it could not forward onto the 1280
			// link is an Ip FragFails, and its ICMP error is counted as
			// sent (Icmp OutDestUnreachs) before the output hook drops it.
			frag, icmp := snmp(t, e, "r2", "Ip", "FragFails"), snmp(t, e, "r2", "Icmp", "OutDestUnreachs")
			if frag == 0 || icmp == 0 {
				t.Errorf("r2: Ip FragFails %d, Icmp OutDestUnreachs %d: no forwarded packet was too big for eth1", frag, icmp)
			}
			t.Logf("r2: Ip FragFails %d, Icmp OutDestUnreachs %d, frag-needed dropped on output %d", frag, icmp,
				nftCounter(t, e, "r2", nftables.TableFamilyIPv4, "filter", "output", ""))
		},
		contrast: func(t *testing.T, e *Env) {
			// Small segments pass: a SYN advertising an MSS that fits the
			// 1280 link (what an MSS clamp on a router does) gets it all.
			f, _ := parseFlow(e.Checks[0].Flow)
			if err := e.tryMSS(t.Context(), f, tryTimeout, mtuLink-40-12); err != nil {
				t.Errorf("with the MSS clamped to the 1280 link the answer should come back: %v", err)
			}
			// And the cause is the filtered ICMP: once r2 lets its
			// fragmentation-needed out, path MTU discovery heals the flow.
			c, err := e.builderFor(t).nft("r2")
			if err != nil {
				t.Fatal(err)
			}
			c.DelTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
			if err := c.Flush(); err != nil {
				t.Fatalf("r2: remove the ICMP filter: %v", err)
			}
			if err := e.Try(t.Context(), healedTimeout); err != nil {
				t.Errorf("with the ICMP allowed, path MTU discovery should heal the flow: %v", err)
			}
		},
	},
	"healthy":                 {},
	"connmark-no-restore":     connmarkNoRestoreTest,
	"src-valid-mark":          srcValidMarkTest,
	"firewall-one-way-nft":    firewallOneWayTest,
	"firewall-one-way-legacy": firewallOneWayLegacyTest,
	"busy-firewall-ok":        busyFirewallTest,
}

// builderFor gives tests the builder's helpers on an env that is up.
func (e *Env) builderFor(t *testing.T) *builder { return &builder{env: e, ctx: t.Context()} }

func TestScenarios(t *testing.T) {
	probetest.RequireRoot(t)
	for _, s := range Scenarios() {
		st, ok := scenarioTests[s.Name]
		if !ok {
			t.Errorf("scenario %s has no test", s.Name)
			continue
		}
		t.Run(s.Name, func(t *testing.T) {
			t.Parallel()
			e := up(t, s.Name)
			checkChecks(t, e)
			healthy := !e.Checks[0].Fails()
			start := time.Now()
			err := e.Try(t.Context(), tryTimeout)
			t.Logf("try (%s): %v", time.Since(start).Round(time.Millisecond), err)
			if healthy {
				if err != nil {
					t.Fatalf("the healthy flow failed: %v", err)
				}
				if st.evidence != nil {
					st.evidence(t, e)
				}
				return
			}
			if err == nil {
				t.Fatal("the broken flow worked")
			}
			if want := cmp.Or(st.failure, "timed out"); !strings.Contains(err.Error(), want) {
				t.Errorf("want a failure saying %q, got: %v", want, err)
			}
			if st.evidence != nil {
				st.evidence(t, e)
			}
			if st.contrast != nil {
				st.contrast(t, e)
			}
			if (st.heal != nil) != s.Fixable {
				t.Errorf("Fixable is %v but the test heals: %v", s.Fixable, st.heal != nil)
			}
			if st.heal == nil {
				return
			}
			st.heal(t, e)
			start = time.Now()
			err = e.Try(t.Context(), healedTimeout)
			t.Logf("try after the fix (%s): %v", time.Since(start).Round(time.Millisecond), err)
			if err != nil {
				t.Fatalf("the fix did not heal the flow: %v", err)
			}
		})
	}
}

func TestTraffic(t *testing.T) {
	t.Parallel()
	e := up(t, "healthy")
	if e.Client != e.Prefix+"client" || e.Server != e.Prefix+"host" {
		t.Errorf("Client %q, Server %q", e.Client, e.Server)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 1200*time.Millisecond)
	defer cancel()
	var ok, failed int
	for err := range e.Traffic(ctx, 200*time.Millisecond) {
		if err != nil {
			failed++
			t.Logf("attempt: %v", err)
		} else {
			ok++
		}
	}
	if ok < 3 || failed > 0 {
		t.Errorf("healthy traffic: %d attempts worked, %d failed; want at least 3 and none failing", ok, failed)
	}
	// Traffic stops at Down too, and Try says the lab is gone.
	ch := e.Traffic(t.Context(), 200*time.Millisecond)
	if err := e.Down(); err != nil {
		t.Fatal(err)
	}
	for range ch {
	}
	if err := e.Try(t.Context(), time.Second); err == nil {
		t.Error("Try after Down worked")
	}
}

// TestDownReleases checks that Down leaves no file descriptor (namespace
// handle, netlink or TCP socket: each would keep a namespace alive in the
// kernel) and no goroutine behind. Not parallel, so the counts are this
// test's alone.
func TestDownReleases(t *testing.T) {
	probetest.RequireRoot(t)
	fds := func() int {
		d, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(d)
	}
	fdsBefore, goBefore := fds(), runtime.NumGoroutine()
	s, _ := Find("missing-link-route")
	prefix := testPrefix(t)
	e, err := s.Up(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	ch := e.Traffic(ctx, 300*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	if err := e.Down(); err != nil {
		t.Fatal(err)
	}
	cancel()
	for range ch {
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Errorf("left: %v", left)
		Cleanup(prefix)
	}
	if err := e.Do("host", func() error { return nil }); err == nil {
		t.Error("Do after Down entered a namespace")
	}
	deadline := time.Now().Add(2 * time.Second)
	for (fds() > fdsBefore || runtime.NumGoroutine() > goBefore) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := fds(); n > fdsBefore {
		t.Errorf("%d file descriptors before Up, %d after Down", fdsBefore, n)
	}
	if n := runtime.NumGoroutine(); n > goBefore {
		t.Errorf("%d goroutines before Up, %d after Down", goBefore, n)
	}
}

func TestCleanup(t *testing.T) {
	t.Parallel()
	probetest.RequireRoot(t)
	for _, bad := range []string{"", "lab-", "asym", "/asym-", "asym-../x"} {
		if err := Cleanup(bad); err == nil {
			t.Errorf("Cleanup(%q) accepted a prefix that does not start with asym- or has a slash", bad)
		}
		if _, err := (Scenario{}).Up(t.Context(), bad); err == nil {
			t.Errorf("Up(%q) accepted a bad prefix", bad)
		}
	}

	// A crashed run: Up then no Down. Cleanup must remove it all.
	prefix := testPrefix(t)
	s, _ := Find("two-nics-strict")
	e, err := s.Up(t.Context(), prefix)
	if err != nil {
		t.Fatal(err)
	}
	left, _ := Leftovers(prefix)
	if len(left) != len(e.Namespaces) {
		t.Fatalf("leftovers %v, want the %d namespaces of the env", left, len(e.Namespaces))
	}
	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Fatalf("after Cleanup: %v", left)
	}
	if err := e.Down(); err != nil { // releases sockets; namespaces already gone
		t.Errorf("Down after Cleanup: %v", err)
	}

	// A leftover in the way: Up fails, removes only what it made, and names
	// the leftover; Cleanup then removes it.
	prefix = testPrefix(t)
	t.Cleanup(func() { Cleanup(prefix) })
	if err := mkNamed(prefix + "fabric"); err != nil {
		t.Fatal(err)
	}
	_, err = s.Up(t.Context(), prefix)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("Up over a leftover: got %v, want an error naming the leftover", err)
	}
	t.Log(err)
	left, _ = Leftovers(prefix)
	if !slices.Equal(left, []string{prefix + "fabric"}) {
		t.Fatalf("after the failed Up: %v, want only the leftover", left)
	}
	if err := Cleanup(prefix); err != nil {
		t.Fatal(err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Fatalf("after Cleanup: %v", left)
	}
}

func TestUpCancelled(t *testing.T) {
	t.Parallel()
	probetest.RequireRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	prefix := testPrefix(t)
	s, _ := Find("firewall-ecmp")
	if _, err := s.Up(ctx, prefix); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("Up with a cancelled context: %v", err)
	}
	if left, _ := Leftovers(prefix); len(left) > 0 {
		t.Errorf("left: %v", left)
		Cleanup(prefix)
	}
}

func TestCatalog(t *testing.T) {
	want := []string{"two-nics-strict", "two-nics-fabric", "two-isps", "rule-typo", "missing-link-route", "firewall-ecmp", "mtu-blackhole", "healthy",
		"connmark-no-restore", "src-valid-mark", "firewall-one-way-nft", "firewall-one-way-legacy", "busy-firewall-ok",
		"nat-gateway-pair", "route-src-hint", "port-selective-rule", "host-ecmp-two-isps", "two-isps-shared-lan", "discard-route", "stateless-router"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("names %v, want %v", got, want)
	}
	for _, s := range Scenarios() {
		if s.Story == "" || s.Wrong == "" || strings.Contains(s.Story, "\n") || strings.Contains(s.Wrong, "\n") {
			t.Errorf("%s: Story and Wrong must be one line each", s.Name)
		}
		if f, ok := Find(s.Name); !ok || f.Name != s.Name {
			t.Errorf("Find(%q) failed", s.Name)
		}
	}
	if _, ok := Find("nope"); ok {
		t.Error("Find found an unknown scenario")
	}
}

func TestParseFlow(t *testing.T) {
	f, err := parseFlow("tcp 203.0.113.10:40000 198.51.100.11:8080")
	if err != nil || f.src != netip.MustParseAddrPort("203.0.113.10:40000") || f.dst.Port() != 8080 {
		t.Errorf("parse: %+v %v", f, err)
	}
	for _, bad := range []string{"", "udp 1.2.3.4:1 5.6.7.8:2", "tcp 1.2.3.4 5.6.7.8:2", "tcp [2001:db8::1]:1 [2001:db8::2]:2"} {
		if _, err := parseFlow(bad); err == nil {
			t.Errorf("parseFlow(%q) accepted", bad)
		}
	}
}

// --- helpers that read the evidence ---

func nlh(t *testing.T, e *Env, role string) *netlink.Handle {
	t.Helper()
	h, err := e.netlink(role)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func link(t *testing.T, h *netlink.Handle, name string) int {
	t.Helper()
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatalf("find %s: %v", name, err)
	}
	return l.Attrs().Index
}

func ip(s string) net.IP { return net.ParseIP(s).To4() }

func cidr(s string) *net.IPNet {
	_, n, err := net.ParseCIDR(s)
	if err != nil {
		panic(err)
	}
	return n
}

// sourceRouting is the cloud article's fix with the link routes: one table
// and one source rule per NIC.
func sourceRouting(t *testing.T, e *Env) {
	t.Helper()
	h := nlh(t, e, "host")
	for i, nic := range []struct {
		dev, addr string
		table     int
	}{{"eth0", vpcEth0, 100}, {"eth1", vpcEth1, 200}} {
		idx := link(t, h, nic.dev)
		for _, r := range []*netlink.Route{
			{Table: nic.table, Dst: cidr(vpcNet), LinkIndex: idx, Scope: netlink.SCOPE_LINK, Src: ip(nic.addr)},
			{Table: nic.table, Dst: cidr("0.0.0.0/0"), LinkIndex: idx, Gw: ip(vpcGW)},
		} {
			if err := h.RouteAdd(r); err != nil {
				t.Fatalf("heal: add route %v: %v", r, err)
			}
		}
		if err := h.RuleAdd(newRule(nic.addr, nic.table, 1000+i)); err != nil {
			t.Fatalf("heal: add rule from %s lookup %d: %v", nic.addr, nic.table, err)
		}
	}
}

// tcpExt reads one TcpExt counter of /proc/thread-self/net/netstat inside a
// role's namespace (/proc/net follows the thread-group leader, notes §6).
func tcpExt(t *testing.T, e *Env, role, name string) uint64 {
	t.Helper()
	var data []byte
	if err := e.Do(role, func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/netstat")
		return err
	}); err != nil {
		t.Fatalf("read netstat in %s: %v", role, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	var header []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, h := range header {
			if h == name && i < len(f) {
				n, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					t.Fatalf("parse %s: %v", name, err)
				}
				return n
			}
		}
	}
	t.Fatalf("%s: no TcpExt %s in netstat", role, name)
	return 0
}

// nftCounter sums the counters of the rules of a chain that match iif
// (by their iifname compare), or of all rules when iif is "".
func nftCounter(t *testing.T, e *Env, role string, fam nftables.TableFamily, table, chain, iif string) uint64 {
	t.Helper()
	c, err := nftables.New(nftables.WithNetNSFd(int(e.handles[role])))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := c.GetRules(&nftables.Table{Name: table, Family: fam}, &nftables.Chain{Name: chain})
	if err != nil {
		t.Fatalf("%s: list rules of %s %s: %v", role, table, chain, err)
	}
	var sum uint64
	for _, r := range rules {
		match := iif == ""
		var n uint64
		for _, x := range r.Exprs {
			switch x := x.(type) {
			case *expr.Cmp:
				if iif != "" && bytes.Equal(x.Data, ifname(iif)) {
					match = true
				}
			case *expr.Counter:
				n = x.Packets
			}
		}
		if match {
			sum += n
		}
	}
	return sum
}

// conntrackState returns the TCP conntrack state of the flow in a role's
// namespace.
func conntrackState(t *testing.T, e *Env, role string, f flow) (uint8, bool) {
	t.Helper()
	flows, err := nlh(t, e, role).ConntrackTableList(netlink.ConntrackTable, netlink.FAMILY_V4)
	if err != nil {
		t.Fatalf("%s: conntrack dump: %v", role, err)
	}
	for _, c := range flows {
		if c.Forward.Protocol == 6 && c.Forward.SrcIP.Equal(f.src.Addr().AsSlice()) && c.Forward.SrcPort == f.src.Port() &&
			c.Forward.DstIP.Equal(f.dst.Addr().AsSlice()) && c.Forward.DstPort == f.dst.Port() {
			if p, ok := c.ProtoInfo.(*netlink.ProtoInfoTCP); ok {
				return p.State, true
			}
			return 0, true
		}
	}
	return 0, false
}

// mkNamed creates an empty named namespace, as a crashed run would leave.
func mkNamed(name string) error {
	ns, err := namespace.Create(name)
	if err != nil {
		return fmt.Errorf("create leftover %s: %w", name, err)
	}
	ns.Handle.Close()
	return nil
}

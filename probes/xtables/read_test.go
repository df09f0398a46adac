package xtables

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	labxt "asym/lab/xtables"
	"asym/probes/probetest"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// inNS enters ns the way probes.Target.InNS does: a locked thread that is
// never unlocked, abandoned when ctx ends first. (The tests cannot import
// asym/probes, which imports this package.)
func inNS(ns probetest.NS) InNS {
	return func(ctx context.Context, fn func() error) error {
		done := make(chan error, 1)
		go func() {
			runtime.LockOSThread()
			if err := unix.Setns(int(ns.Handle), unix.CLONE_NEWNET); err != nil {
				done <- err
				return
			}
			done <- fn()
		}()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func readNS(t *testing.T, ns probetest.NS) *Ruleset {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	rs, err := Read(ctx, inNS(ns))
	if err != nil {
		t.Fatalf("read the iptables-legacy tables of %s: %v", ns.Name, err)
	}
	return rs
}

// tablesListed reads the namespace's x_tables table lists.
func tablesListed(t *testing.T, ns probetest.NS) (v4, v6 []string) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		b4, err := os.ReadFile("/proc/thread-self/net/ip_tables_names")
		if err != nil {
			return err
		}
		b6, err := os.ReadFile("/proc/thread-self/net/ip6_tables_names")
		if err != nil {
			return err
		}
		v4, v6 = strings.Fields(string(b4)), strings.Fields(string(b6))
		slices.Sort(v4)
		slices.Sort(v6)
		return nil
	})
	return v4, v6
}

func install(t *testing.T, ns probetest.NS, tables ...labxt.Table) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		for _, tb := range tables {
			if err := tb.Install(); err != nil {
				return err
			}
		}
		return nil
	})
}

// TestReadCreatesNothing: reading asks only for the tables the namespace
// lists, because asking for another one creates it.
func TestReadCreatesNothing(t *testing.T) {
	ns := probetest.NewNS(t)
	rs := readNS(t, ns)
	if len(rs.Tables) != 0 || len(rs.FirewallRules()) != 0 {
		t.Fatalf("a namespace without legacy tables gave %+v", rs.Tables)
	}
	if v4, v6 := tablesListed(t, ns); len(v4) != 0 || len(v6) != 0 {
		t.Fatalf("reading created tables: ip %q, ip6 %q", v4, v6)
	}

	install(t, ns, labxt.Table{Name: "raw"})
	rs = readNS(t, ns)
	if got := rs.Names(); !slices.Equal(got, []string{"ip raw"}) {
		t.Fatalf("tables %q, want only ip raw", got)
	}
	if v4, v6 := tablesListed(t, ns); !slices.Equal(v4, []string{"raw"}) || len(v6) != 0 {
		t.Fatalf("reading created tables: ip %q, ip6 %q", v4, v6)
	}
}

// TestReadForwarded drops invalid and spoofed traffic in a router namespace
// with iptables-legacy rules and reads the rules back with their counters.
//
//	client 192.0.2.10 (+198.51.100.77) ── eth0 router eth1 ── 203.0.113.10 server
func TestReadForwarded(t *testing.T) {
	client, router, server := probetest.NewNS(t), probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{client, router, server} {
		probetest.Quiet(t, ns)
	}
	probetest.Sysctl(t, router.Handle, "net/ipv4/ip_forward", "1")
	probetest.Veth(t, client, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.10/24", "198.51.100.77/32"}},
		router, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.1/24"}})
	probetest.Veth(t, router, probetest.Link{Name: "eth1", Addrs: []string{"203.0.113.1/24"}},
		server, probetest.Link{Name: "eth0", Addrs: []string{"203.0.113.10/24"}})
	defaultVia(t, client, "192.0.2.1")
	defaultVia(t, server, "203.0.113.1")
	install(t, router, routerFilter(), routerRaw())

	cl, rt, sv := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("203.0.113.10")
	// A SYN-ACK that answers no SYN the router saw: what an asymmetric
	// return path looks like to it. Conntrack calls it invalid.
	probetest.SendRawTCP(t, server, sv, cl, probetest.SynAck(sv, cl, 8080, 40000, 1, 1),
		probetest.SynAck(sv, cl, 8080, 40000, 2, 1), probetest.SynAck(sv, cl, 8080, 40000, 3, 1))
	probetest.SendRawTCP(t, client, cl, rt, probetest.SynAck(cl, rt, 40001, 22, 1, 1), probetest.SynAck(cl, rt, 40001, 22, 2, 1))
	// A new flow the FORWARD rules do not accept: its policy drops it.
	sendUDP(t, client, "192.0.2.10:0", "203.0.113.10:9", 1)
	// From an address the router has no route back to: rpfilter drops it.
	sendUDP(t, client, "198.51.100.77:0", "203.0.113.10:9", 2)

	var rs *Ruleset
	arrived := probetest.Poll(5*time.Second, func() bool {
		rs = readNS(t, router)
		return counted(rs, "filter", "FORWARD", 2) == 3 && counted(rs, "filter", "INPUT", 1) == 2 &&
			counted(rs, "raw", "PREROUTING", 1) == 2 && chainOf(rs, "filter", "FORWARD").PolicyPackets == 1
	})
	for _, tb := range rs.Tables {
		t.Logf("%s", strings.Join(saveText(tb), "\n"))
	}
	if !arrived {
		t.Fatal("the counters did not reach what was sent within 5s")
	}

	want := map[string][]string{
		"filter INPUT": {"[2:80] -A INPUT -m state --state INVALID -j DROP"},
		"filter FORWARD": {
			"[3:120] -A FORWARD -s 203.0.113.0/24 -i eth1 -j CTCHECK",
			"[3:120] -A FORWARD -m conntrack --ctstate INVALID -j DROP",
			"[0:0] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		},
		"filter OUTPUT": nil,
		"filter CTCHECK": {
			"[3:120] -A CTCHECK -m conntrack --ctstate INVALID",
			"[3:120] -A CTCHECK -m conntrack --ctstate INVALID",
			"[3:120] -A CTCHECK -m state --state INVALID",
			"[3:120] -A CTCHECK -p tcp -m mark … -j MARK …",
			`[0:0] -A CTCHECK -m conntrack ! --ctstate INVALID -m comment --comment "not invalid" -j ACCEPT`,
		},
		"raw PREROUTING": {"[2:64] -A PREROUTING -m rpfilter --invert -j DROP"},
		"raw OUTPUT":     nil,
	}
	for _, tb := range rs.Tables {
		if tb.Err != nil || tb.Stray != 0 {
			t.Errorf("table %s: err %v, %d stray entries", tb.Name, tb.Err, tb.Stray)
		}
		for _, c := range tb.Chains {
			key := tb.Name + " " + c.Name
			var texts []string
			for _, r := range c.Rules {
				texts = append(texts, r.Text)
			}
			if w, ok := want[key]; !ok || !slices.Equal(texts, w) {
				t.Errorf("%s:\n%s\nwant\n%s", key, strings.Join(texts, "\n"), strings.Join(w, "\n"))
			}
			delete(want, key)
		}
	}
	if len(want) != 0 {
		t.Errorf("chains not read: %v", want)
	}

	fwd := chainOf(rs, "filter", "FORWARD")
	if fwd.Hook != "forward" || fwd.Policy != "DROP" || fwd.PolicyBytes != 32 {
		t.Errorf("FORWARD: hook %q policy %q [%d:%d]", fwd.Hook, fwd.Policy, fwd.PolicyPackets, fwd.PolicyBytes)
	}
	if r := fwd.Rules[0]; r.Verdict != "jump CTCHECK" || r.Kind != "" || r.Target != "CTCHECK" {
		t.Errorf("the jump: verdict %q kind %q target %q", r.Verdict, r.Kind, r.Target)
	}
	if r := chainOf(rs, "filter", "CTCHECK").Rules[3]; r.Kind != "" || r.Verdict != "" || !slices.Equal(r.Matches, []string{"mark"}) || r.Target != "MARK" {
		t.Errorf("the opaque rule: kind %q verdict %q matches %q target %q", r.Kind, r.Verdict, r.Matches, r.Target)
	}
	if c := chainOf(rs, "filter", "CTCHECK"); c.Hook != "" || c.Policy != "" {
		t.Errorf("user chain: hook %q policy %q", c.Hook, c.Policy)
	}

	type row struct {
		where, hook string
		prio        int
		handle      uint64
		kind        evidence.FirewallRuleKind
		verdict     string
		pkts, bytes uint64
	}
	var got []row
	for _, r := range rs.FirewallRules() {
		if r.Source != "iptables-legacy" || !r.HasCounter || !strings.HasPrefix(r.Text, "[") {
			t.Errorf("rule %+v", r)
		}
		got = append(got, row{r.Where(), r.Hook, r.Priority, r.Handle, r.Kind, r.Verdict, r.Packets, r.Bytes})
	}
	wantRules := []row{
		{"ip filter INPUT", "input", 0, 1, evidence.RuleCtInvalid, "drop", 2, 80},
		{"ip filter FORWARD", "forward", 0, 2, evidence.RuleCtInvalid, "drop", 3, 120},
		{"ip filter CTCHECK", "", 0, 1, evidence.RuleCtInvalid, "", 3, 120},
		{"ip filter CTCHECK", "", 0, 2, evidence.RuleCtInvalid, "", 3, 120},
		{"ip filter CTCHECK", "", 0, 3, evidence.RuleCtInvalid, "", 3, 120},
		{"ip raw PREROUTING", "prerouting", -300, 1, evidence.RuleFibRPFilter, "drop", 2, 64},
	}
	if !slices.Equal(got, wantRules) {
		t.Errorf("firewall rules\n%v\nwant\n%v", got, wantRules)
	}
	if h := rs.Headers()["iptables-legacy ip filter FORWARD"]; h != "iptables-legacy table filter  chain FORWARD (policy DROP)" {
		t.Errorf("FORWARD header %q", h)
	}
	if v4, _ := tablesListed(t, router); !slices.Equal(v4, []string{"filter", "raw"}) {
		t.Errorf("tables after reading: %q", v4)
	}
}

// TestReadIPv6 reads an ip6tables table whose conntrack rule rejects the
// invalid SYN-ACKs a namespace sends itself over ::1.
func TestReadIPv6(t *testing.T) {
	ns := probetest.NewNS(t)
	install(t, ns, loopback6Filter())
	probetest.Do(t, ns.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// The kernel fills in the TCP checksum at offset 16 (RFC 3542).
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_CHECKSUM, 16); err != nil {
			return err
		}
		lo := netip.IPv6Loopback()
		seg := probetest.SynAck(netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1"), 8080, 40000, 1, 1)
		seg[16], seg[17] = 0, 0
		for range 2 {
			// Sending fails with EPERM: the rule rejected the packet.
			if err := unix.Sendto(fd, seg, 0, &unix.SockaddrInet6{Addr: lo.As16()}); err != nil && !errors.Is(err, unix.EPERM) {
				return err
			}
		}
		return nil
	})
	rs := readNS(t, ns)
	out := chainOf(rs, "filter", "OUTPUT")
	want := []string{
		"[2:120] -A OUTPUT -d ::1/128 -o lo -p tcp -m conntrack --ctstate INVALID -j REJECT --reject-with icmp6-adm-prohibited",
		"[0:0] -A OUTPUT -d 2001:db8::/32 -m state --state INVALID,NEW -j DROP",
	}
	var texts []string
	for _, r := range out.Rules {
		texts = append(texts, r.Text)
	}
	if !slices.Equal(texts, want) {
		t.Fatalf("ip6 OUTPUT:\n%s\nwant\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
	fr := rs.FirewallRules()
	if len(fr) != 2 || fr[0].Family != "ip6" || fr[0].Kind != evidence.RuleCtInvalid || fr[0].Verdict != "reject" || fr[0].Packets != 2 || fr[0].Hook != "output" {
		t.Errorf("firewall rules %+v", fr)
	}
	if h := rs.Headers()["iptables-legacy ip6 filter OUTPUT"]; h != "ip6tables-legacy table filter  chain OUTPUT (policy ACCEPT)" {
		t.Errorf("header %q", h)
	}
}

// TestReadNeedsRoot reads from a thread that gave up root: the table list
// is root's alone, and the error says so.
func TestReadNeedsRoot(t *testing.T) {
	ns := probetest.NewNS(t)
	install(t, ns, labxt.Table{Name: "filter"})
	asNobody := func(ctx context.Context, fn func() error) error {
		return inNS(ns)(ctx, func() error {
			// setresuid on this thread only (the raw system call; Go's
			// Setresuid changes every thread). Dropping uid 0 drops the
			// capabilities with it. The thread is never reused.
			if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, 65534, 65534, 65534); e != 0 {
				return e
			}
			return fn()
		})
	}
	rs, err := Read(t.Context(), asNobody)
	if err == nil || rs != nil {
		t.Fatalf("read as nobody: %+v, %v", rs, err)
	}
	if !strings.HasPrefix(err.Error(), "unavailable: needs root") || !(errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
		t.Errorf("error %q", err)
	}
	if st, _ := evidence.Classify(err); st != evidence.StatusUnavailable {
		t.Errorf("classified %s", st)
	}
}

// TestReadTimedOut: a context that has ended stops the read.
func TestReadTimedOut(t *testing.T) {
	ns := probetest.NewNS(t)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := Read(ctx, inNS(ns)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want the deadline", err)
	}
}

func defaultVia(t *testing.T, ns probetest.NS, gw string) {
	t.Helper()
	h := probetest.Netlink(t, ns.Handle)
	link, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: link.Attrs().Index, Gw: net.ParseIP(gw)}); err != nil {
		t.Fatalf("default route via %s in %s: %v", gw, ns.Name, err)
	}
}

// sendUDP sends n datagrams of 4 bytes from src to dst inside ns.
func sendUDP(t *testing.T, ns probetest.NS, src, dst string, n int) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(dst)))
		if err != nil {
			return err
		}
		defer c.Close()
		for range n {
			if _, err := c.Write([]byte("ping")); err != nil {
				return err
			}
		}
		return nil
	})
}

func chainOf(rs *Ruleset, table, chain string) Chain {
	for _, tb := range rs.Tables {
		for _, c := range tb.Chains {
			if tb.Name == table && c.Name == chain {
				return c
			}
		}
	}
	return Chain{}
}

// counted is the packet counter of rule pos (1-based) of a chain.
func counted(rs *Ruleset, table, chain string, pos int) uint64 {
	c := chainOf(rs, table, chain)
	if pos > len(c.Rules) {
		return 0
	}
	return c.Rules[pos-1].Packets
}

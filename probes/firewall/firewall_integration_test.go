package firewall_test

import (
	"asym/flow"
	labxt "asym/lab/xtables"
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"asym/evidence"
	"asym/probes"
	"asym/probes/firewall"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// openTarget opens the namespace called name as a probe target, closed
// when the test ends: the probe reads through the real Target.
func openTarget(t testing.TB, name string) *probes.Target {
	t.Helper()
	tg, err := probes.OpenTarget(name, 0)
	if err != nil {
		t.Fatalf("open target %s: %v", name, err)
	}
	t.Cleanup(tg.Close)
	return tg
}

func fwCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestProbeFirewallFindsRules(t *testing.T) {
	ns := probetest.NewNS(t)
	c := probetest.Nft(t, ns)

	// table inet filter: what a hand-written nftables.conf has.
	filter := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "filter"})
	forward := probetest.BaseChain(c, filter, "forward", nftables.ChainHookForward, 0)
	c.AddRule(&nftables.Rule{Table: filter, Chain: forward, Exprs: probetest.CtInvalidDrop()})
	input := probetest.BaseChain(c, filter, "input", nftables.ChainHookInput, 0)
	// fib saddr . iif oif 0 drop (4-byte ifindex compared with 0)
	c.AddRule(&nftables.Rule{Table: filter, Chain: input, Exprs: []expr.Any{
		&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0, 0, 0, 0}},
		probetest.Drop,
	}})
	// fib saddr . iif oif missing counter drop (what nft writes for `missing`:
	// NFTA_FIB_F_PRESENT and a 1-byte boolean)
	c.AddRule(&nftables.Rule{Table: filter, Chain: input, Exprs: []expr.Any{
		&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
		&expr.Counter{},
		probetest.Drop,
	}})
	// Unrelated rules that must not be reported: tcp dport 22 accept and
	// ct state established,related accept.
	c.AddRule(&nftables.Rule{Table: filter, Chain: input, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(22)},
		probetest.Accept,
	}})
	c.AddRule(&nftables.Rule{Table: filter, Chain: input,
		Exprs: probetest.Cat(probetest.CtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpNeq), probetest.Accept)})

	// table inet firewalld: the shapes firewalld ≥ 1.0 writes.
	fw := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "firewalld"})
	fwInput := probetest.BaseChain(c, fw, "filter_INPUT", nftables.ChainHookInput, 10)
	vmap := &nftables.Set{Table: fw, Anonymous: true, Constant: true, IsMap: true,
		KeyType: nftables.TypeCTState, DataType: nftables.TypeVerdict}
	if err := c.AddSet(vmap, []nftables.SetElement{
		{Key: probetest.U32(expr.CtStateBitESTABLISHED), VerdictData: &expr.Verdict{Kind: expr.VerdictAccept}},
		{Key: probetest.U32(expr.CtStateBitRELATED), VerdictData: &expr.Verdict{Kind: expr.VerdictAccept}},
		{Key: probetest.U32(expr.CtStateBitINVALID), VerdictData: &expr.Verdict{Kind: expr.VerdictDrop}},
	}); err != nil {
		t.Fatal(err)
	}
	// firewalld jumps from filter_INPUT to its policy chains; the walk
	// reads a chain only when a packet of the flow gets there.
	policy := c.AddChain(&nftables.Chain{Name: "filter_IN_policy", Table: fw})
	c.AddRule(&nftables.Rule{Table: fw, Chain: fwInput, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: policy.Name}}})
	c.AddRule(&nftables.Rule{Table: fw, Chain: fwInput, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Lookup{SourceRegister: 1, SetName: vmap.Name, SetID: vmap.ID, IsDestRegSet: true, DestRegister: 0},
	}})
	fwPre := probetest.BaseChain(c, fw, "filter_PREROUTING", nftables.ChainHookPrerouting, 10)
	c.AddRule(&nftables.Rule{Table: fw, Chain: fwPre, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Fib{Register: 1, FlagSADDR: true, FlagMARK: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}},
		probetest.Drop,
	}})
	// A named counter in a regular chain: ct state invalid counter name "inv" reject.
	c.AddObj(&nftables.NamedObj{Table: fw, Name: "inv", Type: nftables.ObjTypeCounter, Obj: &expr.Counter{Packets: 7, Bytes: 280}})
	c.AddRule(&nftables.Rule{Table: fw, Chain: policy, Exprs: probetest.Cat(probetest.CtState(expr.CtStateBitINVALID, expr.CmpOpNeq),
		&expr.Objref{Type: unix.NFT_OBJECT_COUNTER, Name: "inv"},
		&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_ADMIN_PROHIBITED})})

	// A chain nothing jumps to is never read, whatever it holds.
	unused := c.AddChain(&nftables.Chain{Name: "filter_unused", Table: fw})
	c.AddRule(&nftables.Rule{Table: fw, Chain: unused, Exprs: probetest.CtInvalidDrop()})

	// table ip filter / ip raw: what iptables-nft writes (xt compat).
	ipf := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	ipIn := probetest.BaseChain(c, ipf, "INPUT", nftables.ChainHookInput, 0)
	c.AddRule(&nftables.Rule{Table: ipf, Chain: ipIn, Exprs: []expr.Any{probetest.XtConntrack(uint16(expr.CtStateBitINVALID), false), &expr.Counter{}, probetest.Drop}})
	c.AddRule(&nftables.Rule{Table: ipf, Chain: ipIn, Exprs: []expr.Any{probetest.XtConntrack(uint16(expr.CtStateBitINVALID), true), probetest.Accept}})
	// -A OUTPUT -m state --state INVALID -j REJECT: xt_state_info and
	// ipt_reject_info are a u32 each, padded by the kernel to 8 bytes
	// (XT_ALIGN). (In INPUT it would stand behind the certain drop above,
	// where no packet gets.)
	ipOut := probetest.BaseChain(c, ipf, "OUTPUT", nftables.ChainHookOutput, 0)
	c.AddRule(&nftables.Rule{Table: ipf, Chain: ipOut, Exprs: []expr.Any{
		&expr.Match{Name: "state", Info: probetest.XtRaw(1, 0, 0, 0, 0, 0, 0, 0)}, &expr.Counter{},
		&expr.Target{Name: "REJECT", Info: probetest.XtRaw(0, 0, 0, 0, 0, 0, 0, 0)},
	}})
	// -t raw -A PREROUTING -m rpfilter --invert -j DROP (rpfilter is only
	// accepted in raw/mangle PREROUTING: EINVAL elsewhere).
	raw := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "raw"})
	rawPre := probetest.BaseChain(c, raw, "PREROUTING", nftables.ChainHookPrerouting, -300)
	c.AddRule(&nftables.Rule{Table: raw, Chain: rawPre, Exprs: []expr.Any{
		&expr.Match{Name: "rpfilter", Info: probetest.XtRaw(8, 0, 0, 0, 0, 0, 0, 0)}, &expr.Counter{}, probetest.Drop,
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("load the test ruleset: %v", err)
	}

	v := firewall.Probe(fwCtx(t), openTarget(t, ns.Name), anyFlow)
	t.Logf("%s\n%s", v.Command, strings.Join(v.Lines, "\n"))
	if v.Status != evidence.StatusOK {
		t.Fatalf("status %s: %s", v.Status, v.Reason)
	}
	if v.Probe != "firewall" || v.Title != "Firewall: ct state invalid, reverse-path and ICMP error rules, NAT and marks" {
		t.Errorf("probe %q title %q", v.Probe, v.Title)
	}
	if want := "ip netns exec " + ns.Name + " nft list ruleset"; v.Command != want {
		t.Errorf("command %q, want %q", v.Command, want)
	}
	if v.Tables != 4 || len(v.LegacyTables) != 0 {
		t.Errorf("tables %d legacy %v, want 4 and none", v.Tables, v.LegacyTables)
	}

	type row struct {
		where, hook string
		prio        int
		source      string
		kind, verd  string
		counter     bool
		pkts        uint64
		text        string
	}
	want := []row{
		{"inet filter forward", "forward", 0, "nftables", "ct_invalid", "drop", true, 0, "ct state invalid counter packets 0 bytes 0 drop"},
		{"inet filter input", "input", 0, "nftables", "fib_rpfilter", "drop", false, 0, "fib saddr . iif oif 0 drop"},
		{"inet filter input", "input", 0, "nftables", "fib_rpfilter", "drop", true, 0, "fib saddr . iif oif missing counter packets 0 bytes 0 drop"},
		{"inet firewalld filter_INPUT", "input", 10, "nftables", "ct_invalid", "drop", false, 0, "ct state vmap { invalid : drop, established : accept, related : accept }"},
		{"inet firewalld filter_IN_policy", "", 0, "nftables", "ct_invalid", "reject", true, 7, `ct state invalid counter name "inv" (packets 7 bytes 280) reject`},
		{"ip filter INPUT", "input", 0, "iptables-nft", "ct_invalid", "drop", true, 0, "ct state invalid counter packets 0 bytes 0 drop"},
		{"ip filter OUTPUT", "output", 0, "iptables-nft", "ct_invalid", "reject", true, 0, "ct state invalid counter packets 0 bytes 0 reject"},
		{"ip raw PREROUTING", "prerouting", -300, "iptables-nft", "fib_rpfilter", "drop", true, 0, "fib saddr . iif oif 0 counter packets 0 bytes 0 drop"},
	}
	var got []row
	for _, r := range v.Rules {
		if r.Handle == 0 {
			t.Errorf("rule %q has no handle", r.Text)
		}
		got = append(got, row{r.Where(), r.Hook, r.Priority, r.Source, string(r.Kind), r.Verdict, r.HasCounter, r.Packets, r.Text})
	}
	// The kernel lists tables and chains in creation order, but do not
	// depend on it.
	key := func(r row) string { return r.where + "|" + r.text }
	slices.SortFunc(got, func(a, b row) int { return strings.Compare(key(a), key(b)) })
	slices.SortFunc(want, func(a, b row) int { return strings.Compare(key(a), key(b)) })
	if !slices.Equal(got, want) {
		t.Errorf("rules:\n%s\nwant:\n%s", fwRows(got), fwRows(want))
	}
	for _, r := range v.Rules {
		if strings.Contains(r.Text, "dport") || strings.Contains(r.Text, "established,related") {
			t.Errorf("unrelated rule reported: %q", r.Text)
		}
	}
	// The IPv6 reverse-path rule cannot match an IPv4 flow, and the chain
	// nothing jumps to was never fetched: every chain but it was.
	if v.Read == nil || v.Read.Chains != 9 || v.Read.Fetched != 8 {
		t.Errorf("read %+v: want 9 chains listed and 8 fetched (all but filter_unused)", v.Read)
	}
	v6 := firewall.Probe(fwCtx(t), openTarget(t, ns.Name), flow.Flow{Proto: flow.TCP,
		Src: netip.MustParseAddrPort("[2001:db8::10]:40000"), Dst: netip.MustParseAddrPort("[2001:db8:1::10]:8080")})
	if !slices.ContainsFunc(v6.Rules, func(r evidence.FirewallRule) bool {
		return r.Where() == "inet firewalld filter_PREROUTING" && r.Hook == "prerouting" && r.Priority == 10 && r.Kind == evidence.RuleFibRPFilter &&
			r.Verdict == "drop" && r.Text == "meta nfproto ipv6 fib saddr . mark . iif oif missing drop"
	}) {
		t.Errorf("an IPv6 flow meets the IPv6 reverse-path rule: %+v", v6.Rules)
	}
	fwd := slices.Index(v.Lines, "table inet filter  chain forward (hook forward priority 0; policy accept)")
	if fwd < 0 || fwd+1 >= len(v.Lines) || !strings.HasPrefix(v.Lines[fwd+1], "  ct state invalid counter packets 0 bytes 0 drop  # handle ") {
		t.Errorf("lines lack the forward chain in nft form:\n%s", strings.Join(v.Lines, "\n"))
	}
}

func fwRows[T any](rows []T) string {
	var b strings.Builder
	for _, r := range rows {
		fmt.Fprintf(&b, "  %+v\n", r)
	}
	return b.String()
}

// TestProbeFirewallCountsInvalidTraffic sends real invalid packets: a
// SYN-ACK that answers no SYN is invalid to conntrack (TCP state sNO ->
// sIV, whatever nf_conntrack_tcp_loose says), which is exactly what an
// asymmetric return path looks like to a stateful firewall.
func TestProbeFirewallCountsInvalidTraffic(t *testing.T) {
	a, b := probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{a, b} {
		// No IPv6: neighbour discovery and MLD would cross the inet
		// input chain too and make the counts less exact.
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/all/disable_ipv6", "1")
		probetest.Sysctl(t, ns.Handle, "net/ipv6/conf/default/disable_ipv6", "1")
	}
	probetest.Veth(t, a, probetest.Link{Name: "asym-a", Addrs: []string{"192.0.2.1/24"}}, b, probetest.Link{Name: "asym-b", Addrs: []string{"192.0.2.2/24"}})
	probetest.FilterRule(t, b, "input", nftables.ChainHookInput, probetest.CtInvalidDrop()...)

	const sent = 3
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	var segs [][]byte
	for i := range sent {
		segs = append(segs, probetest.SynAck(src, dst, 40001, 8080, uint32(1000+i), 5000))
	}
	probetest.SendRawTCP(t, a, src, dst, segs...)

	tb := openTarget(t, b.Name)
	invalidRule := func() (evidence.FirewallRule, *evidence.FirewallView) {
		v := firewall.Probe(fwCtx(t), tb, anyFlow)
		if v.Status != evidence.StatusOK {
			t.Fatalf("status %s: %s", v.Status, v.Reason)
		}
		for _, r := range v.Rules {
			if r.Where() == "inet filter input" && r.Kind == "ct_invalid" {
				return r, v
			}
		}
		t.Fatalf("ct state invalid rule not reported: %+v", v.Rules)
		return evidence.FirewallRule{}, nil
	}
	var r evidence.FirewallRule
	var v *evidence.FirewallView
	// ARP has to resolve before the queued segments go out.
	probetest.Poll(5*time.Second, func() bool {
		r, v = invalidRule()
		return r.Packets >= sent
	})
	t.Logf("%s", strings.Join(v.Lines, "\n"))
	// Each segment is a 20-byte IPv4 header and a 20-byte TCP header.
	if !r.HasCounter || r.Packets != sent || r.Bytes != sent*40 || !r.Drops() {
		t.Fatalf("rule %+v: want %d packets, %d bytes, dropping", r, sent, sent*40)
	}
	want := fmt.Sprintf("ct state invalid counter packets %d bytes %d drop", sent, sent*40)
	if r.Text != want {
		t.Errorf("text %q, want %q", r.Text, want)
	}
	// Listing again must give the same numbers: reading is not resetting.
	if again, _ := invalidRule(); again.Packets != sent || again.Bytes != sent*40 {
		t.Errorf("second reading %d packets %d bytes: the first one reset the counter", again.Packets, again.Bytes)
	}
}

func TestProbeFirewallNoTables(t *testing.T) {
	ns := probetest.NewNS(t)
	v := firewall.Probe(fwCtx(t), openTarget(t, ns.Name), anyFlow)
	if v.Status != evidence.StatusOK || v.Tables != 0 || len(v.Rules) != 0 || len(v.LegacyTables) != 0 {
		t.Fatalf("status %s (%s) tables %d rules %v legacy %v", v.Status, v.Reason, v.Tables, v.Rules, v.LegacyTables)
	}
	if !slices.Equal(v.Lines, []string{"no nftables tables: nothing here filters with nftables"}) {
		t.Errorf("lines %q", v.Lines)
	}
}

func TestProbeFirewallOnlyUnrelatedRules(t *testing.T) {
	ns := probetest.NewNS(t)
	c := probetest.Nft(t, ns)
	for _, name := range []string{"a", "b"} {
		tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: name})
		ch := probetest.BaseChain(c, tb, "input", nftables.ChainHookInput, 0)
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch,
			Exprs: probetest.Cat(probetest.CtState(expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED, expr.CmpOpNeq), probetest.Accept)})
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	v := firewall.Probe(fwCtx(t), openTarget(t, ns.Name), anyFlow)
	if v.Status != evidence.StatusOK || v.Tables != 2 || len(v.Rules) != 0 {
		t.Fatalf("status %s (%s) tables %d rules %v", v.Status, v.Reason, v.Tables, v.Rules)
	}
	if len(v.Lines) == 0 || v.Lines[0] != "no ct state invalid or fib reverse-path rules in 2 nftables tables" {
		t.Errorf("lines %q", v.Lines)
	}
}

// fwCreateLegacyTable instantiates an x_tables table in ns the way
// iptables-legacy -L does as a side effect: IPT_SO_GET_INFO on a table the
// namespace does not have yet makes the kernel create it from its template.
func fwCreateLegacyTable(t *testing.T, ns probetest.NS, name string) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_RAW)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		// struct ipt_getinfo: char name[32]; u32 valid_hooks,
		// hook_entry[5], underflow[5], num_entries, size.
		buf := make([]byte, 32+4*13)
		copy(buf, name)
		size := uint32(len(buf))
		const iptSoGetInfo = 64 // IPT_BASE_CTL
		_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_IP, iptSoGetInfo,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			return fmt.Errorf("IPT_SO_GET_INFO %s: %w", name, e)
		}
		return nil
	})
}

// TestProbeFirewallLegacyTables: iptables-legacy rules are read through
// the kernel, with no iptables tool on the machine: an INVALID drop in
// FORWARD and a state-match drop in INPUT come back as rules of the probe
// with the counters that real invalid SYN-ACKs made rise.
func TestProbeFirewallLegacyTables(t *testing.T) {
	client, router, server := probetest.NewNS(t), probetest.NewNS(t), probetest.NewNS(t)
	for _, ns := range []probetest.NS{client, router, server} {
		probetest.Quiet(t, ns)
	}
	probetest.Sysctl(t, router.Handle, "net/ipv4/ip_forward", "1")
	probetest.Veth(t, client, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.10/24"}},
		router, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.1/24"}})
	probetest.Veth(t, router, probetest.Link{Name: "eth1", Addrs: []string{"203.0.113.1/24"}},
		server, probetest.Link{Name: "eth0", Addrs: []string{"203.0.113.10/24"}})
	probetest.Do(t, server.Handle, func() error {
		h, err := netlink.NewHandle()
		if err != nil {
			return err
		}
		defer h.Close()
		return h.RouteAdd(&netlink.Route{Gw: net.ParseIP("203.0.113.1").To4(), Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}})
	})
	tg := openTarget(t, router.Name)
	if v := firewall.Probe(fwCtx(t), tg, anyFlow); len(v.LegacyTables) != 0 || len(v.Rules) != 0 {
		t.Fatalf("a namespace without legacy tables: %v %v", v.LegacyTables, v.Rules)
	}
	probetest.Do(t, router.Handle, func() error {
		return labxt.Table{Name: "filter", Chains: []labxt.Chain{
			{Name: "INPUT", Rules: []labxt.Rule{{Matches: []labxt.Match{labxt.State(labxt.StateInvalid)}, Target: labxt.Drop}}},
			{Name: "FORWARD", Rules: []labxt.Rule{{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateInvalid, false)}, Target: labxt.Drop}}},
		}}.Install()
	})
	sv, cl := netip.MustParseAddr("203.0.113.10"), netip.MustParseAddr("192.0.2.10")
	probetest.SendRawTCP(t, server, sv, cl, probetest.SynAck(sv, cl, 8080, 40000, 1, 1), probetest.SynAck(sv, cl, 8080, 40000, 2, 1))
	var v *evidence.FirewallView
	counted := probetest.Poll(5*time.Second, func() bool {
		v = firewall.Probe(fwCtx(t), tg, anyFlow)
		return len(v.Rules) == 2 && v.Rules[1].Packets == 2
	})
	t.Logf("%s", strings.Join(v.Lines, "\n"))
	if !counted || v.Status != evidence.StatusOK || !slices.Equal(v.LegacyTables, []string{"ip filter"}) {
		t.Fatalf("status %s (%s) legacy %v rules %+v", v.Status, v.Reason, v.LegacyTables, v.Rules)
	}
	in, fwd := v.Rules[0], v.Rules[1]
	if in.Source != evidence.SourceIptablesLegacy || in.Where() != "ip filter INPUT" || in.Hook != "input" || in.Kind != evidence.RuleCtInvalid || !in.Drops() {
		t.Errorf("INPUT rule: %+v", in)
	}
	if fwd.Where() != "ip filter FORWARD" || fwd.Hook != "forward" || fwd.Packets != 2 || fwd.Bytes != 80 || fwd.Text != "[2:80] -A FORWARD -m conntrack --ctstate INVALID -j DROP" {
		t.Errorf("FORWARD rule: %+v", fwd)
	}
	if !slices.Contains(v.Lines, "# ip netns exec "+router.Name+" iptables-legacy-save -c") {
		t.Errorf("no equivalent command line: %q", v.Lines)
	}
}

func TestProbeFirewallTimedOut(t *testing.T) {
	ns := probetest.NewNS(t)
	tg := openTarget(t, ns.Name)
	ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
	defer cancel()
	v := firewall.Probe(ctx, tg, anyFlow)
	if v.Status != evidence.StatusTimedOut || v.Reason == "" {
		t.Fatalf("status %s reason %q, want timed out", v.Status, v.Reason)
	}
}

// anyFlow is a flow for the tests about drop rules, where the flow only
// selects the NAT rules that are read with them.
var anyFlow = flow.Flow{Proto: flow.TCP, Src: netip.MustParseAddrPort("192.0.2.10:40000"), Dst: netip.MustParseAddrPort("203.0.113.10:8080")}

package firewall_test

// The path walk against the kernel: a router whose ruleset jumps, returns,
// goes to, looks up a set, hides a ct state invalid drop behind a jump,
// checks the reverse path and holds a chain nothing reaches. The flow's
// packets are sent through it one case at a time (the request's SYN, the
// SYN-ACK that answers it, a SYN-ACK that answers nothing), and the rules
// whose counters rose are compared with the walk's: every rule the kernel
// counted is on the walk's path, every rule the walk is certain of was
// counted, and the packet reached the far end exactly when the walk says
// it is accepted.

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	labxt "asym/lab/xtables"
	"asym/probes"
	"asym/probes/firewall"
	"asym/probes/probetest"
	"asym/probes/xtables"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// pathNet is a client and a server on either side of a router.
type pathNet struct {
	client, router, server probetest.NS
	tg                     *probes.Target // the router, as the probe reads it
}

var (
	pathClient = netip.MustParseAddr("192.0.2.10")
	pathServer = netip.MustParseAddr("203.0.113.10")
	// flowA's request crosses first, then its reply; flowB's reply comes
	// alone.
	flowA = flow.Flow{Proto: flow.TCP, Src: netip.AddrPortFrom(pathClient, 40000), Dst: netip.AddrPortFrom(pathServer, 8080)}
	flowB = flow.Flow{Proto: flow.TCP, Src: netip.AddrPortFrom(pathClient, 40001), Dst: netip.AddrPortFrom(pathServer, 8080)}
	// The router's view: the request in on eth0 and out on eth1, the reply
	// the other way, each way back by the interface it came in on.
	pathCrossing = firewall.Crossing{Role: evidence.RoleMiddle,
		Request: firewall.Leg{In: "eth0", Out: "eth1", Back: "eth0"},
		Reply:   firewall.Leg{In: "eth1", Out: "eth0", Back: "eth1"}}
)

// newPathNet builds the three namespaces. The client and the server count
// and drop every TCP segment that reaches them (`table inet sink`), so
// that nothing answers the test's raw segments.
func newPathNet(t *testing.T) *pathNet {
	n := &pathNet{client: probetest.NewNS(t), router: probetest.NewNS(t), server: probetest.NewNS(t)}
	for _, ns := range []probetest.NS{n.client, n.router, n.server} {
		probetest.Quiet(t, ns)
	}
	probetest.Sysctl(t, n.router.Handle, "net/ipv4/ip_forward", "1")
	probetest.Veth(t, n.client, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.10/24"}}, n.router, probetest.Link{Name: "eth0", Addrs: []string{"192.0.2.1/24"}})
	probetest.Veth(t, n.router, probetest.Link{Name: "eth1", Addrs: []string{"203.0.113.1/24"}}, n.server, probetest.Link{Name: "eth0", Addrs: []string{"203.0.113.10/24"}})
	for _, side := range []struct {
		ns probetest.NS
		gw string
	}{{n.client, "192.0.2.1"}, {n.server, "203.0.113.1"}} {
		h := probetest.Netlink(t, side.ns.Handle)
		if err := h.RouteAdd(&netlink.Route{Gw: net.ParseIP(side.gw).To4(), Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}); err != nil {
			t.Fatalf("default route via %s: %v", side.gw, err)
		}
		c := probetest.Nft(t, side.ns)
		tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "sink"})
		in := probetest.BaseChain(c, tb, "input", nftables.ChainHookInput, 0)
		c.AddRule(&nftables.Rule{Table: tb, Chain: in, Exprs: probetest.Cat(l4proto(unix.IPPROTO_TCP), &expr.Counter{}, probetest.Drop)})
		if err := c.Flush(); err != nil {
			t.Fatalf("install the sink in %s: %v", side.ns.Name, err)
		}
	}
	n.tg = openTarget(t, n.router.Name)
	return n
}

func l4proto(p byte) []expr.Any {
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{p}}}
}

func iifname(name string) []expr.Any {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return []expr.Any{&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: b}}
}

func jump(kind expr.VerdictKind, chain string) *expr.Verdict {
	return &expr.Verdict{Kind: kind, Chain: chain}
}

// sinkCount is the number of TCP segments that reached ns.
func sinkCount(t *testing.T, ns probetest.NS) uint64 {
	c := probetest.Nft(t, ns)
	tb := &nftables.Table{Family: nftables.TableFamilyINet, Name: "sink"}
	rules, err := c.GetRules(tb, &nftables.Chain{Name: "input", Table: tb})
	if err != nil || len(rules) != 1 {
		t.Fatalf("read the sink of %s: %v", ns.Name, err)
	}
	return counterOf(rules[0].Exprs).Packets
}

func counterOf(exprs []expr.Any) *expr.Counter {
	for _, e := range exprs {
		if c, ok := e.(*expr.Counter); ok {
			return c
		}
	}
	return nil
}

// nftCounters reads the first counter of every rule of the router's
// tables, by "family table chain handle".
func nftCounters(t *testing.T, ns probetest.NS) map[string]uint64 {
	c := probetest.Nft(t, ns)
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, ch := range chains {
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		fam := map[nftables.TableFamily]string{nftables.TableFamilyINet: "inet", nftables.TableFamilyIPv4: "ip"}[ch.Table.Family]
		for _, r := range rules {
			if ctr := counterOf(r.Exprs); ctr != nil {
				out[fmt.Sprintf("%s %s %s %d", fam, ch.Table.Name, ch.Name, r.Handle)] = ctr.Packets
			}
		}
	}
	return out
}

// legacyCounters reads the counter of every iptables-legacy rule of the
// router, by "ip table chain position".
func legacyCounters(t *testing.T, tg *probes.Target) map[string]uint64 {
	rs, err := xtables.Read(t.Context(), tg.InNS)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, tb := range rs.Tables {
		for _, ch := range tb.Chains {
			for _, r := range ch.Rules {
				out[fmt.Sprintf("%s %s %s %d", tb.Family, tb.Name, ch.Name, r.Position)] = r.Packets
			}
		}
	}
	return out
}

// pathCase is one packet of the test: who sends it, and the walk's path
// it is compared with.
type pathCase struct {
	name     string
	f        flow.Flow
	dir      evidence.Direction
	c        evidence.PathCase
	from, to func(n *pathNet) probetest.NS
	seg      []byte
	accepted bool // what the kernel must do with it, as the walk must say
}

func pathCases() []pathCase {
	client := func(n *pathNet) probetest.NS { return n.client }
	server := func(n *pathNet) probetest.NS { return n.server }
	return []pathCase{
		{"request's SYN", flowA, evidence.DirRequest, evidence.PathFirst, client, server,
			probetest.Segment(pathClient, pathServer, 40000, 8080, 1000, 0, probetest.SYN), true},
		{"SYN-ACK to it", flowA, evidence.DirReply, evidence.PathTracked, server, client,
			probetest.Segment(pathServer, pathClient, 8080, 40000, 5000, 1001, probetest.SYN|probetest.ACK), true},
		{"SYN-ACK to nothing", flowB, evidence.DirReply, evidence.PathUntracked, server, client,
			probetest.SynAck(pathServer, pathClient, 8080, 40001, 7000, 1), false},
	}
}

// comparePaths sends each case's packet and compares what the kernel
// counted with the walk's path, probed before the packet (the walk must
// not need to see the packet).
func comparePaths(t *testing.T, n *pathNet, counters func() map[string]uint64) {
	for _, pc := range pathCases() {
		v := firewall.ProbePath(fwCtx(t), n.tg, pc.f, pathCrossing)
		if v.Status != evidence.StatusOK {
			t.Fatalf("%s: probe %s: %s", pc.name, v.Status, v.Reason)
		}
		p := v.Path(pc.dir, pc.c)
		if p == nil {
			t.Fatalf("%s: no %s %s path", pc.name, pc.dir, pc.c)
		}
		before, arrivedBefore := counters(), sinkCount(t, pc.to(n))
		src, dst := pc.f.Src.Addr(), pc.f.Dst.Addr()
		if pc.dir == evidence.DirReply {
			src, dst = dst, src
		}
		probetest.SendRawTCP(t, pc.from(n), src, dst, pc.seg)
		arrived := probetest.Poll(2*time.Second, func() bool { return sinkCount(t, pc.to(n)) > arrivedBefore })
		after := counters()
		t.Logf("%s:\n%s\n%s", pc.name, strings.Join(pathText(p), "\n"), p.Summary())
		if arrived != pc.accepted {
			t.Errorf("%s: the kernel %s it", pc.name, map[bool]string{true: "let through", false: "dropped"}[arrived])
		}
		if walkAccepts := !p.Drops(false); walkAccepts != arrived || !p.Certain {
			t.Errorf("%s: the walk says %s (certain %v), the kernel %s it", pc.name, p.Verdict, p.Certain, map[bool]string{true: "let through", false: "dropped"}[arrived])
		}
		onPath := map[string]evidence.PathHit{}
		for _, h := range p.Hits {
			if !h.Policy {
				onPath[fmt.Sprintf("%s %d", h.Where(), h.Handle)] = h
			}
		}
		for key, n := range after {
			h, walked := onPath[key]
			switch rose := n > before[key]; {
			case rose && !walked:
				t.Errorf("%s: the kernel counted %s, which the walk says the packet cannot match", pc.name, key)
			case !rose && walked && h.HasCounter && h.Certain:
				t.Errorf("%s: the walk is certain the packet matches %s (%s), the kernel did not count it", pc.name, key, h.Text)
			}
		}
	}
}

func pathText(p *evidence.FirewallPath) []string {
	out := []string{p.Heading()}
	for _, h := range p.Hits {
		out = append(out, h.Where()+": "+h.Line())
	}
	return out
}

// TestPathWalkMatchesKernelNft: nftables and iptables-nft rules.
func TestPathWalkMatchesKernelNft(t *testing.T) {
	n := newPathNet(t)
	c := probetest.Nft(t, n.router)
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "path"})
	drop := nftables.ChainPolicyDrop
	raw := probetest.BaseChain(c, tb, "raw", nftables.ChainHookPrerouting, -300)
	pre := probetest.BaseChain(c, tb, "pre", nftables.ChainHookPrerouting, 0)
	fwd := c.AddChain(&nftables.Chain{Name: "fwd", Table: tb, Type: nftables.ChainTypeFilter, Hooknum: nftables.ChainHookForward,
		Priority: nftables.ChainPriorityRef(0), Policy: &drop})
	post := probetest.BaseChain(c, tb, "post", nftables.ChainHookPostrouting, 100)
	fromClient := c.AddChain(&nftables.Chain{Name: "from_client", Table: tb})
	replies := c.AddChain(&nftables.Chain{Name: "replies", Table: tb})
	established := c.AddChain(&nftables.Chain{Name: "established", Table: tb})
	never := c.AddChain(&nftables.Chain{Name: "never", Table: tb})
	servers := &nftables.Set{Table: tb, Name: "servers", KeyType: nftables.TypeIPAddr, Interval: true}
	if err := c.AddSet(servers, []nftables.SetElement{
		{Key: []byte{0, 0, 0, 0}, IntervalEnd: true},
		{Key: []byte{203, 0, 113, 0}}, {Key: []byte{203, 0, 114, 0}, IntervalEnd: true},
	}); err != nil {
		t.Fatal(err)
	}
	saddr := &expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
	add := func(ch *nftables.Chain, parts ...any) {
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: probetest.Cat(parts...)})
	}
	// Before conntrack's hook every packet is invalid to `ct state`.
	add(raw, probetest.CtState(expr.CtStateBitINVALID, expr.CmpOpNeq), &expr.Counter{})
	// A reverse-path check the way back passes.
	add(pre, &expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{0}}, &expr.Counter{}, probetest.Drop)
	add(fwd, iifname("eth0"), l4proto(unix.IPPROTO_TCP), &expr.Counter{}, jump(expr.VerdictJump, "from_client"))
	add(fwd, saddr, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 51, 100, 7}}, &expr.Counter{}, jump(expr.VerdictJump, "never"))
	add(fwd, iifname("eth0"), probetest.CtState(expr.CtStateBitNEW, expr.CmpOpNeq), &expr.Counter{}, probetest.Accept)
	add(fwd, &expr.Counter{}, jump(expr.VerdictJump, "replies"))
	add(fromClient, probetest.CtState(expr.CtStateBitINVALID, expr.CmpOpNeq), &expr.Counter{}, probetest.Drop)
	add(fromClient, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictReturn})
	// The ct state invalid drop, behind a jump.
	add(replies, probetest.CtState(expr.CtStateBitINVALID, expr.CmpOpNeq), &expr.Counter{}, probetest.Drop)
	add(replies, saddr, &expr.Lookup{SourceRegister: 1, SetName: servers.Name, SetID: servers.ID}, &expr.Counter{}, jump(expr.VerdictGoto, "established"))
	add(established, probetest.CtState(expr.CtStateBitESTABLISHED, expr.CmpOpNeq), &expr.Counter{}, probetest.Accept)
	add(never, &expr.Counter{}, probetest.Drop)
	// What asym cannot know statically: a random number, and rt (which
	// google/nftables cannot read back, so asym sees an unknown expression).
	add(post, &expr.Numgen{Register: 1, Modulus: 2, Type: unix.NFT_NG_RANDOM}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: probetest.U32(0)}, &expr.Counter{})
	add(post, &expr.Rt{Register: 1, Key: expr.RtTCPMSS}, &expr.Cmp{Op: expr.CmpOpGt, Register: 1, Data: []byte{0, 0}}, &expr.Counter{})

	// What iptables-nft writes: xt matches in table ip filter.
	ipf := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "filter"})
	fw := probetest.BaseChain(c, ipf, "FORWARD", nftables.ChainHookForward, 10)
	c.AddRule(&nftables.Rule{Table: ipf, Chain: fw, Exprs: []expr.Any{
		&expr.Match{Name: "tcp", Info: &xt.Tcp{SrcPorts: [2]uint16{0, 0xffff}, DstPorts: [2]uint16{0, 0xffff}, FlagsMask: probetest.SYN | probetest.ACK, FlagsCmp: probetest.SYN}},
		&expr.Counter{}}})
	c.AddRule(&nftables.Rule{Table: ipf, Chain: fw, Exprs: []expr.Any{probetest.XtConntrack(uint16(expr.CtStateBitINVALID), false), &expr.Counter{}, probetest.Drop}})
	c.AddRule(&nftables.Rule{Table: ipf, Chain: fw, Exprs: []expr.Any{&expr.Match{Name: "comment", Info: ptr(xt.Comment("asym"))}, &expr.Counter{}}})
	if err := c.Flush(); err != nil {
		t.Fatalf("load the router's ruleset: %v", err)
	}

	v := firewall.ProbePath(fwCtx(t), n.tg, flowA, pathCrossing)
	t.Logf("%s", strings.Join(v.Lines, "\n"))
	// The chain nothing on the flow's way jumps to is never fetched: one
	// request for the tables, one per family for the chain headers, one
	// per chain fetched, two for the set.
	if r := v.Read; r == nil || r.Chains != 9 || r.Fetched != 8 || r.Requests != 1+2+8+2 {
		t.Errorf("read %+v: want 9 chains listed, all but `never` fetched, 13 requests", v.Read)
	}
	comparePaths(t, n, func() map[string]uint64 { return nftCounters(t, n.router) })
}

func ptr[T any](v T) *T { return &v }

// TestPathWalkMatchesKernelLegacy: the same shape in iptables-legacy.
func TestPathWalkMatchesKernelLegacy(t *testing.T) {
	n := newPathNet(t)
	// The router tracks connections only when a ruleset asks: the
	// conntrack match of the legacy table does.
	invalid := labxt.Conntrack(3, labxt.StateInvalid, false)
	probetest.Do(t, n.router.Handle, func() error {
		return labxt.Table{Name: "filter", Chains: []labxt.Chain{
			{Name: "FORWARD", Policy: "DROP", Rules: []labxt.Rule{
				{In: "eth0", Proto: unix.IPPROTO_TCP, Target: labxt.Jump("from_client")},
				{Src: netip.MustParsePrefix("198.51.100.7/32"), Target: labxt.Jump("never")},
				{In: "eth0", Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateNew, false)}, Target: labxt.Accept},
				{Target: labxt.Jump("replies")},
			}},
			{Name: "from_client", Rules: []labxt.Rule{{Matches: []labxt.Match{invalid}, Target: labxt.Drop}, {Target: labxt.Return}}},
			{Name: "replies", Rules: []labxt.Rule{
				{Matches: []labxt.Match{invalid}, Target: labxt.Drop},
				{Src: netip.MustParsePrefix("203.0.113.0/24"), Matches: []labxt.Match{labxt.Comment("servers")}, Target: labxt.Goto("established")},
			}},
			{Name: "established", Rules: []labxt.Rule{{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateEstablished, false)}, Target: labxt.Accept}}},
			{Name: "never", Rules: []labxt.Rule{{Target: labxt.Drop}}},
		}}.Install()
	})
	v := firewall.ProbePath(fwCtx(t), n.tg, flowA, pathCrossing)
	t.Logf("%s", strings.Join(v.Lines, "\n"))
	for _, p := range v.Paths {
		if slices.ContainsFunc(p.Hits, func(h evidence.PathHit) bool { return h.Chain == "never" }) {
			t.Errorf("the %s %s path reaches chain never: %+v", p.Direction, p.Case, p.Hits)
		}
	}
	comparePaths(t, n, func() map[string]uint64 { return legacyCounters(t, n.tg) })
}

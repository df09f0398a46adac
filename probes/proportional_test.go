package probes_test

// The large-node issue's required test: a check's evidence stays the size
// of what concerns the flow. The same host is checked twice, the second
// time with many more firewall rules and chains, policy rules and
// interfaces that have nothing to do with the flow; the report may grow
// only by the digits of the counts that say how many others there are,
// and the firewall must fetch no chain the flow cannot reach.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"regexp"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// unrelated adds, past what is there, n firewall rules in chains the flow
// cannot reach (and n/10 in a base chain on its way that cannot match it),
// n policy rules for other traffic, and n/100 interfaces with addresses of
// other subnets. from numbers them, so that calls do not collide.
func unrelated(t *testing.T, ns probetest.NS, from, n int) {
	c := probetest.Nft(t, ns)
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: fmt.Sprintf("other%d", from)})
	in := probetest.BaseChain(c, tb, "input", nftables.ChainHookInput, 10)
	// The chains the base chain may jump to come first: a jump needs its
	// chain to exist.
	for ch := range 10 {
		svc := c.AddChain(&nftables.Chain{Name: fmt.Sprintf("svc%d", ch), Table: tb})
		for i := range n / 10 {
			c.AddRule(&nftables.Rule{Table: tb, Chain: svc, Exprs: append(probetest.CtInvalidDrop()[:3:3],
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 18, byte(ch), byte(i)}}, &expr.Counter{}, probetest.Drop)})
			if i%100 == 99 {
				flushRules(t, c)
			}
		}
		flushRules(t, c)
	}
	for i := range n / 10 {
		c.AddRule(&nftables.Rule{Table: tb, Chain: in, Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(uint16(10000 + from + i))},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: fmt.Sprintf("svc%d", i%10)},
		}})
		if i%100 == 99 {
			flushRules(t, c)
		}
	}
	flushRules(t, c)
	h := probetest.Netlink(t, ns.Handle)
	for i := range n {
		r := scaleRule(scaleV4, from+i)
		r.Family, r.Priority, r.Table = unix.AF_INET, 2000+from+i, 1001
		if r.Src != nil {
			r.Src = scaleIPNet(netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte((from + i) >> 8), byte(from + i)}), 32))
		}
		if err := h.RuleAdd(r); err != nil {
			t.Fatalf("add policy rule %d: %v", from+i, err)
		}
	}
	for i := range n / 100 {
		name, peer := fmt.Sprintf("u%d", from+i), fmt.Sprintf("w%d", from+i)
		if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer}); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
		probetest.SetUp(t, h, probetest.Link{Name: name, Addrs: []string{fmt.Sprintf("198.19.%d.1/24", (from+i)%256)}})
	}
}

// flushRules sends what c holds: a batch must fit in one sendmsg.
func flushRules(t *testing.T, c *nftables.Conn) {
	if err := c.Flush(); err != nil {
		t.Fatalf("add unrelated firewall rules: %v", err)
	}
}

// checkEvidence runs every probe of every step, as asym check does, and
// returns the evidence and its JSON.
func checkEvidence(t *testing.T, ns probetest.NS, f flow.Flow) (evidence.Evidence, []byte) {
	tg, err := probes.OpenTarget(ns.Name, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	c := probes.NewCollector(tg, f, "")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for _, s := range playbook.Steps {
		for _, id := range s.Probes {
			if r := c.Run(ctx, id).Rep(); !r.OK() {
				t.Fatalf("probe %s: %s: %s", id, r.Status, r.Reason)
			}
		}
	}
	ev := c.Evidence()
	// Times differ from run to run, and the kernel's counters count
	// traffic (new interfaces solicit routers): neither is configuration
	// that could grow the report.
	for _, r := range ev.Reports() {
		r.Rep().Elapsed = 0
	}
	out := ev
	out.Counters = nil
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return ev, b
}

func TestReportProportional(t *testing.T) {
	f, err := flow.ParseString(scaleV4.flow)
	if err != nil {
		t.Fatal(err)
	}
	host := scaleBuildHost(t, scaleV4)
	probetest.TrackConntrack(t, host)
	unrelated(t, host, 0, 100)
	before, small := checkEvidence(t, host, f)
	unrelated(t, host, 100, 3000)
	after, large := checkEvidence(t, host, f)
	t.Logf("evidence: %d bytes with 100 unrelated policy rules, 1 interface and 1,010 firewall rules; %d bytes with 3,100, 31 and 4,120", len(small), len(large))

	// Counts (and counters) have other digits; nothing else may change.
	digits := regexp.MustCompile(`[0-9]+`)
	a, b := digits.ReplaceAllString(string(small), "0"), digits.ReplaceAllString(string(large), "0")
	if a != b {
		i := 0
		for i < len(a) && i < len(b) && a[i] == b[i] {
			i++
		}
		t.Errorf("the evidence changed with rules and interfaces that do not concern the flow (%d → %d bytes), first at:\n%s\n%s",
			len(small), len(large), a[max(0, i-80):min(len(a), i+80)], b[max(0, i-80):min(len(b), i+80)])
	}
	rb, ra := before.Firewall.Read, after.Firewall.Read
	t.Logf("firewall read before %+v after %+v", rb, ra)
	// One more base chain on the flow's way (the second unrelated table's
	// input chain) is fetched; none of the 10 chains it could jump to.
	if ra.Fetched != rb.Fetched+1 || ra.Requests != rb.Requests+1 {
		t.Errorf("the firewall fetched %d chains with %d requests, before %d with %d: want one more base chain, no chain the flow cannot reach",
			ra.Fetched, ra.Requests, rb.Fetched, rb.Requests)
	}
	if len(after.Rules.Rules) != len(before.Rules.Rules) || after.Rules.Others != before.Rules.Others+3000 {
		t.Errorf("policy rules reported %d (others %d), before %d (others %d)", len(after.Rules.Rules), after.Rules.Others, len(before.Rules.Rules), before.Rules.Others)
	}
	if len(after.Host.Ifaces) != len(before.Host.Ifaces) || after.Host.OtherIfaces != before.Host.OtherIfaces+30 {
		t.Errorf("interfaces reported %d (others %d), before %d (others %d)", len(after.Host.Ifaces), after.Host.OtherIfaces, len(before.Host.Ifaces), before.Host.OtherIfaces)
	}
}

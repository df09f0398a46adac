package firewall

// The walk on rulesets built in memory: what the kernel tests cannot show
// one packet at a time (bounds, may-match both ways, NAT for the hooks
// after, the connection before conntrack's hook).

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// memRule is a rule of a ruleset in memory.
type memRule struct {
	chain  string
	handle uint64
	exprs  []expr.Any
}

func (r *memRule) eval(p *packet) ruleEval {
	return evalRule(nftables.TableFamilyINet, exprSlice(toAny(r.exprs)), p, nil)
}

func (r *memRule) hit() evidence.PathHit {
	sc := scanRule(nftables.TableFamilyINet, toAny(r.exprs), nil)
	return evidence.PathHit{Source: "nftables", Family: "inet", Table: "t", Chain: r.chain, Handle: r.handle, Verdict: sc.verdict, Text: sc.text}
}

func (r *memRule) key() ruleKey {
	return ruleKey{source: "nftables", family: "inet", table: "t", chain: r.chain, handle: r.handle}
}

// memTable is a table of chains in memory that counts its fetches.
type memTable struct {
	chains  map[string]*pathChain
	fetched []string
}

// chain adds a chain of rules; hook "" makes a regular chain.
func (m *memTable) chain(name, hook string, prio int, policy string, nat bool, rules ...[]expr.Any) *pathChain {
	c := &pathChain{source: "nftables", family: "inet", table: "t", name: name, hook: hook, priority: prio,
		base: hook != "", policy: policy, nat: nat, header: "table inet t  chain " + name}
	var rs []pathRule
	for i, e := range rules {
		rs = append(rs, &memRule{chain: name, handle: uint64(i + 1), exprs: e})
	}
	c.fetch = func() ([]pathRule, error) { m.fetched = append(m.fetched, name); return rs, nil }
	c.jump = func(to string) *pathChain { return m.chains[to] }
	m.chains[name] = c
	return c
}

func (m *memTable) hooks() hookChains {
	return func(hook string) []*pathChain {
		var out []*pathChain
		for _, c := range m.chains {
			if c.base && c.hook == hook {
				out = append(out, c)
			}
		}
		sortChains(out)
		return out
	}
}

var memFlow = flow.Flow{Proto: flow.TCP, Src: netip.MustParseAddrPort("192.0.2.10:40000"), Dst: netip.MustParseAddrPort("203.0.113.10:8080")}

var memRouter = Crossing{Role: evidence.RoleMiddle, Request: Leg{In: "eth0", Out: "eth1", Back: "eth0"}, Reply: Leg{In: "eth1", Out: "eth0", Back: "eth1"}}

func memIfaces(name string) ifRef {
	if name == "" {
		return ifRef{}
	}
	return ifRef{name: name, index: map[string]int{"eth0": 2, "eth1": 3}[name], known: true}
}

func daddrIs(a string) []expr.Any {
	return []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: netip.MustParseAddr(a).AsSlice()}}
}

func verdict(k expr.VerdictKind, chain string) *expr.Verdict {
	return &expr.Verdict{Kind: k, Chain: chain}
}

// TestWalkMayMatchFollowsBothWays: a rule asym cannot evaluate (a rate)
// that jumps is followed, and so is the rule after it; the drop after it
// may happen, not surely.
func TestWalkMayMatchFollowsBothWays(t *testing.T) {
	m := &memTable{chains: map[string]*pathChain{}}
	m.chain("fwd", "forward", 0, "accept", false,
		[]expr.Any{&expr.Limit{Rate: 10, Unit: expr.LimitTimeSecond}, verdict(expr.VerdictJump, "limited")},
		[]expr.Any{&expr.Counter{}, probetest.Drop})
	m.chain("limited", "", 0, "", false, []expr.Any{probetest.Accept})
	m.chain("never", "", 0, "", false, []expr.Any{probetest.Drop})
	w := walkFlow(memFlow, memRouter, m.hooks(), memIfaces)
	p := w.paths[0]
	if len(p.Hits) != 3 || !p.Hits[0].Maybe || p.Hits[0].Why != "limit" || p.Hits[1].Chain != "limited" || p.Hits[1].Certain || p.Hits[2].Certain {
		t.Fatalf("hits %+v", p.Hits)
	}
	if p.Verdict != "drop" || p.Certain || p.By != 2 {
		t.Errorf("verdict %q certain %v by %d: want a drop that may happen, by the last rule", p.Verdict, p.Certain, p.By)
	}
	if slices.Contains(m.fetched, "never") {
		t.Errorf("a chain nothing jumps to was fetched: %v", m.fetched)
	}
}

// TestWalkBounds: jumps nested deeper than the kernel's stack stop the
// walk, which says so.
func TestWalkBounds(t *testing.T) {
	m := &memTable{chains: map[string]*pathChain{}}
	m.chain("fwd", "forward", 0, "accept", false, []expr.Any{verdict(expr.VerdictJump, "c0")})
	for i := range 20 {
		m.chain(fmt.Sprintf("c%d", i), "", 0, "", false, []expr.Any{verdict(expr.VerdictJump, fmt.Sprintf("c%d", i+1))})
	}
	w := walkFlow(memFlow, memRouter, m.hooks(), memIfaces)
	if got := w.paths[0].Truncated; got != "jumps nested deeper than 16" {
		t.Errorf("truncated %q", got)
	}
	if len(m.fetched) > maxDepth {
		t.Errorf("fetched %d chains past the bound: %v", len(m.fetched), m.fetched)
	}
}

// TestWalkNATAndConntrack: a DNAT in prerouting rewrites the request for
// the forward hook; the tracked reply comes from the translated address;
// before conntrack's hook every packet is invalid to ct state.
func TestWalkNATAndConntrack(t *testing.T) {
	m := &memTable{chains: map[string]*pathChain{}}
	to := netip.MustParseAddr("198.51.100.5")
	m.chain("raw", "prerouting", -300, "accept", false, append(probetest.CtState(expr.CtStateBitINVALID, expr.CmpOpNeq), &expr.Counter{}))
	m.chain("dstnat", "prerouting", -100, "accept", true, append(daddrIs("203.0.113.10"),
		&expr.Immediate{Register: 1, Data: to.AsSlice()},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1}))
	m.chain("fwd", "forward", 0, "drop", false,
		append(daddrIs("198.51.100.5"), probetest.CtState(expr.CtStateBitNEW, expr.CmpOpNeq)[0], probetest.CtState(expr.CtStateBitNEW, expr.CmpOpNeq)[1],
			probetest.CtState(expr.CtStateBitNEW, expr.CmpOpNeq)[2], probetest.Accept),
		append([]expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: to.AsSlice()}}, probetest.CtState(expr.CtStateBitESTABLISHED, expr.CmpOpNeq)[0],
			probetest.CtState(expr.CtStateBitESTABLISHED, expr.CmpOpNeq)[1], probetest.CtState(expr.CtStateBitESTABLISHED, expr.CmpOpNeq)[2], probetest.Accept))
	w := walkFlow(memFlow, memRouter, m.hooks(), memIfaces)
	req, tracked, untracked := w.paths[0], w.paths[1], w.paths[2]
	var chains []string
	for _, h := range req.Hits {
		if !h.Policy {
			chains = append(chains, h.Chain)
		}
	}
	if req.Verdict != "accept" || !req.Certain || !slices.Equal(chains, []string{"raw", "dstnat", "fwd"}) {
		t.Errorf("request meets %v: %+v", chains, req)
	}
	// The reply comes from where the request was sent, and conntrack
	// knows it; its NAT chain does not run (only a connection's first
	// packet's does).
	if tracked.Verdict != "accept" || !tracked.Certain || slices.ContainsFunc(tracked.Hits, func(h evidence.PathHit) bool { return h.Chain == "dstnat" }) {
		t.Errorf("tracked reply: %+v", tracked)
	}
	if untracked.Verdict != "drop" || !untracked.Certain || untracked.Decider() == nil || !untracked.Decider().Policy {
		t.Errorf("a reply without state falls to the forward policy: %+v", untracked)
	}
	if tracked.Packet != "tcp 198.51.100.5:8080 → 192.0.2.10:40000 [S.] in eth1" {
		t.Errorf("tracked reply packet %q", tracked.Packet)
	}
}

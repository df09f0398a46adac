package firewall

// The nftables ruleset as the walk reads it: tables and chain headers
// listed once (one request each, and one per family for the chains), then
// the rules of a chain only when a packet of the flow reaches it.

import (
	"cmp"
	"fmt"
	"slices"

	"asym/evidence"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftSource is one namespace's nftables ruleset, read as the walk needs it.
type nftSource struct {
	conn   *netlink.Conn  // rules, one chain at a time
	gconn  *nftables.Conn // sets and named counters (a lasting socket)
	tables []*nftTable    // in the kernel's order
	read   *evidence.FirewallRead
}

// nftTable is one table and its chains.
type nftTable struct {
	src     *nftSource
	tb      *nftables.Table
	dormant bool // NFT_TABLE_F_DORMANT: its chains are not hooked
	reader  *tableReader
	chains  map[string]*pathChain
	order   []*pathChain
}

// openNFT lists the tables and the chains of families inside the
// namespace nsfd; the sockets stay open until close.
func openNFT(nsfd int, families []nftables.TableFamily, read *evidence.FirewallRead) (*nftSource, error) {
	s := &nftSource{read: read}
	var err error
	if s.gconn, err = nftables.New(nftables.WithNetNSFd(nsfd), nftables.AsLasting()); err != nil {
		return nil, nftErr("open nftables", err)
	}
	if s.conn, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsfd}); err != nil {
		s.close()
		return nil, nftErr("open nftables", err)
	}
	tables, err := s.gconn.ListTables()
	read.Requests++
	if err != nil {
		s.close()
		return nil, nftErr("list nftables tables", err)
	}
	byKey := map[string]*nftTable{}
	for _, tb := range tables {
		t := &nftTable{src: s, tb: tb, dormant: tb.Flags&unix.NFT_TABLE_F_DORMANT != 0, chains: map[string]*pathChain{}}
		t.reader = newTableReader(s.gconn, tb)
		t.reader.counted = read
		s.tables = append(s.tables, t)
		byKey[tableKey(tb)] = t
	}
	for _, fam := range families {
		if !slices.ContainsFunc(s.tables, func(t *nftTable) bool { return t.tb.Family == fam }) {
			continue // no table of this family: nothing to list
		}
		chains, err := listChains(s.conn, fam)
		read.Requests++
		if err != nil {
			s.close()
			return nil, nftErr("list nftables chains", err)
		}
		read.Chains += len(chains)
		for _, ch := range chains {
			if t := byKey[tableKey(ch.Table)]; t != nil {
				t.add(ch)
			}
		}
	}
	return s, nil
}

func (s *nftSource) close() {
	if s.conn != nil {
		s.conn.Close()
	}
	if s.gconn != nil {
		s.gconn.CloseLasting()
	}
}

// add makes a pathChain of a listed chain.
func (t *nftTable) add(ch *nftables.Chain) {
	fam := familyName(t.tb.Family)
	c := &pathChain{source: evidence.SourceNftables, family: fam, table: t.tb.Name, name: ch.Name, policy: chainPolicy(ch)}
	if ch.Hooknum != nil && !t.dormant {
		c.base, c.hook = true, hookName(t.tb.Family, uint32(*ch.Hooknum))
		if ch.Priority != nil {
			c.priority = int(*ch.Priority)
		}
		c.nat = ch.Type == nftables.ChainTypeNAT
	}
	c.header = nftChainHeader(evidence.FirewallRule{Family: fam, Table: t.tb.Name, Chain: ch.Name, Hook: c.hook, Priority: c.priority},
		c.policy, ch.Device, t.dormant)
	c.fetch = func() ([]pathRule, error) { return t.fetch(c) }
	c.jump = func(name string) *pathChain { return t.chains[name] }
	t.chains[ch.Name] = c
	t.order = append(t.order, c)
}

// fetch reads one chain's rules.
func (t *nftTable) fetch(c *pathChain) ([]pathRule, error) {
	raws, err := fetchRules(t.src.conn, t.tb.Family, t.tb.Name, c.name)
	t.src.read.Requests++
	if err != nil {
		return nil, nftErr(fmt.Sprintf("list the rules of chain %s %s", tableKey(t.tb), c.name), err)
	}
	t.src.read.Fetched++
	t.src.read.Rules += len(raws)
	out := make([]pathRule, len(raws))
	for i := range raws {
		out[i] = &nftRule{t: t, c: c, raw: raws[i]}
	}
	return out, nil
}

// baseChains are the hooked chains of the tables of families for a hook.
func (s *nftSource) baseChains(hook string, families []nftables.TableFamily) []*pathChain {
	var out []*pathChain
	for _, t := range s.tables {
		if !slices.Contains(families, t.tb.Family) {
			continue
		}
		for _, c := range t.order {
			if c.base && c.hook == hook {
				out = append(out, c)
			}
		}
	}
	return out
}

// sortChains orders base chains by priority, keeping the order they came
// in for equal priorities.
func sortChains(cs []*pathChain) {
	slices.SortStableFunc(cs, func(a, b *pathChain) int { return cmp.Compare(a.priority, b.priority) })
}

// nftRule is a fetched nftables rule.
type nftRule struct {
	t   *nftTable
	c   *pathChain
	raw rawRule
}

func (r *nftRule) eval(p *packet) ruleEval {
	return evalRule(r.t.tb.Family, &r.raw, p, r.t.reader.set)
}

func (r *nftRule) key() ruleKey {
	return ruleKey{source: evidence.SourceNftables, family: r.c.family, table: r.c.table, chain: r.c.name, handle: r.raw.handle}
}

// hit renders the rule as nft list does, with the counter that counts it.
func (r *nftRule) hit() evidence.PathHit {
	sc := scanRule(r.t.tb.Family, r.raw.all(), r.t.reader.set)
	h := evidence.PathHit{Source: sc.source, Family: r.c.family, Table: r.c.table, Chain: r.c.name, Handle: r.raw.handle,
		Verdict: sc.verdict, Kind: sc.kind, Text: sc.text}
	if h.Source == "" {
		h.Source = evidence.SourceNftables
	}
	ctr := sc.anyCounter
	if ctr == nil && sc.anyCounterName != "" {
		ctr, _ = r.t.reader.namedCounter(sc.anyCounterName)
	}
	if ctr != nil {
		h.HasCounter, h.Packets, h.Bytes = true, ctr.Packets, ctr.Bytes
	}
	return h
}

// firewallRule is the rule as the probe's Rules report it, when it is of a
// kind asym looks for.
func (r *nftRule) firewallRule() (evidence.FirewallRule, bool) {
	return r.t.reader.rule(r.c, &r.raw)
}

// natRule is the rule as the probe's NAT reports it, when it translates.
func (r *nftRule) natRule() (evidence.NATRule, bool) {
	nr, ok := natRule(r.t.tb.Family, r.raw.all())
	if !ok {
		return nr, false
	}
	nr.Source, nr.Family, nr.Table, nr.Chain, nr.Handle = evidence.SourceNftables, r.c.family, r.c.table, r.c.name, r.raw.handle
	nr.Hook, nr.Priority = r.c.hook, r.c.priority
	return nr, true
}

// markRules are the mark statements of the rule.
func (r *nftRule) markRules() []evidence.MarkRule {
	out := markRules(r.raw.all())
	for i := range out {
		mr := &out[i]
		mr.Family, mr.Table, mr.Chain, mr.Handle, mr.Hook, mr.Priority = r.c.family, r.c.table, r.c.name, r.raw.handle, r.c.hook, r.c.priority
	}
	return out
}

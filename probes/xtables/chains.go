package xtables

import "sort"

// chainSpan is a chain as laid out in the entries: its name, its rules and,
// for a built-in chain, the policy rule at its underflow.
type chainSpan struct {
	name   string
	hook   int // -1 for a user chain
	head   uint32
	end    uint32 // the offset of the next chain's head, or the table's end
	rules  []entry
	policy *entry
	closed bool // the policy was seen: what follows belongs to no chain
}

// splitChains finds the chains of a table the way libiptc does
// (libiptc.c cache_add_entry): a built-in chain starts at its hook entry
// and ends with the policy rule at its underflow; a user chain starts with
// an ERROR target that names it and ends before the next chain, and its
// last rule, an unconditional RETURN that iptables adds, is not shown; the
// last entry, an ERROR target, ends the table. Entries that no chain
// reaches (after a policy, before the next head) are counted in stray.
func splitChains(ti tableInfo, entries []entry) (chains []*chainSpan, stray int) {
	// Two hooks starting at one entry (iptables never writes that): the
	// lower one names the chain.
	hookAt := map[uint32]int{}
	for h := numHooks - 1; h >= 0; h-- {
		if ti.validHooks&(1<<h) != 0 {
			hookAt[ti.hookEntry[h]] = h
		}
	}
	var cur *chainSpan
	start := func(c *chainSpan) {
		endUserChain(cur)
		if cur != nil {
			cur.end = c.head
		}
		cur = c
		chains = append(chains, c)
	}
	for i := range entries {
		e := &entries[i]
		if e.target.name == targetError {
			if i == len(entries)-1 {
				break
			}
			start(&chainSpan{name: cString(e.target.data), hook: -1, head: e.offset})
			continue
		}
		if h, ok := hookAt[e.offset]; ok {
			start(&chainSpan{name: hookNames[h], hook: h, head: e.offset})
		}
		switch {
		case cur == nil || cur.closed:
			stray++
		case cur.hook >= 0 && ti.underflow[cur.hook] == e.offset:
			cur.policy, cur.closed = e, true
		default:
			cur.rules = append(cur.rules, *e)
		}
	}
	endUserChain(cur)
	if cur != nil {
		cur.end = ti.size
	}
	return chains, stray
}

// endUserChain takes the RETURN that closes a user chain off its rules.
func endUserChain(c *chainSpan) {
	if c == nil || c.hook >= 0 || len(c.rules) == 0 {
		return
	}
	last := c.rules[len(c.rules)-1]
	if v, ok := last.target.verdict(); ok && last.target.name == targetStandard && v == verdictReturn && unconditional(last) {
		c.rules = c.rules[:len(c.rules)-1]
	}
}

// unconditional says whether an entry matches every packet: no matches and
// an all-zero ip part (ip_tables.c unconditional()).
func unconditional(e entry) bool {
	p := e.ip
	if len(e.matches) > 0 || p.proto != 0 || p.flags != 0 || p.invflags != 0 || p.tos != 0 {
		return false
	}
	for _, b := range [][]byte{p.src.AsSlice(), p.dst.AsSlice(), p.srcMask, p.dstMask, p.in.name[:], p.out.name[:], p.in.mask[:], p.out.mask[:]} {
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
	}
	return true
}

// chainIndex resolves jump offsets to chain names.
type chainIndex []*chainSpan

func newChainIndex(chains []*chainSpan) chainIndex {
	idx := chainIndex(append([]*chainSpan(nil), chains...))
	sort.Slice(idx, func(i, j int) bool { return idx[i].head < idx[j].head })
	return idx
}

// at names the chain a jump to offset lands in, as libiptc does
// (iptcc_find_chain_by_offset: any offset inside the chain).
func (idx chainIndex) at(offset uint32) (string, bool) {
	i := sort.Search(len(idx), func(i int) bool { return idx[i].head > offset }) - 1
	if i < 0 || offset >= idx[i].end {
		return "", false
	}
	return idx[i].name, true
}

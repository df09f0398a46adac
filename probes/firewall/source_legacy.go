package firewall

// iptables-legacy tables as the walk reads them. The kernel hands out a
// whole table at once (IPT_SO_GET_ENTRIES has no per-chain form), so the
// tables are decoded whole; the walk still evaluates only the chains the
// flow reaches, and reports only their rules.

import (
	"net/netip"
	"strings"

	"asym/evidence"
	"asym/probes/xtables"
)

// legacyChains makes path chains of the legacy tables of one family
// ("ip" or "ip6"): the base chains by hook.
func legacyChains(rs *xtables.Ruleset, family string) (base []*pathChain) {
	for _, t := range rs.Tables {
		if t.Family != family || t.Err != nil {
			continue
		}
		byName := map[string]*pathChain{}
		tool := "iptables-legacy"
		if family == "ip6" {
			tool = "ip6tables-legacy"
		}
		for _, ch := range t.Chains {
			c := &pathChain{source: evidence.SourceIptablesLegacy, family: family, table: t.Name, name: ch.Name,
				hook: ch.Hook, priority: ch.Priority, base: ch.Hook != "", policy: strings.ToLower(ch.Policy),
				nat: t.Name == "nat", header: tool + " table " + t.Name + "  chain " + ch.Name}
			if ch.Policy != "" {
				c.header += " (policy " + ch.Policy + ")"
				c.policyCounter, c.policyPackets, c.policyBytes = true, ch.PolicyPackets, ch.PolicyBytes
			}
			rules := make([]pathRule, len(ch.Rules))
			for i := range ch.Rules {
				rules[i] = &legacyRule{c: c, r: ch.Rules[i], v6: family == "ip6"}
			}
			c.fetch = func() ([]pathRule, error) { return rules, nil }
			c.jump = func(name string) *pathChain { return byName[name] }
			byName[ch.Name] = c
			if c.base {
				base = append(base, c)
			}
		}
	}
	return base
}

// legacyRule is one iptables-legacy rule.
type legacyRule struct {
	c  *pathChain
	r  xtables.Rule
	v6 bool
}

func (l *legacyRule) key() ruleKey {
	return ruleKey{source: evidence.SourceIptablesLegacy, family: l.c.family, table: l.c.table, chain: l.c.name, handle: uint64(l.r.Position)}
}

func (l *legacyRule) hit() evidence.PathHit {
	return evidence.PathHit{Source: evidence.SourceIptablesLegacy, Family: l.c.family, Table: l.c.table, Chain: l.c.name,
		Handle: uint64(l.r.Position), Verdict: l.r.Verdict, Kind: l.r.Kind, HasCounter: true, Packets: l.r.Packets, Bytes: l.r.Bytes, Text: l.r.Text}
}

// eval runs the rule as ipt_do_table does: the ip part, each match in
// order, then the target.
func (l *legacyRule) eval(p *packet) ruleEval {
	reach, why := l.selects(p)
	for _, m := range l.r.Exts {
		if reach == no {
			break
		}
		t, w := xtMatchEval(p, m.Name, m.Revision, m.Data)
		if t == maybe && why == "" {
			why = w
		}
		reach = reach.and(t)
	}
	out := ruleEval{match: reach, why: why}
	if reach == no {
		return out
	}
	v := l.r.Verdict
	if l.r.TargetExt.Name != "" {
		// An extension target (REJECT, MARK, DNAT, …) acts, then decides
		// or lets the packet go on.
		v = xtTargetEval(p, l.r.TargetExt.Name, l.r.TargetExt.Revision, l.r.TargetExt.Data, reach)
	}
	if v != "" {
		w, chain, _ := cutWord(v)
		out.verdicts = []verdictOpt{{name: w, chain: chain, reach: yes}}
	}
	return out
}

// selects evaluates the ip part (ip_packet_match, ip6_packet_match).
func (l *legacyRule) selects(p *packet) (tri, string) {
	s := l.r.Select
	out := yes
	check := func(t tri, invert bool) {
		if invert {
			t = t.not()
		}
		out = out.and(t)
	}
	check(addrIn(p.src, s.Src, s.SrcMask), s.InvSrc)
	check(addrIn(p.dst, s.Dst, s.DstMask), s.InvDst)
	check(ifaceIs(p.iif, s.In, s.InMask), s.InvIn)
	check(ifaceIs(p.oif, s.Out, s.OutMask), s.InvOut)
	if s.Proto != 0 {
		if p.unknown {
			check(maybe, false)
		} else {
			check(triOf(uint16(p.proto) == s.Proto), s.InvProto)
		}
	}
	if s.Fragment {
		check(no, s.InvFragment) // the flow's packets are first fragments or whole
	}
	if out == maybe {
		return maybe, "the packet's address or interface"
	}
	return out, ""
}

// addrIn matches an address under a mask; an unknown address may.
func addrIn(a, want netip.Addr, mask []byte) tri {
	zero := true
	for _, b := range mask {
		zero = zero && b == 0
	}
	if zero {
		return yes
	}
	if !a.IsValid() {
		return maybe
	}
	return triOf(maskedEqual(a, want.AsSlice(), mask))
}

// ifaceIs matches an interface name as the kernel does: byte by byte under
// the mask, the name zero-padded.
func ifaceIs(i ifRef, want, mask [16]byte) tri {
	zero := true
	for _, b := range mask {
		zero = zero && b == 0
	}
	if zero {
		return yes
	}
	if !i.known {
		return maybe
	}
	var name [16]byte
	copy(name[:], i.name)
	for k := range name {
		if (name[k]^want[k])&mask[k] != 0 {
			return no
		}
	}
	return yes
}

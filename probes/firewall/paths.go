package firewall

// The walks of one probe and what they make of the ruleset: the paths,
// and the rules on them that the analyzers read (drop rules of the kinds
// asym knows, NAT, marks).

import (
	"fmt"
	"strings"

	"asym/evidence"
	"asym/flow"
	"asym/probes/xtables"

	"github.com/google/nftables"
)

// walked is what the walks of one flow found.
type walked struct {
	paths []evidence.FirewallPath
	b     *budget
	notes []string
}

// walkFlow walks every case of the flow: the request's first packet, the
// reply with and without the request seen here, the ICMP error a router
// sends about the request; and, for its NAT rules only, the reply taken
// for a new connection (a rule written for the other side's connections).
func walkFlow(f flow.Flow, cr Crossing, chains hookChains, ifr func(string) ifRef) walked {
	b := &budget{hit: map[ruleKey]bool{}}
	var out walked
	out.b = b
	add := func(w *walk) {
		out.paths = append(out.paths, w.finish())
		out.notes = append(out.notes, w.notes...)
	}
	req := walkCase(b, f, cr, evidence.PathFirst, evidence.DirRequest, cr.steps(evidence.DirRequest, ifr), chains, nil)
	add(req)
	for _, c := range []evidence.PathCase{evidence.PathTracked, evidence.PathUntracked} {
		add(walkCase(b, f, cr, c, evidence.DirReply, cr.steps(evidence.DirReply, ifr), chains, req))
	}
	if cr.Role == evidence.RoleMiddle || cr.Role == "" {
		add(walkCase(b, f, cr, evidence.PathICMPError, evidence.DirRequest, cr.errorSteps(ifr), chains, req))
	}
	back := caseOf(f.Reverse(), evidence.PathFirst, nil)
	back.headers()
	nw := newWalk(b, &back, evidence.DirReply, evidence.PathFirst)
	nw.anyHook = cr.Role == ""
	nw.run(cr.steps(evidence.DirReply, ifr), chains, nil, true)
	out.notes = append(out.notes, nw.notes...)
	return out
}

// families are the nftables families whose chains see the flow's packets.
func families(f flow.Flow) []nftables.TableFamily {
	switch {
	case !f.Src.Addr().IsValid():
		return []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}
	case f.Is6():
		return []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv6}
	}
	return []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4}
}

// legacyFamilies are the iptables-legacy families that do.
func legacyFamilies(f flow.Flow) []string {
	switch {
	case !f.Src.Addr().IsValid():
		return []string{"ip", "ip6"}
	case f.Is6():
		return []string{"ip6"}
	}
	return []string{"ip"}
}

// hookChainsOf merges the base chains of nftables and iptables-legacy for
// each hook, in priority order.
func hookChainsOf(nft *nftSource, legacy *xtables.Ruleset, f flow.Flow) hookChains {
	var old []*pathChain
	if legacy != nil {
		for _, fam := range legacyFamilies(f) {
			old = append(old, legacyChains(legacy, fam)...)
		}
	}
	byHook := map[string][]*pathChain{}
	return func(hook string) []*pathChain {
		if cs, ok := byHook[hook]; ok {
			return cs
		}
		var cs []*pathChain
		if nft != nil {
			cs = nft.baseChains(hook, families(f))
		}
		for _, c := range old {
			if c.hook == hook {
				cs = append(cs, c)
			}
		}
		sortChains(cs)
		byHook[hook] = cs
		return cs
	}
}

// fill puts what the walks met into the view: the drop rules of the kinds
// asym knows, the NAT rules (and how many others the fetched chains hold),
// the mark rules.
func (w walked) fill(v *evidence.FirewallView) {
	seenNAT := map[ruleKey]bool{}
	for _, c := range w.b.fetchedChains {
		for _, r := range c.rules {
			w.fillRule(v, r, seenNAT)
		}
	}
}

// headers are the lines that introduce the fetched chains, by chainKey.
func (w walked) headers() map[string]string {
	out := map[string]string{}
	for _, c := range w.b.fetchedChains {
		out[chainKey(c.source, c.family+" "+c.table+" "+c.name)] = c.header
	}
	return out
}

func (w walked) fillRule(v *evidence.FirewallView, r pathRule, seenNAT map[ruleKey]bool) {
	hit := w.b.hit[r.key()]
	switch r := r.(type) {
	case *nftRule:
		var nr evidence.NATRule
		isNAT := hasNAT(r.raw.names)
		if isNAT {
			nr, isNAT = r.natRule()
		}
		switch {
		case isNAT && hit && !seenNAT[r.key()]:
			seenNAT[r.key()] = true
			v.NAT = append(v.NAT, nr)
		case isNAT && !hit:
			v.NATOthers++
		}
		if !hit {
			return
		}
		if fr, ok := r.firewallRule(); ok {
			v.Rules = append(v.Rules, fr)
		}
		v.Marks = append(v.Marks, r.markRules()...)
	case *legacyRule:
		if hit && r.r.Kind != "" {
			c := r.c
			v.Rules = append(v.Rules, evidence.FirewallRule{
				Source: evidence.SourceIptablesLegacy, Family: c.family, Table: c.table, Chain: c.name,
				Hook: c.hook, Priority: c.priority, Handle: uint64(r.r.Position), Kind: r.r.Kind, Verdict: r.r.Verdict,
				HasCounter: true, Packets: r.r.Packets, Bytes: r.r.Bytes, Text: r.r.Text,
			})
		}
	}
}

// hasNAT says whether a rule holds a NAT statement, by its expressions'
// names, before asking natRule to decode and read it: most rules on a
// large ruleset's way hold none.
func hasNAT(names []string) bool {
	for _, n := range names {
		if n == "nat" || n == "masq" || n == "redir" {
			return true
		}
	}
	return false
}

// pathLines render the paths: each under its heading, its hits under
// their chains' headers (indented as deep as the jumps that lead there),
// then its verdict. A path that meets no rule is one line.
func pathLines(paths []evidence.FirewallPath, headers map[string]string) []string {
	var out []string
	for i := range paths {
		p := &paths[i]
		out = append(out, p.Heading())
		last := ""
		for _, h := range p.Hits {
			key := chainKey(h.Source, h.Where())
			if key != last {
				hd := headers[key]
				if hd == "" {
					hd = "table " + h.Where()
				}
				out = append(out, strings.Repeat("  ", h.Depth)+hd)
				last = key
			}
			out = append(out, h.Line())
		}
		out = append(out, p.Summary())
	}
	return out
}

// chainKey names a chain for its header: nftables chains (native and
// iptables-nft rules alike) apart from iptables-legacy ones, which may have
// the same names.
func chainKey(source, where string) string {
	if source == evidence.SourceIptablesLegacy {
		return "legacy " + where
	}
	return "nft " + where
}

// readLine says what the probe fetched: the measure of a walk that reads
// only what the flow can reach.
func readLine(r *evidence.FirewallRead, tables int) string {
	return fmt.Sprintf("# read %d of %d nftables chains (%d rules, %d sets) in %d tables with %d requests; %d iptables-legacy rules",
		r.Fetched, r.Chains, r.Rules, r.Sets, tables, r.Requests, r.Legacy)
}

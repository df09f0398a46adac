package firewall

// Running the walks within the caller's deadline, and writing what they
// found into the probe's view.

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"asym/evidence"
	"asym/flow"
	"asym/probes/xtables"

	"golang.org/x/sys/unix"
)

// walkResult is what the bounded walk hands back.
type walkResult struct {
	w       walked
	tables  int  // nftables tables
	nft     bool // nftables could be read
	headers map[string]string
	read    evidence.FirewallRead
}

// walkBounded walks on its own goroutine so that a kernel that does not
// answer cannot hold the caller past its deadline. The goroutine works on
// a duplicate of the namespace descriptor: if we give up and the caller
// then closes the namespace, the abandoned goroutine must not enter
// whatever namespace (or file) reuses that descriptor number.
func walkBounded(ctx context.Context, ns Namespace, f flow.Flow, cr Crossing, legacy *xtables.Ruleset) (walkResult, error) {
	fd, err := unix.FcntlInt(uintptr(ns.NS()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return walkResult{}, fmt.Errorf("duplicate the namespace descriptor of %s: %w", ns, err)
	}
	ifr := ifResolver(ns)
	type result struct {
		r   walkResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer unix.Close(fd)
		r, err := walkOnce(fd, f, cr, legacy, ifr)
		if err != nil {
			if st, _ := evidence.Classify(err); st == evidence.StatusFailed {
				// A ruleset reloaded while we walk it (firewalld does a
				// flush-and-load) makes a chain or set vanish between
				// the listing and the fetch: walk once more.
				r, err = walkOnce(fd, f, cr, legacy, ifr)
			}
		}
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-ctx.Done():
		return walkResult{}, ctx.Err()
	}
}

// walkOnce opens the nftables ruleset and walks the flow through it and
// the legacy tables. Without nftables the legacy tables are walked alone,
// and the error says why.
func walkOnce(nsfd int, f flow.Flow, cr Crossing, legacy *xtables.Ruleset, ifr func(string) ifRef) (walkResult, error) {
	var r walkResult
	nft, err := openNFT(nsfd, families(f), &r.read)
	if err == nil {
		defer nft.close()
		r.tables, r.nft = len(nft.tables), true
	}
	r.w = walkFlow(f, cr, hookChainsOf(nft, legacy, f), ifr)
	r.headers = r.w.headers()
	if err == nil {
		for _, c := range r.w.b.fetchedChains {
			if c.err != nil && c.source == evidence.SourceNftables {
				return r, c.err
			}
		}
	}
	return r, err
}

// ifResolver names the interfaces the crossing gives by index, once each.
func ifResolver(ns Namespace) func(string) ifRef {
	seen := map[string]ifRef{}
	return func(name string) ifRef {
		if name == "" {
			return ifRef{}
		}
		if i, ok := seen[name]; ok {
			return i
		}
		i := ifRef{name: name, index: ns.IfIndex(name), known: true}
		seen[name] = i
		return i
	}
}

// report writes the walks into the view: paths, rules, NAT, marks and the
// output lines.
func report(v *evidence.FirewallView, ns Namespace, f flow.Flow, res walkResult, legacy *xtables.Ruleset) {
	read := res.read
	read.Legacy = v.Read.Legacy
	v.Read = &read
	v.Tables = res.tables
	if res.w.b == nil {
		return
	}
	res.w.fill(v)
	v.Paths = res.w.paths
	for i := range v.Marks {
		if m := &v.Marks[i]; m.IifIndex != 0 && m.Iif == "" {
			m.Iif = ns.IfName(m.IifIndex)
			m.Text = strings.Replace(m.Text, fmt.Sprintf("iif %d", m.IifIndex), fmt.Sprintf("iif %q", m.Iif), 1)
		}
	}
	nftRules := slices.ContainsFunc(v.Rules, func(r evidence.FirewallRule) bool { return r.Source != evidence.SourceIptablesLegacy })
	if res.nft && !nftRules {
		v.Add("%s", noRulesLine(res.tables))
	}
	if res.tables > 0 || legacy != nil {
		v.Lines = append(v.Lines, pathLines(v.Paths, res.headers)...)
		v.Add("%s", readLine(v.Read, res.tables))
	}
	v.Lines = append(v.Lines, res.w.notes...)
	v.Lines = append(v.Lines, natLines(v.NAT, v.NATOthers, f)...)
	if legacy != nil {
		legacyLines(v, ns, legacy)
	}
}

// legacyLines say how to see the legacy tables, and what was odd in them.
func legacyLines(v *evidence.FirewallView, ns Namespace, rs *xtables.Ruleset) {
	v.Add("# %s", ns.Cmd("iptables-legacy-save", "-c"))
	if !slices.ContainsFunc(v.Rules, func(r evidence.FirewallRule) bool { return r.Source == evidence.SourceIptablesLegacy }) {
		v.Add("no ct state invalid or rpfilter rules on the flow's way in iptables-legacy tables %s", strings.Join(v.LegacyTables, ", "))
	}
	for _, p := range rs.Problems() {
		v.Add("%s", p)
	}
}

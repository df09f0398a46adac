// Package firewall finds the rules that drop a flow for asymmetric-routing
// reasons: `ct state invalid` (the reply of a flow this host never saw
// start) and fib reverse-path checks, with their counters. It reads
// nftables through nfnetlink, native expressions and iptables-nft's xt
// compat matches alike, and iptables-legacy through iptables-legacy-save.
//
// The decoder is laid out like google/nftables' expr package: one file per
// expression family (ct, fib, meta, payload, xt, sets, verdicts and
// statements), scan.go to walk a rule with them, render.go for the nft-like
// text. Reading never changes anything: listing rules does not reset their
// counters, and it never runs iptables-legacy -L/-S, which would create
// tables.
package firewall

import (
	"context"
	"fmt"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/vishvananda/netns"
)

// Namespace is the network namespace the firewall is read in.
// *probes.Target is one; the probe takes this interface rather than the
// Target because package probes imports this one.
type Namespace interface {
	// NS is the namespace's file descriptor, for the nftables socket.
	NS() netns.NsHandle
	// InNS runs fn on a thread inside the namespace, which a child process
	// (iptables-legacy-save) inherits.
	InNS(ctx context.Context, fn func() error) error
	// ReadProc reads files under /proc as the namespace sees them.
	ReadProc(ctx context.Context, paths ...string) (map[string]string, error)
	// Cmd renders the command a person would type to run words in the
	// namespace, prefixed and quoted.
	Cmd(words ...string) string
	// IfName names the interface with this index inside the namespace (a
	// rule's `iif` holds an index).
	IfName(index int) string
	String() string
}

// Probe lists the nftables ruleset of the namespace (and, when present,
// its iptables-legacy tables) and reports every rule matching
// `ct state invalid` or doing a fib reverse-path check, with its counters.
//
// It also reads the NAT rules that can translate the flow (either way),
// with what they select and where they translate to: following the flow
// through NAT needs the translated tuple even where no packet showed it.
func Probe(ctx context.Context, ns Namespace, f flow.Flow) *evidence.FirewallView {
	rep, start := evidence.Begin("firewall", "Firewall: ct state invalid, reverse-path and ICMP error rules, NAT and marks")
	v := &evidence.FirewallView{Report: rep}
	defer v.Finish(start)
	v.Command = ns.Cmd("nft", "list", "ruleset")
	if err := ctx.Err(); err != nil {
		v.Fail(err)
		return v
	}

	nft, nftErr := listBounded(ctx, ns, f)
	if ctx.Err() != nil {
		v.Fail(ctx.Err())
		return v
	}
	if nftErr == nil {
		v.Tables = nft.tables
		v.Rules = nft.rules
		v.NAT, v.NATOthers = nft.nat, nft.natOther
		v.Marks = nft.marks
		for i := range v.Marks {
			if m := &v.Marks[i]; m.IifIndex != 0 && m.Iif == "" {
				m.Iif = ns.IfName(m.IifIndex)
				m.Text = strings.Replace(m.Text, fmt.Sprintf("iif %d", m.IifIndex), fmt.Sprintf("iif %q", m.Iif), 1)
			}
		}
		v.Lines = append(v.Lines, renderLines(nft.rules, nft.headers)...)
		v.Lines = append(v.Lines, nft.notes...)
		if len(nft.rules) == 0 {
			v.Lines = append(v.Lines, noRulesLine(nft.tables))
		}
		v.Lines = append(v.Lines, natLines(nft.nat, nft.natOther, f)...)
	}
	// Legacy tables are looked at even when nftables cannot be read: a
	// kernel without nf_tables may well filter with x_tables. The status
	// still says nftables was not readable.
	if err := probeLegacy(ctx, v, ns); err != nil {
		v.Fail(err)
		return v
	}
	v.Fail(nftErr)
	return v
}

// noRulesLine says that nftables holds nothing of interest.
func noRulesLine(tables int) string {
	switch tables {
	case 0:
		return "no nftables tables: nothing here filters with nftables"
	case 1:
		return "no ct state invalid or fib reverse-path rules in 1 nftables table"
	}
	return fmt.Sprintf("no ct state invalid or fib reverse-path rules in %d nftables tables", tables)
}

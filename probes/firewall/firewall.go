// Package firewall walks the flow's packets through this host's firewall
// the way the kernel would: the base chains of the hooks each direction
// crosses, in priority order, nftables and iptables-legacy alike, each rule
// evaluated against the packet, jumps and gotos followed only where they
// can match. What the paths meet is the firewall's evidence: the rules
// that drop what conntrack calls invalid (the reply of a flow this host
// never saw start), fib reverse-path checks and ICMP error drops, with
// their counters; the NAT rules that translate the flow; the rules that
// mark it. A chain the flow cannot reach is never read.
//
// The decoder is laid out like google/nftables' expr package: one file per
// expression family (ct, fib, meta, payload, xt, sets, verdicts and
// statements), scan.go to walk a rule with them, render.go for the nft-like
// text; eval*.go evaluate the same expressions against a packet, walk*.go
// follow the packet through the chains. Reading never changes anything:
// listing rules does not reset their counters, and iptables-legacy tables
// are read through the kernel without creating any.
package firewall

import (
	"context"
	"fmt"

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
	// IfIndex is the index of the interface with this name, 0 when there
	// is none.
	IfIndex(name string) int
	String() string
}

// Probe walks the flow through the firewall knowing nothing of where it
// crosses this host: every hook, no interface known. ProbePath is the
// probe a check runs.
func Probe(ctx context.Context, ns Namespace, f flow.Flow) *evidence.FirewallView {
	return ProbePath(ctx, ns, f, Crossing{})
}

// ProbePath walks the flow's packets through the firewall where they
// cross this host, and reports the paths and what they meet.
func ProbePath(ctx context.Context, ns Namespace, f flow.Flow, cr Crossing) *evidence.FirewallView {
	rep, start := evidence.Begin("firewall", "Firewall: ct state invalid, reverse-path and ICMP error rules, NAT and marks")
	v := &evidence.FirewallView{Report: rep, Read: &evidence.FirewallRead{}}
	defer v.Finish(start)
	v.Command = ns.Cmd("nft", "list", "ruleset")
	if err := ctx.Err(); err != nil {
		v.Fail(err)
		return v
	}
	// Legacy tables are looked at even when nftables cannot be read: a
	// kernel without nf_tables may well filter with x_tables.
	legacy, legacyErr := readLegacy(ctx, v, ns)
	if legacyErr != nil {
		v.Fail(legacyErr)
		return v
	}
	res, nftErr := walkBounded(ctx, ns, f, cr, legacy)
	if ctx.Err() != nil {
		v.Fail(ctx.Err())
		return v
	}
	report(v, ns, f, res, legacy)
	v.Fail(nftErr)
	return v
}

// noRulesLine says that the firewall holds nothing of interest on the
// flow's way.
func noRulesLine(tables int) string {
	switch tables {
	case 0:
		return "no nftables tables: nothing here filters with nftables"
	case 1:
		return "no ct state invalid or fib reverse-path rules in 1 nftables table"
	}
	return fmt.Sprintf("no ct state invalid or fib reverse-path rules in %d nftables tables", tables)
}

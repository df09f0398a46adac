package probetest

import (
	"testing"

	"asym/lab/namespace"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Nft opens an nftables connection inside ns. It holds no socket between
// flushes, so there is nothing to close.
func Nft(t testing.TB, ns NS) *nftables.Conn {
	t.Helper()
	c, err := namespace.Nft(ns)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BaseChain adds `chain name { type filter hook hook priority prio; policy
// accept; }` to table tb.
func BaseChain(c *nftables.Conn, tb *nftables.Table, name string, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	return namespace.BaseChain(c, tb, name, hook, prio)
}

// FilterRule adds one rule to `table inet filter { chain chain { type
// filter hook hook priority 0; policy accept; } }` in ns, creating the
// table and the chain if they are not there yet.
func FilterRule(t testing.TB, ns NS, chain string, hook *nftables.ChainHook, exprs ...expr.Any) {
	t.Helper()
	if err := namespace.FilterRule(ns, chain, hook, exprs...); err != nil {
		t.Fatal(err)
	}
}

// CtInvalidDrop is `ct state invalid counter drop` as nft compiles it.
func CtInvalidDrop() []expr.Any { return namespace.CtInvalidDrop() }

// TrackConntrack installs `table inet filter { chain input { type filter
// hook input priority 0; ct state invalid counter drop } }` in ns, which
// also makes the namespace track connections at all (namespace.TrackConntrack).
func TrackConntrack(t testing.TB, ns NS) {
	t.Helper()
	if err := namespace.TrackConntrack(ns); err != nil {
		t.Fatal(err)
	}
}

package probetest

import (
	"testing"

	"asym/lab/namespace"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
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

// Expression builders for the forms nft and iptables-nft produce (the
// native ct form is what google/nftables read back from `nft -f`, see the
// notes; the others were read back from rules built with the library).

// U32 is a host-endian u32, as registers hold ct state and marks.
func U32(v uint32) []byte { return binaryutil.NativeEndian.PutUint32(v) }

// CtState is `ct state` masked with mask and compared with 0 by op:
// CmpOpNeq is nft's `ct state MASK`, CmpOpEq its `ct state != MASK`.
func CtState(mask uint32, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: U32(mask), Xor: U32(0)},
		&expr.Cmp{Op: op, Register: 1, Data: U32(0)},
	}
}

// XtConntrack is iptables-nft's `-m conntrack [!] --ctstate MASK`.
func XtConntrack(mask uint16, invert bool) *expr.Match {
	info := &xt.ConntrackMtinfo3{}
	info.MatchFlags = uint16(xt.ConntrackState)
	if invert {
		info.InvertFlags = uint16(xt.ConntrackState)
	}
	info.StateMask = mask
	return &expr.Match{Name: "conntrack", Rev: 3, Info: info}
}

// XtRaw is an xt match or target's info as raw bytes, for the extensions
// google/nftables has no type for.
func XtRaw(b ...byte) *xt.Unknown { u := xt.Unknown(b); return &u }

// Cat joins expressions and lists of them into one rule.
func Cat(parts ...any) []expr.Any {
	var out []expr.Any
	for _, p := range parts {
		switch p := p.(type) {
		case []expr.Any:
			out = append(out, p...)
		case expr.Any:
			out = append(out, p)
		}
	}
	return out
}

// The verdicts rules end with.
var (
	Drop   = &expr.Verdict{Kind: expr.VerdictDrop}
	Accept = &expr.Verdict{Kind: expr.VerdictAccept}
)

package firewall

// fib: the reverse-path check nft writes (`fib saddr . iif oif missing`).

import (
	"slices"
	"strings"

	"asym/evidence"

	"github.com/google/nftables/expr"
)

// decodeFib reads a fib lookup and what it is compared with.
func decodeFib(s *scanner, f *expr.Fib) {
	used, text, rpf := fib(s.rest, f)
	s.consume(used)
	s.text.push(text)
	if rpf {
		s.found(evidence.RuleFibRPFilter, evidence.SourceNftables)
	}
}

// fib reads `fib … oif missing` and friends. A reverse-path check looks
// up the packet's source (saddr, reply direction) and asks for the output
// interface: `missing` (NFTA_FIB_F_PRESENT + Cmp == 0, 1-byte register) or
// `0` (Cmp == 0 on the 4-byte ifindex) means "no route back". With iif it
// is strict (the route back must leave through the input interface), as
// firewalld and the nft wiki write it; without iif it is loose. mark
// (firewalld: `fib saddr . mark . iif oif missing`) only selects policy
// routing by fwmark.
func fib(rest []any, f *expr.Fib) (used int, text string, rpf bool) {
	text = "fib " + strings.Join(fibKeys(f), " . ") + " " + fibResult(f)
	if len(rest) == 0 {
		return 0, text + " …", false
	}
	cmp, ok := compareOf(rest[0], f.Register)
	if !ok || len(cmp.Data) == 0 {
		return 0, text + " …", false
	}
	zero := !slices.ContainsFunc(cmp.Data, func(b byte) bool { return b != 0 })
	missing := cmp.Op == expr.CmpOpEq && zero
	return 1, text + " " + fibCompared(f.FlagPRESENT, cmp.Op, zero), missing && f.ResultOIF && f.FlagSADDR && !f.FlagDADDR
}

// fibKeys are what the lookup is keyed by, in nft's order.
func fibKeys(f *expr.Fib) []string {
	var keys []string
	for _, k := range []struct {
		on   bool
		name string
	}{{f.FlagSADDR, "saddr"}, {f.FlagDADDR, "daddr"}, {f.FlagMARK, "mark"}, {f.FlagIIF, "iif"}, {f.FlagOIF, "oif"}} {
		if k.on {
			keys = append(keys, k.name)
		}
	}
	return keys
}

// fibResult is what the lookup returns.
func fibResult(f *expr.Fib) string {
	switch {
	case f.ResultOIF:
		return "oif"
	case f.ResultOIFNAME:
		return "oifname"
	case f.ResultADDRTYPE:
		return "type"
	}
	return "…"
}

// fibCompared renders the compare after the lookup: with
// NFTA_FIB_F_PRESENT the register holds a boolean, `missing` or `exists`.
func fibCompared(present bool, op expr.CmpOp, zero bool) string {
	missing := op == expr.CmpOpEq && zero
	switch {
	case present && missing:
		return "missing"
	case present && op == expr.CmpOpNeq && zero:
		return "exists"
	case missing:
		return "0"
	case op == expr.CmpOpNeq && zero:
		return "!= 0"
	}
	return "…"
}

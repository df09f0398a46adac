package firewall

// ct state: nft's native form, a load of the state then a mask and compare,
// a plain compare, or a set lookup (set.go).

import (
	"fmt"
	"strings"

	"asym/evidence"

	"github.com/google/nftables/expr"
)

// ctInvalid is the ct state value of a packet conntrack could not place
// (NF_CT_STATE_INVALID_BIT). ct state is one bit of a bitmask, so a
// packet's state register holds exactly this value when it is invalid.
const ctInvalid = expr.CtStateBitINVALID

// ctMatch is one `ct state …` condition.
type ctMatch struct {
	used    int // expressions consumed after the Ct load
	text    string
	matches bool // an invalid packet satisfies it
	verdict string
	counter *expr.Counter
}

// decodeCt reads `ct state …`; other ct keys are not spelled out.
func decodeCt(s *scanner, e *expr.Ct) {
	switch {
	case e.SourceRegister && e.Key == expr.CtKeyMARK:
		s.text.push("ct mark set " + s.setValue(e.Register))
		return
	case !e.SourceRegister && e.Key == expr.CtKeyMARK:
		if used, text := ctMarkCond(s.rest, e.Register); used > 0 {
			s.condition(used, text)
			return
		}
		s.hold(e.Register, "ct mark", true)
		return
	case e.SourceRegister || e.Key != expr.CtKeySTATE:
		s.text.push("…")
		return
	}
	m := ctState(s.rest, e.Register, s.sets)
	s.consume(m.used)
	s.text.push(m.text)
	if !m.matches {
		return
	}
	s.found(evidence.RuleCtInvalid, evidence.SourceNftables)
	if m.verdict != "" {
		s.sc.verdict = m.verdict
	}
	if m.counter != nil && s.sc.counter == nil {
		s.sc.counter = m.counter
	}
}

// ctMarkCond reads `ct mark VALUE`.
func ctMarkCond(rest []any, reg uint32) (int, string) {
	if len(rest) == 0 {
		return 0, ""
	}
	c, ok := compareOf(rest[0], reg)
	if !ok || len(c.Data) != 4 {
		return 0, ""
	}
	op := ""
	if c.Op != expr.CmpOpEq {
		op = cmpOpName(c.Op) + " "
	}
	return 1, fmt.Sprintf("ct mark %s0x%08x", op, native.Uint32(c.Data))
}

// ctState reads what follows a `ct state` load into reg.
func ctState(rest []any, reg uint32, sets setReader) ctMatch {
	if m, ok := ctStateMasked(rest, reg); ok {
		return m
	}
	if m, ok := ctStateCompared(rest, reg); ok {
		return m
	}
	if m, ok := ctStateLookup(rest, reg, sets); ok {
		return m
	}
	return ctMatch{text: "ct state …"}
}

// ctStateMasked reads nft's own form: Bitwise with a mask, then == or !=.
func ctStateMasked(rest []any, reg uint32) (ctMatch, bool) {
	if len(rest) < 2 {
		return ctMatch{}, false
	}
	bw, ok := rest[0].(*expr.Bitwise)
	if !ok || bw.SourceRegister != reg || len(bw.Mask) != 4 {
		return ctMatch{}, false
	}
	cmp, ok := compareOf(rest[1], bw.DestRegister)
	if !ok || len(cmp.Data) != 4 || !eqOrNeq(cmp.Op) {
		return ctMatch{}, false
	}
	mask, xor, val := native.Uint32(bw.Mask), key32(bw.Xor), native.Uint32(cmp.Data)
	return ctMatch{
		used:    2,
		matches: ((ctInvalid&mask)^xor == val) == (cmp.Op == expr.CmpOpEq),
		text:    ctMaskedText(mask, xor, val, cmp.Op),
	}, true
}

// ctMaskedText renders a masked compare as nft does: != 0 is "any of these
// states", == 0 "none of them".
func ctMaskedText(mask, xor, val uint32, op expr.CmpOp) string {
	switch {
	case xor == 0 && val == 0 && op == expr.CmpOpNeq:
		return "ct state " + ctStateNames(mask)
	case xor == 0 && val == 0:
		return "ct state != " + ctStateNames(mask)
	}
	return fmt.Sprintf("ct state & 0x%x ^ 0x%x %s 0x%x", mask, xor, cmpOpName(op), val)
}

// ctStateCompared reads a plain compare of the whole state.
func ctStateCompared(rest []any, reg uint32) (ctMatch, bool) {
	if len(rest) == 0 {
		return ctMatch{}, false
	}
	cmp, ok := compareOf(rest[0], reg)
	if !ok || len(cmp.Data) != 4 || !eqOrNeq(cmp.Op) {
		return ctMatch{}, false
	}
	val := native.Uint32(cmp.Data)
	return ctMatch{
		used:    1,
		matches: (val == ctInvalid) == (cmp.Op == expr.CmpOpEq),
		text:    "ct state " + cmpOpName(cmp.Op) + " " + ctStateNames(val),
	}, true
}

// ctStateLookup reads `ct state { … }` and `ct state vmap { … }`.
func ctStateLookup(rest []any, reg uint32, sets setReader) (ctMatch, bool) {
	if len(rest) == 0 {
		return ctMatch{}, false
	}
	l, ok := rest[0].(*expr.Lookup)
	if !ok || l.SourceRegister != reg {
		return ctMatch{}, false
	}
	return ctLookup(l, sets), true
}

// ctStateNames renders a ct state bitmask the way nft does. xt_conntrack
// uses the same bits, plus snat and dnat.
func ctStateNames(mask uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{
		{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"},
		{expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"},
		{expr.CtStateBitUNTRACKED, "untracked"}, {1 << 8, "snat"}, {1 << 9, "dnat"},
	}
	var out []string
	for _, n := range names {
		if mask&n.bit != 0 {
			out = append(out, n.name)
			mask &^= n.bit
		}
	}
	if mask != 0 || len(out) == 0 {
		out = append(out, fmt.Sprintf("0x%x", mask))
	}
	return strings.Join(out, ",")
}

package firewall

// Evaluating an nftables rule against the walk's packet, expression by
// expression, the way nft_do_chain runs it: loads fill registers, compares
// and lookups end the rule when they fail (NFT_BREAK), statements act on
// the packet as they come (a mark set before a failing compare still
// happens), a verdict ends it. What asym cannot know (a fib result, a
// random number, a rate) makes a compare "may": the rule may match.

import (
	"bytes"
	"reflect"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// verdictOpt is a verdict a rule may give, and how sure.
type verdictOpt struct {
	name  string // "accept", "drop", "reject", "queue", "stolen", "return", "jump", "goto"
	chain string // for jump and goto
	reach tri
}

// ruleEval is what one rule does to the packet.
type ruleEval struct {
	// match is how sure the packet gets through every condition of the
	// rule to its end: a rule that matches.
	match tri
	why   string // what makes it "may"
	// verdicts are the verdicts it gives; none when it goes on.
	verdicts []verdictOpt
}

// evaluator runs one rule.
type evaluator struct {
	fam   nftables.TableFamily
	p     *packet
	r     regs
	reach tri
	why   string
	out   ruleEval
	sets  setReader
}

// exprEvals are keyed by expression type, as the decoders of scan.go are.
var exprEvals = map[reflect.Type]func(ev *evaluator, e any){
	reflect.TypeFor[*expr.Payload]():   func(ev *evaluator, e any) { ev.payload(e.(*expr.Payload)) },
	reflect.TypeFor[*expr.Meta]():      func(ev *evaluator, e any) { ev.meta(e.(*expr.Meta)) },
	reflect.TypeFor[*expr.Ct]():        func(ev *evaluator, e any) { ev.ct(e.(*expr.Ct)) },
	reflect.TypeFor[*expr.Cmp]():       func(ev *evaluator, e any) { ev.cmp(e.(*expr.Cmp)) },
	reflect.TypeFor[*expr.Range]():     func(ev *evaluator, e any) { ev.rangeCmp(e.(*expr.Range)) },
	reflect.TypeFor[*expr.Bitwise]():   func(ev *evaluator, e any) { ev.bitwise(e.(*expr.Bitwise)) },
	reflect.TypeFor[*byteorderExpr]():  func(ev *evaluator, e any) { ev.byteorder(e.(*byteorderExpr)) },
	reflect.TypeFor[*expr.Immediate](): func(ev *evaluator, e any) { ev.immediate(e.(*expr.Immediate)) },
	reflect.TypeFor[*expr.Verdict]():   func(ev *evaluator, e any) { ev.verdict(e.(*expr.Verdict)) },
	reflect.TypeFor[*expr.Lookup]():    func(ev *evaluator, e any) { ev.lookup(e.(*expr.Lookup)) },
	reflect.TypeFor[*expr.Fib]():       func(ev *evaluator, e any) { ev.fib(e.(*expr.Fib)) },
	reflect.TypeFor[*expr.Numgen]():    func(ev *evaluator, e any) { ev.r.unknown(e.(*expr.Numgen).Register, 4, "numgen") },
	reflect.TypeFor[*expr.Hash]():      func(ev *evaluator, e any) { ev.r.unknown(e.(*expr.Hash).DestRegister, 4, "hash") },
	reflect.TypeFor[*expr.Exthdr]():    func(ev *evaluator, e any) { ev.exthdr(e.(*expr.Exthdr)) },
	reflect.TypeFor[*expr.Limit]():     func(ev *evaluator, e any) { ev.cond(maybe, "limit") },
	reflect.TypeFor[*expr.Quota]():     func(ev *evaluator, e any) { ev.cond(maybe, "quota") },
	reflect.TypeFor[*expr.Connlimit](): func(ev *evaluator, e any) { ev.cond(maybe, "ct count") },
	reflect.TypeFor[*expr.Objref]():    func(ev *evaluator, e any) { ev.objref(e.(*expr.Objref)) },
	reflect.TypeFor[*expr.Dynset]():    func(ev *evaluator, e any) { ev.dynset(e.(*expr.Dynset)) },
	reflect.TypeFor[*expr.Reject]():    func(ev *evaluator, e any) { ev.give("reject", "") },
	reflect.TypeFor[*expr.Queue]():     func(ev *evaluator, e any) { ev.give("queue", "") },
	reflect.TypeFor[*expr.NAT]():       func(ev *evaluator, e any) { ev.nat(e.(*expr.NAT)) },
	reflect.TypeFor[*expr.Masq]():      func(ev *evaluator, e any) { ev.masq(e.(*expr.Masq)) },
	reflect.TypeFor[*expr.Redir]():     func(ev *evaluator, e any) { ev.redir(e.(*expr.Redir)) },
	reflect.TypeFor[*expr.Notrack]():   func(ev *evaluator, e any) { ev.notrack() },
	reflect.TypeFor[*expr.Match]():     func(ev *evaluator, e any) { ev.xtMatch(e.(*expr.Match)) },
	reflect.TypeFor[*expr.Target]():    func(ev *evaluator, e any) { ev.xtTarget(e.(*expr.Target)) },
	reflect.TypeFor[*opaqueExpr]():     func(ev *evaluator, e any) { ev.r.forget(e.(*opaqueExpr).name) },
	// Statements that neither decide nor change what later rules see.
	reflect.TypeFor[*expr.Counter]():     func(*evaluator, any) {},
	reflect.TypeFor[*expr.Log]():         func(*evaluator, any) {},
	reflect.TypeFor[*expr.FlowOffload](): func(*evaluator, any) {},
	reflect.TypeFor[*expr.SecMark]():     func(*evaluator, any) {},
	reflect.TypeFor[*expr.SynProxy]():    func(ev *evaluator, e any) { ev.give("drop", "") },
}

// exprList is a rule's expressions, decoded when asked for.
type exprList interface {
	n() int
	at(i int) any
}

// exprSlice is a list of expressions decoded already.
type exprSlice []any

func (s exprSlice) n() int       { return len(s) }
func (s exprSlice) at(i int) any { return s[i] }

// evalRule runs one rule on p, changing p as its statements do.
func evalRule(fam nftables.TableFamily, exprs exprList, p *packet, sets setReader) ruleEval {
	ev := &evaluator{fam: fam, p: p, reach: yes, sets: sets}
	for i := range exprs.n() {
		// A verdict ends the rule (a verdict map's too: a miss is a
		// break), as does a condition that fails.
		if ev.reach == no || len(ev.out.verdicts) > 0 {
			break
		}
		e := exprs.at(i)
		if f, ok := exprEvals[reflect.TypeOf(e)]; ok {
			f(ev, e)
		} else {
			ev.r.forget(reflect.TypeOf(e).String())
		}
	}
	ev.out.match, ev.out.why = ev.reach, ev.why
	if ev.reach == no {
		ev.out.verdicts = nil
	}
	return ev.out
}

// cond adds a condition: the rule goes on only where it holds.
func (ev *evaluator) cond(t tri, why string) {
	if t == maybe && ev.why == "" {
		ev.why = why
	}
	ev.reach = ev.reach.and(t)
}

// give records a verdict at the rule's current reach.
func (ev *evaluator) give(name, chain string) {
	ev.out.verdicts = append(ev.out.verdicts, verdictOpt{name: name, chain: chain, reach: ev.reach})
}

func (ev *evaluator) verdict(v *expr.Verdict) {
	switch v.Kind {
	case expr.VerdictContinue:
	case expr.VerdictBreak:
		ev.reach = no
	default:
		if name := verdictName(v.Kind, v.Chain); name != "" {
			ev.give(verdictWord(v.Kind), v.Chain)
		}
	}
}

// verdictWord is the verdict's kind without the chain.
func verdictWord(k expr.VerdictKind) string {
	switch k {
	case expr.VerdictJump:
		return "jump"
	case expr.VerdictGoto:
		return "goto"
	}
	return verdictWords[k]
}

func (ev *evaluator) immediate(i *expr.Immediate) { ev.r.store(i.Register, i.Data) }

// cmp compares a register with a constant as nft_cmp_eval does: memcmp,
// so the order is that of the bytes (nft turns host-order values to
// network order with byteorder first).
func (ev *evaluator) cmp(c *expr.Cmp) {
	v, ok, why := ev.r.load(c.Register, len(c.Data))
	if !ok {
		ev.cond(maybe, why)
		return
	}
	d := bytes.Compare(v, c.Data)
	var hold bool
	switch c.Op {
	case expr.CmpOpEq:
		hold = d == 0
	case expr.CmpOpNeq:
		hold = d != 0
	case expr.CmpOpLt:
		hold = d < 0
	case expr.CmpOpLte:
		hold = d <= 0
	case expr.CmpOpGt:
		hold = d > 0
	case expr.CmpOpGte:
		hold = d >= 0
	}
	ev.cond(triOf(hold), "")
}

// rangeCmp is nft_range_eval: from <= reg <= to, or its negation.
func (ev *evaluator) rangeCmp(r *expr.Range) {
	v, ok, why := ev.r.load(r.Register, len(r.FromData))
	if !ok {
		ev.cond(maybe, why)
		return
	}
	in := bytes.Compare(v, r.FromData) >= 0 && bytes.Compare(v, r.ToData) <= 0
	ev.cond(triOf(in == (r.Op == expr.CmpOpEq)), "")
}

// bitwise is nft_bitwise's boolean form: (reg & mask) ^ xor.
func (ev *evaluator) bitwise(b *expr.Bitwise) {
	v, ok, why := ev.r.load(b.SourceRegister, int(b.Len))
	if !ok || len(b.Mask) != int(b.Len) || len(b.Xor) != int(b.Len) {
		if why == "" {
			why = "bitwise"
		}
		ev.r.unknown(b.DestRegister, int(b.Len), why)
		return
	}
	out := make([]byte, len(v))
	for i := range v {
		out[i] = v[i]&b.Mask[i] ^ b.Xor[i]
	}
	ev.r.store(b.DestRegister, out)
}

// byteorder swaps each size-byte unit of len bytes between host and
// network order (nft_byteorder_eval).
func (ev *evaluator) byteorder(b *byteorderExpr) {
	v, ok, why := ev.r.load(b.sreg, int(b.len))
	if !ok || (b.size != 2 && b.size != 4 && b.size != 8) {
		ev.r.unknown(b.dreg, int(b.len), why)
		return
	}
	out := bytes.Clone(v)
	if native.Uint16([]byte{1, 0}) == 1 { // a little-endian host: host and network order differ
		for i := 0; i+int(b.size) <= len(out); i += int(b.size) {
			u := out[i : i+int(b.size)]
			for l, r := 0, len(u)-1; l < r; l, r = l+1, r-1 {
				u[l], u[r] = u[r], u[l]
			}
		}
	}
	ev.r.store(b.dreg, out)
}

// exthdr reads a TCP option or an IPv6 extension header, which asym does
// not know; writing one is a statement.
func (ev *evaluator) exthdr(x *expr.Exthdr) {
	if x.SourceRegister != 0 {
		return
	}
	ev.r.unknown(x.DestRegister, int(x.Len), "exthdr")
}

// objref refers to a named object: a counter only counts, a limit or a
// quota decides what asym cannot know.
func (ev *evaluator) objref(o *expr.Objref) {
	switch o.Type {
	case 1: // NFT_OBJECT_COUNTER
	case 2, 4: // NFT_OBJECT_QUOTA, NFT_OBJECT_LIMIT
		ev.cond(maybe, "named quota or limit "+o.Name)
	}
}

// dynset adds to or updates a set from the packet; the expressions it
// carries (a limit per element) decide what asym cannot know.
func (ev *evaluator) dynset(d *expr.Dynset) {
	if len(d.Exprs) > 0 {
		ev.cond(maybe, "per-element statement of set @"+d.SetName)
	}
}

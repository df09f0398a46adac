package firewall

// Walking a rule's expressions with one decoder per expression kind.

import (
	"reflect"

	"asym/evidence"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// scan is what scanRule made of a rule's expressions.
type scan struct {
	kind        evidence.FirewallRuleKind // "" for a rule of no interest
	source      string                    // evidence.SourceNftables or evidence.SourceIptablesNft
	verdict     string
	counter     *expr.Counter // counts only what the recognised match selected
	counterName string        // a named counter that does the same
	text        string
	// anyCounter and anyCounterName are the rule's first counter wherever
	// it stands: what a path shows for a rule the packet hits.
	anyCounter     *expr.Counter
	anyCounterName string
}

// scanner is one walk over a rule's expressions. A decoder reads the
// expression it is given and takes the ones that complete it (the compare
// after a load) from rest; it adds what nft would print to text and records
// in sc what the rule matches.
type scanner struct {
	fam  nftables.TableFamily
	rest []any     // the expressions after the one being decoded
	sets setReader // may be nil
	text ruleText
	sc   scan
	xt   bool                // an x_tables match or target: the rule is iptables-nft's
	regs map[uint32][]byte   // what immediates loaded, for the statements that read them
	held map[uint32]heldLoad // loads no compare followed (render_stmt.go)
}

// decoder reads one kind of expression.
type decoder func(s *scanner, e any)

// decoders are keyed by expression type. Any other expression reads as
// "…": asym does not spell it out.
var decoders = map[reflect.Type]decoder{
	reflect.TypeFor[*expr.Ct]():        decodeAs(decodeCt),
	reflect.TypeFor[*expr.Fib]():       decodeAs(decodeFib),
	reflect.TypeFor[*expr.Meta]():      decodeAs(decodeMeta),
	reflect.TypeFor[*expr.Payload]():   decodeAs(decodePayload),
	reflect.TypeFor[*expr.Match]():     decodeAs(decodeXtMatch),
	reflect.TypeFor[*expr.Target]():    decodeAs(decodeXtTarget),
	reflect.TypeFor[*expr.Verdict]():   decodeAs(decodeVerdict),
	reflect.TypeFor[*expr.Reject]():    decodeAs(decodeReject),
	reflect.TypeFor[*expr.Counter]():   decodeAs(decodeCounter),
	reflect.TypeFor[*expr.Objref]():    decodeAs(decodeObjref),
	reflect.TypeFor[*expr.Log]():       decodeAs(decodeLog),
	reflect.TypeFor[*expr.Cmp]():       decodeAs(decodeCmp),
	reflect.TypeFor[*expr.Lookup]():    decodeAs(decodeLookup),
	reflect.TypeFor[*expr.Immediate](): decodeAs(decodeImmediate),
	reflect.TypeFor[*expr.NAT]():       decodeAs(decodeNAT),
	reflect.TypeFor[*expr.Masq]():      decodeAs(decodeMasq),
	reflect.TypeFor[*expr.Redir]():     decodeAs(decodeRedir),
	reflect.TypeFor[*expr.Numgen]():    decodeAs(decodeNumgen),
	reflect.TypeFor[*expr.Limit]():     decodeAs(decodeLimit),
	reflect.TypeFor[*expr.Notrack]():   decodeAs(decodeNotrack),
	reflect.TypeFor[*expr.Queue]():     decodeAs(decodeQueue),
}

// decodeAs makes a decoder of a function that takes the concrete type.
func decodeAs[E any](d func(*scanner, E)) decoder {
	return func(s *scanner, e any) { d(s, e.(E)) }
}

// scanRule renders a rule nft-style and recognises a ct-invalid,
// reverse-path or ICMP-error rule (kind "" for any other). It is pure: the
// only outside knowledge, set contents, comes through sets (which may be
// nil).
//
// A ct state match is recognised by evaluating it for an invalid packet
// rather than by pattern: the state register then holds 1, so
// `ct state invalid,new` (Bitwise 9, Cmp != 0) and `ct state != established`
// (Bitwise 2, Cmp == 0) both match it, `ct state established,related` does not.
// A counter is attributed to the match only when it comes after it: a counter
// placed before counts every packet the rule sees.
func scanRule(fam nftables.TableFamily, exprs []any, sets setReader) scan {
	s := &scanner{fam: fam, rest: exprs, sets: sets}
	for len(s.rest) > 0 {
		e := s.rest[0]
		s.rest = s.rest[1:]
		if d, ok := decoders[reflect.TypeOf(e)]; ok {
			d(s, e)
		} else {
			s.text.push("…")
		}
	}
	if len(s.held) > 0 {
		s.text.push("…") // a load asym renders nothing for read it
	}
	s.sc.text = s.text.String()
	if s.sc.source == "" && s.xt {
		s.sc.source = evidence.SourceIptablesNft
	}
	return s.sc
}

// decodeCmp renders a compare of a load held for it; any other stray
// compare is "…".
func decodeCmp(s *scanner, c *expr.Cmp) {
	if h, ok := s.take(c.Register); ok {
		heldCompare(s, h, c)
		return
	}
	s.text.push("…")
}

// consume takes the n expressions a decoder read along with its own.
func (s *scanner) consume(n int) { s.rest = s.rest[n:] }

// condition adds a condition that took used expressions after its load,
// or "…" when the decoder could not read it (used is 0).
func (s *scanner) condition(used int, text string) {
	if used == 0 {
		s.text.push("…")
		return
	}
	s.consume(used)
	s.text.push(text)
}

// found records what the rule is about; the first match decides.
func (s *scanner) found(kind evidence.FirewallRuleKind, source string) {
	if s.sc.kind == "" {
		s.sc.kind, s.sc.source = kind, source
	}
}

// counts says whether a counter met now counts what the match selected:
// it comes after the match, and no counter did before it.
func (s *scanner) counts() bool {
	return s.sc.kind != "" && s.sc.counter == nil && s.sc.counterName == ""
}

// native is the byte order of registers holding ct state, marks and
// interface indexes: the host's.
var native = binaryutil.NativeEndian

// compareOf returns e when it compares register reg.
func compareOf(e any, reg uint32) (*expr.Cmp, bool) {
	c, ok := e.(*expr.Cmp)
	return c, ok && c.Register == reg
}

// eqOrNeq says whether op is == or !=, the only compares a match of a set
// of values (a mask, an address) can be.
func eqOrNeq(op expr.CmpOp) bool { return op == expr.CmpOpEq || op == expr.CmpOpNeq }

package firewall

// Mark rules: what sets a packet's mark (routing by fwmark reads it) or a
// connection's (kept for its later packets, copied back onto them by a
// restore). A multi-WAN host marks connections by the link they came in
// on and routes their replies by that mark: the rules that set, save and
// restore it decide which way the reply leaves.

import (
	"fmt"
	"strings"

	"asym/evidence"

	"github.com/google/nftables/expr"
)

// markScan is one walk over a rule's expressions for a mark statement and
// the conditions before it.
type markScan struct {
	regs   map[uint32][]byte   // registers an immediate loaded
	loads  map[uint32]string   // what a load put in a register: "ctmark", "metamark", "iif", "iifname", "oifname", "ctstate"
	states map[uint32]uint32   // a ct state register under a mask: the bits it tests
	rule   evidence.MarkRule   // the conditions read so far, and the statement being read
	sets   []evidence.MarkRule // one per mark statement, in the rule's order
	words  []string
	last   uint32 // the register written last
}

// markRules reads the mark statements of a rule, each with the rule's
// conditions (`meta mark set 0x1 ct mark set meta mark` is two); none for
// a rule that sets no mark.
func markRules(exprs []any) []evidence.MarkRule {
	s := &markScan{regs: map[uint32][]byte{}, loads: map[uint32]string{}, states: map[uint32]uint32{}}
	for _, e := range exprs {
		s.read(e)
	}
	text := strings.Join(s.words, " ")
	for i := range s.sets {
		s.sets[i].Text = text
		s.sets[i].Partial = s.sets[i].Partial || s.rule.Partial
		s.sets[i].Packets = s.rule.Packets
	}
	return s.sets
}

func (s *markScan) read(e any) {
	switch e := e.(type) {
	case *expr.Immediate:
		s.regs[e.Register] = e.Data
		s.last = e.Register
	case *expr.Meta:
		s.meta(e)
	case *expr.Ct:
		s.ct(e)
	case *expr.Bitwise:
		s.bitwise(e)
	case *expr.Cmp:
		s.compare(e)
	case *expr.Counter:
		s.rule.Packets = e.Packets
		s.words = append(s.words, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
	case *expr.Verdict:
	default:
		s.rule.Partial = true
		s.words = append(s.words, "…")
	}
}

func (s *markScan) meta(m *expr.Meta) {
	switch {
	case m.Key == expr.MetaKeyMARK && m.SourceRegister:
		s.set(evidence.MarkPacket, m.Register, "ctmark")
	case m.Key == expr.MetaKeyMARK:
		s.loads[m.Register] = "metamark"
		s.last = m.Register
	case m.Key == expr.MetaKeyIIF:
		s.loads[m.Register] = "iif"
	case m.Key == expr.MetaKeyIIFNAME:
		s.loads[m.Register] = "iifname"
	case m.Key == expr.MetaKeyOIFNAME:
		s.loads[m.Register] = "oifname"
	default:
		s.loads[m.Register] = "other"
	}
}

func (s *markScan) ct(c *expr.Ct) {
	switch {
	case c.Key == expr.CtKeyMARK && c.SourceRegister:
		s.set(evidence.MarkConn, c.Register, "metamark")
	case c.Key == expr.CtKeyMARK && c.Register == 0:
		// google/nftables v0.3.0 reads back no NFTA_CT_SREG: `ct mark set`
		// comes back as a ct expression with no register at all (a load
		// always has a destination register, never the verdict register
		// 0). Its source is the register written last.
		s.set(evidence.MarkConn, s.last, "metamark")
	case c.Key == expr.CtKeyMARK:
		s.loads[c.Register] = "ctmark"
		s.last = c.Register
	case c.Key == expr.CtKeySTATE:
		s.loads[c.Register] = "ctstate"
	default:
		s.loads[c.Register] = "other"
	}
}

// set reads a mark statement: a constant from an immediate, or a copy of
// the other mark (from is the load that copies it).
func (s *markScan) set(target evidence.MarkTarget, reg uint32, from string) {
	r := s.rule // a copy: the conditions so far, and this statement
	r.Sets, r.Copy, r.Value = target, false, 0
	defer func() { s.sets = append(s.sets, r) }()
	name := map[evidence.MarkTarget]string{evidence.MarkPacket: "meta mark", evidence.MarkConn: "ct mark"}[target]
	switch {
	case s.loads[reg] == from:
		r.Copy = true
		other := map[string]string{"ctmark": "ct mark", "metamark": "meta mark"}[from]
		s.words = append(s.words, name+" set "+other)
	case len(s.regs[reg]) == 4:
		r.Value = native.Uint32(s.regs[reg])
		s.words = append(s.words, fmt.Sprintf("%s set 0x%x", name, r.Value))
	default:
		r.Partial = true
		s.words = append(s.words, name+" set …")
	}
}

// bitwise keeps a ct state test's mask (`ct state new` is a load, a mask
// of its bits and a compare with 0); a mask of a mark is a partial copy.
func (s *markScan) bitwise(b *expr.Bitwise) {
	l := s.loads[b.SourceRegister]
	if l == "ctstate" && len(b.Mask) == 4 {
		s.states[b.DestRegister] = native.Uint32(b.Mask)
		s.loads[b.DestRegister] = "ctstate"
		return
	}
	s.loads[b.DestRegister] = l
	s.rule.Partial = true
}

// compare reads the conditions a mark rule commonly has: the interface a
// packet came in on or leaves by, and the connection's state.
func (s *markScan) compare(c *expr.Cmp) {
	l := s.loads[c.Register]
	r := &s.rule
	switch {
	case l == "iif" && c.Op == expr.CmpOpEq && len(c.Data) == 4:
		r.IifIndex = int(native.Uint32(c.Data))
		s.words = append(s.words, fmt.Sprintf("iif %d", r.IifIndex))
	case l == "iifname" && c.Op == expr.CmpOpEq:
		r.Iif = strings.TrimRight(string(c.Data), "\x00")
		s.words = append(s.words, fmt.Sprintf("iifname %q", r.Iif))
	case l == "oifname" && c.Op == expr.CmpOpEq:
		r.Oif = strings.TrimRight(string(c.Data), "\x00")
		s.words = append(s.words, fmt.Sprintf("oifname %q", r.Oif))
	case l == "ctstate" && c.Op == expr.CmpOpNeq && isZero(c.Data):
		r.CtStates = s.states[c.Register]
		s.words = append(s.words, "ct state "+ctStateNames(r.CtStates))
	default:
		r.Partial = true
		s.words = append(s.words, "…")
	}
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

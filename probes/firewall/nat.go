package firewall

// NAT rules: what translates the flow. Following a flow through NAT needs
// the translated tuple before any packet shows it (a gateway that holds the
// same DNAT rule as its twin but never saw the request), so the rules that
// can select the flow are read with what they select and where they
// translate to.

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// natScan is one walk over a rule's expressions for a NAT statement and
// the conditions before it.
type natScan struct {
	fam   nftables.TableFamily
	regs  map[uint32][]byte // registers an immediate loaded
	loads map[uint32]load   // what a payload or meta load put in a register
	rule  evidence.NATRule
	nat   bool
	words []string
}

// load is a header field a register holds, until a compare reads it.
type load struct {
	field string // "saddr", "daddr", "sport", "dport", "l4proto", "iifname", "oifname"
	bits  int    // an address under a mask: the prefix length; 0 for the whole address
}

// natRule reads a NAT rule; ok is false when the rule translates nothing.
func natRule(fam nftables.TableFamily, exprs []any) (evidence.NATRule, bool) {
	s := &natScan{fam: fam, regs: map[uint32][]byte{}, loads: map[uint32]load{}}
	for _, e := range exprs {
		s.read(e)
	}
	if !s.nat {
		return evidence.NATRule{}, false
	}
	s.rule.Text = strings.Join(s.words, " ")
	return s.rule, true
}

func (s *natScan) read(e any) {
	switch e := e.(type) {
	case *expr.Payload:
		s.payload(e)
	case *expr.Meta:
		s.meta(e)
	case *expr.Cmp:
		s.compare(e)
	case *expr.Immediate:
		s.regs[e.Register] = e.Data
	case *expr.NAT:
		s.translate(e)
	case *expr.Masq:
		s.nat, s.rule.Kind = true, evidence.NATMasquerade
		s.words = append(s.words, "masquerade")
	case *expr.Redir:
		s.nat, s.rule.Kind = true, evidence.NATRedirect
		s.words = append(s.words, "redirect")
	case *expr.Counter:
		s.rule.HasCounter, s.rule.Packets = true, e.Packets
		s.words = append(s.words, fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
	case *expr.Bitwise:
		s.mask(e)
	case *expr.Verdict:
		// A verdict after a NAT statement changes nothing for the flow.
	default:
		s.rule.Partial = true
		s.words = append(s.words, "…")
	}
}

// payload notes which header field a load puts in its register: the
// addresses and ports a NAT rule selects on.
func (s *natScan) payload(p *expr.Payload) {
	field := ""
	switch {
	case p.Base == expr.PayloadBaseNetworkHeader && s.is4() && p.Offset == 12 && p.Len == 4,
		p.Base == expr.PayloadBaseNetworkHeader && !s.is4() && p.Offset == 8 && p.Len == 16:
		field = "saddr"
	case p.Base == expr.PayloadBaseNetworkHeader && s.is4() && p.Offset == 16 && p.Len == 4,
		p.Base == expr.PayloadBaseNetworkHeader && !s.is4() && p.Offset == 24 && p.Len == 16:
		field = "daddr"
	case p.Base == expr.PayloadBaseNetworkHeader && s.is4() && p.Offset == 9 && p.Len == 1:
		field = "l4proto"
	case p.Base == expr.PayloadBaseTransportHeader && p.Offset == 0 && p.Len == 2:
		field = "sport"
	case p.Base == expr.PayloadBaseTransportHeader && p.Offset == 2 && p.Len == 2:
		field = "dport"
	}
	if field == "" {
		s.rule.Partial = true
		return
	}
	s.loads[p.DestRegister] = load{field: field}
}

func (s *natScan) meta(m *expr.Meta) {
	if m.SourceRegister {
		s.rule.Partial = true // a statement setting meta data: not a condition
		return
	}
	switch m.Key {
	case expr.MetaKeyL4PROTO:
		s.loads[m.Register] = load{field: "l4proto"}
	case expr.MetaKeyIIFNAME:
		s.loads[m.Register] = load{field: "iifname"}
	case expr.MetaKeyOIFNAME:
		s.loads[m.Register] = load{field: "oifname"}
	case expr.MetaKeyNFPROTO:
		s.loads[m.Register] = load{field: "nfproto"} // the family of an inet table: the address says it already
	default:
		s.rule.Partial = true
	}
}

// mask reads a prefix match (`ip daddr 10.0.0.0/8` is a load, a mask and
// a compare): the compare then selects a prefix.
func (s *natScan) mask(b *expr.Bitwise) {
	l, ok := s.loads[b.SourceRegister]
	if !ok || (l.field != "saddr" && l.field != "daddr") {
		s.rule.Partial = true
		return
	}
	ones := 0
	for _, m := range b.Mask {
		ones += bits.OnesCount8(m)
	}
	l.bits = ones
	s.loads[b.DestRegister] = l
}

// compare reads `field == value` into the rule; any other compare is a
// condition asym does not evaluate.
func (s *natScan) compare(c *expr.Cmp) {
	l, ok := s.loads[c.Register]
	if !ok || c.Op != expr.CmpOpEq {
		s.rule.Partial = true
		return
	}
	delete(s.loads, c.Register)
	r := &s.rule
	switch l.field {
	case "saddr", "daddr":
		a, ok := netip.AddrFromSlice(c.Data)
		if !ok {
			r.Partial = true
			return
		}
		p := netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		if l.bits > 0 {
			p = netip.PrefixFrom(a.Unmap(), l.bits)
		}
		if l.field == "saddr" {
			r.Src = p
		} else {
			r.Dst = p
		}
		s.words = append(s.words, "ip "+l.field+" "+evidence.HostOrPrefix(p))
	case "sport", "dport":
		if len(c.Data) != 2 {
			r.Partial = true
			return
		}
		port := binary.BigEndian.Uint16(c.Data)
		if l.field == "sport" {
			r.Sport = port
		} else {
			r.Dport = port
		}
		s.words = append(s.words, fmt.Sprintf("%s %d", l.field, port))
	case "l4proto":
		if len(c.Data) == 1 {
			r.Proto = c.Data[0]
			s.words = append(s.words, "meta l4proto "+evidence.ProtoName(c.Data[0]))
		}
	case "iifname", "oifname":
		name := strings.TrimRight(string(c.Data), "\x00")
		if l.field == "iifname" {
			r.Iif = name
		} else {
			r.Oif = name
		}
		s.words = append(s.words, l.field+" "+fmt.Sprintf("%q", name))
	}
}

// translate reads the NAT statement: its kind and where to, from the
// registers an immediate loaded.
func (s *natScan) translate(n *expr.NAT) {
	s.nat = true
	r := &s.rule
	r.Kind = evidence.NATSource
	if n.Type == expr.NATTypeDestNAT {
		r.Kind = evidence.NATDest
	}
	if b, ok := s.regs[n.RegAddrMin]; ok && n.RegAddrMin != 0 {
		if a, ok := netip.AddrFromSlice(b); ok {
			r.ToAddr = a.Unmap()
		}
	}
	if b, ok := s.regs[n.RegProtoMin]; ok && n.RegProtoMin != 0 && len(b) >= 2 {
		r.ToPort = binary.BigEndian.Uint16(b)
	}
	to := ""
	switch {
	case r.ToAddr.IsValid() && r.ToPort != 0:
		to = netip.AddrPortFrom(r.ToAddr, r.ToPort).String()
	case r.ToAddr.IsValid():
		to = r.ToAddr.String()
	case r.ToPort != 0:
		to = fmt.Sprintf(":%d", r.ToPort)
	}
	s.words = append(s.words, strings.TrimSpace(string(r.Kind)+" to "+to))
}

func (s *natScan) is4() bool { return s.fam != nftables.TableFamilyIPv6 }

// natLines show the NAT rules that translate the flow, and how many others
// there are, nft-style.
func natLines(rules []evidence.NATRule, others int, f flow.Flow) []string {
	var out []string
	for _, r := range rules {
		way := f
		if !r.Matches(f) {
			way = f.Reverse()
		}
		out = append(out, fmt.Sprintf("%s %s %s (hook %s): %s  # handle %d: %s becomes %s", r.Family, r.Table, r.Chain, r.Hook, r.Text, r.Handle, way.Arrow(), r.Translate(way).Arrow()))
	}
	if others > 0 {
		out = append(out, fmt.Sprintf("# %d other NAT rule(s) do not select this flow", others))
	}
	return out
}

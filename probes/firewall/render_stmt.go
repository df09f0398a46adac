package firewall

// Rendering what the drop-rule decoders leave as "…" and a path shows:
// set lookups keyed by loads (`ip saddr @servers`, `ip daddr . tcp dport
// vmap @svc`), statements that read registers (NAT, mark sets), random
// numbers and rates. A load a compare does not follow is held until what
// reads its register renders it.

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables/expr"
)

// heldLoad is a load no compare followed: what it reads, and whether the
// register holds it in host order (meta, ct, numgen) or network order.
type heldLoad struct {
	word   string
	native bool
}

// hold keeps a load for what reads its register next.
func (s *scanner) hold(reg uint32, word string, native bool) {
	if s.held == nil {
		s.held = map[uint32]heldLoad{}
	}
	s.held[reg] = heldLoad{word, native}
}

// take gives the load held in reg.
func (s *scanner) take(reg uint32) (heldLoad, bool) {
	h, ok := s.held[reg]
	delete(s.held, reg)
	return h, ok
}

// keyWords names the loads a lookup keyed at reg reads: one, or several
// held in consecutive registers (a concatenation).
func (s *scanner) keyWords(reg uint32) string {
	w, ok := regWord(reg)
	if !ok {
		return ""
	}
	var regs []uint32
	for r := range s.held {
		if rw, ok := regWord(r); ok && rw >= w {
			regs = append(regs, r)
		}
	}
	slices.SortFunc(regs, func(a, b uint32) int {
		wa, _ := regWord(a)
		wb, _ := regWord(b)
		return wa - wb
	})
	var words []string
	for _, r := range regs {
		h, _ := s.take(r)
		words = append(words, h.word)
	}
	return strings.Join(words, " . ")
}

func decodeLookup(s *scanner, l *expr.Lookup) {
	key := s.keyWords(l.SourceRegister)
	if key == "" {
		key = "…"
	}
	set := "@" + l.SetName
	if strings.HasPrefix(l.SetName, "__") {
		set = "{ … }"
	}
	switch {
	case l.IsDestRegSet && l.DestRegister == 0:
		s.text.push(key + " vmap " + set)
	case l.IsDestRegSet:
		s.hold(l.DestRegister, key+" map "+set, false)
	case l.Invert:
		s.text.push(key + " != " + set)
	default:
		s.text.push(key + " " + set)
	}
}

func decodeImmediate(s *scanner, i *expr.Immediate) {
	if s.regs == nil {
		s.regs = map[uint32][]byte{}
	}
	s.regs[i.Register] = i.Data
}

// heldCompare renders a compare of a held load: `numgen random mod 2 0`.
func heldCompare(s *scanner, h heldLoad, c *expr.Cmp) {
	op := ""
	if c.Op != expr.CmpOpEq {
		op = cmpOpName(c.Op) + " "
	}
	s.text.push(h.word + " " + op + valueText(c.Data, h.native))
}

// valueText renders a constant: a number for 1, 2, 4 or 8 bytes, else hex.
func valueText(d []byte, native bool) string {
	var order binary.ByteOrder = binary.BigEndian
	if native {
		order = binary.NativeEndian
	}
	switch len(d) {
	case 1:
		return strconv.Itoa(int(d[0]))
	case 2:
		return strconv.Itoa(int(order.Uint16(d)))
	case 4:
		return strconv.FormatUint(uint64(order.Uint32(d)), 10)
	case 8:
		return strconv.FormatUint(order.Uint64(d), 10)
	}
	return fmt.Sprintf("0x%x", d)
}

// setValue renders what a statement sets from a register: a constant an
// immediate loaded, or a load held there.
func (s *scanner) setValue(reg uint32) string {
	if h, ok := s.take(reg); ok {
		return h.word
	}
	if d, ok := s.regs[reg]; ok && len(d) == 4 {
		return fmt.Sprintf("0x%x", native.Uint32(d))
	}
	return "…"
}

func decodeNAT(s *scanner, n *expr.NAT) {
	word := "snat"
	if n.Type == expr.NATTypeDestNAT {
		word = "dnat"
	}
	s.text.push(strings.TrimSpace(word + " to " + s.natTo(n.RegAddrMin, n.RegProtoMin)))
}

// natTo renders where a NAT statement translates to, from the registers
// immediates loaded.
func (s *scanner) natTo(addrReg, portReg uint32) string {
	var addr netip.Addr
	if b, ok := s.regs[addrReg]; ok && addrReg != 0 {
		addr, _ = netip.AddrFromSlice(b)
	}
	port := uint16(0)
	if b, ok := s.regs[portReg]; ok && portReg != 0 && len(b) >= 2 {
		port = binary.BigEndian.Uint16(b)
	}
	switch {
	case addr.IsValid() && port != 0:
		return netip.AddrPortFrom(addr.Unmap(), port).String()
	case addr.IsValid():
		return addr.Unmap().String()
	case port != 0:
		return ":" + strconv.Itoa(int(port))
	}
	return ""
}

func decodeMasq(s *scanner, m *expr.Masq) {
	if to := s.natTo(0, m.RegProtoMin); to != "" {
		s.text.push("masquerade to " + to)
		return
	}
	s.text.push("masquerade")
}

func decodeRedir(s *scanner, r *expr.Redir) {
	if to := s.natTo(0, r.RegisterProtoMin); to != "" {
		s.text.push("redirect to " + to)
		return
	}
	s.text.push("redirect")
}

func decodeNumgen(s *scanner, n *expr.Numgen) {
	kind := "inc"
	if n.Type == 1 { // NFT_NG_RANDOM
		kind = "random"
	}
	s.hold(n.Register, fmt.Sprintf("numgen %s mod %d", kind, n.Modulus), true)
}

func decodeLimit(s *scanner, l *expr.Limit) {
	over := ""
	if l.Over {
		over = "over "
	}
	unit := map[expr.LimitTime]string{expr.LimitTimeSecond: "second", expr.LimitTimeMinute: "minute", expr.LimitTimeHour: "hour",
		expr.LimitTimeDay: "day", expr.LimitTimeWeek: "week"}[l.Unit]
	bytes := ""
	if l.Type == expr.LimitTypePktBytes {
		bytes = " bytes"
	}
	s.text.push(fmt.Sprintf("limit rate %s%d%s/%s", over, l.Rate, bytes, unit))
}

func decodeNotrack(s *scanner, _ *expr.Notrack) { s.text.push("notrack") }

func decodeQueue(s *scanner, _ *expr.Queue) {
	s.text.push("queue")
	s.sc.verdict = "queue"
}

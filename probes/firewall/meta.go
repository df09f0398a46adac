package firewall

// meta: the conditions on protocol, interface and mark that commonly narrow
// a ct-invalid or rpfilter rule.

import (
	"bytes"
	"fmt"
	"strconv"

	"asym/evidence"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// decodeMeta reads a meta load compared with a constant.
func decodeMeta(s *scanner, m *expr.Meta) {
	if m.SourceRegister {
		if m.Key == expr.MetaKeyMARK {
			s.text.push("meta mark set " + s.setValue(m.Register))
			return
		}
		s.text.push("…")
		return
	}
	used, text := metaCond(s.rest, m)
	if word, ok := metaLoadWords[m.Key]; ok && used == 0 {
		s.hold(m.Register, word, m.Key == expr.MetaKeyMARK || m.Key == expr.MetaKeyIIF || m.Key == expr.MetaKeyOIF)
		return
	}
	s.condition(used, text)
}

// metaLoadWords name the meta loads a set lookup or a statement may read.
var metaLoadWords = map[expr.MetaKey]string{
	expr.MetaKeyMARK: "meta mark", expr.MetaKeyIIFNAME: "iifname", expr.MetaKeyOIFNAME: "oifname",
	expr.MetaKeyIIF: "iif", expr.MetaKeyOIF: "oif", expr.MetaKeyL4PROTO: "meta l4proto", expr.MetaKeyNFPROTO: "meta nfproto",
}

// metaWords render `meta KEY OP VALUE` for the keys asym spells out; op is
// "" for == or the operator and a space. They return false for a value
// they cannot read.
var metaWords = map[expr.MetaKey]func(op string, d []byte) (string, bool){
	expr.MetaKeyNFPROTO: metaNFProto,
	expr.MetaKeyL4PROTO: func(op string, d []byte) (string, bool) {
		return "meta l4proto " + op + evidence.ProtoName(d[0]), true
	},
	expr.MetaKeyIIFNAME: metaIfname("iifname "),
	expr.MetaKeyOIFNAME: metaIfname("oifname "),
	expr.MetaKeyIIF:     metaIfindex("iif "),
	expr.MetaKeyOIF:     metaIfindex("oif "),
	expr.MetaKeyMARK: func(op string, d []byte) (string, bool) {
		return fmt.Sprintf("meta mark %s0x%08x", op, key32(d)), len(d) == 4
	},
}

// metaCond renders a meta load compared with a constant; used is 0 when it
// cannot.
func metaCond(rest []any, m *expr.Meta) (used int, text string) {
	if m.SourceRegister || len(rest) == 0 {
		return 0, ""
	}
	cmp, ok := compareOf(rest[0], m.Register)
	word := metaWords[m.Key]
	if !ok || len(cmp.Data) == 0 || word == nil {
		return 0, ""
	}
	op := ""
	if cmp.Op != expr.CmpOpEq {
		op = cmpOpName(cmp.Op) + " "
	}
	if text, ok = word(op, cmp.Data); !ok {
		return 0, ""
	}
	return 1, text
}

func metaNFProto(op string, d []byte) (string, bool) {
	switch d[0] {
	case unix.NFPROTO_IPV4:
		return "meta nfproto " + op + "ipv4", true
	case unix.NFPROTO_IPV6:
		return "meta nfproto " + op + "ipv6", true
	}
	return fmt.Sprintf("meta nfproto %s%d", op, d[0]), true
}

// metaIfname renders an interface name. A name without its NUL is a prefix
// match (iptables -i eth+).
func metaIfname(word string) func(op string, d []byte) (string, bool) {
	return func(op string, d []byte) (string, bool) {
		name, _, exact := bytes.Cut(d, []byte{0})
		s := string(name)
		if !exact {
			s += "*"
		}
		return word + op + strconv.Quote(s), true
	}
}

// metaIfindex renders an interface index, a host-endian u32.
func metaIfindex(word string) func(op string, d []byte) (string, bool) {
	return func(op string, d []byte) (string, bool) {
		return fmt.Sprintf("%s%s%d", word, op, key32(d)), len(d) == 4
	}
}

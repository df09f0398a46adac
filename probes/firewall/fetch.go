package firewall

// Fetching one chain's rules at a time: NFT_MSG_GETRULE with the table and
// the chain named, which the kernel answers with that chain's rules only
// (nf_tables_dump_rules skips the others), over one socket kept open for
// the whole walk.
//
// The expressions are decoded here rather than by google/nftables'
// GetRules, which drops an expression it has no type for (byteorder, rt,
// socket, …) without a trace: a compare after a dropped load would then
// read whatever the register held before, and a rule would seem to match
// what it does not. Here such an expression stays in the rule as opaque,
// and the walk takes it to make every register unknown.

import (
	"asym/probes/nldump"
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawRule is one rule as fetched: its handle and its expressions, each
// kept as its name and data and decoded when first needed (an expr.Any, a
// *byteorderExpr or an *opaqueExpr). Most rules of a large chain fail at
// their first compare: the rest of them is never decoded.
type rawRule struct {
	handle uint64
	fam    byte
	names  []string
	data   [][]byte
	done   []any // decoded so far, by index; nil entries are not yet
}

// n is the number of expressions.
func (r *rawRule) n() int { return len(r.names) }

// at decodes expression i (once). One that cannot be decoded is opaque.
func (r *rawRule) at(i int) any {
	if r.done == nil {
		r.done = make([]any, len(r.names))
	}
	if r.done[i] == nil {
		e, err := decodeExpr(r.fam, r.names[i], r.data[i])
		if err != nil {
			e = &opaqueExpr{name: r.names[i]}
		}
		r.done[i] = e
	}
	return r.done[i]
}

// all decodes every expression.
func (r *rawRule) all() []any {
	for i := range r.names {
		r.at(i)
	}
	return r.done
}

// opaqueExpr is an expression asym does not decode, by name.
type opaqueExpr struct{ name string }

// byteorderExpr converts host to network order or back
// (nft_byteorder.c): google/nftables v0.3.0 has the type but no decoder.
type byteorderExpr struct {
	sreg, dreg uint32
	hton       bool
	len, size  uint32
}

// The byteorder attributes (include/uapi/linux/netfilter/nf_tables.h).
const (
	nftaByteorderSreg = 1
	nftaByteorderDreg = 2
	nftaByteorderOp   = 3
	nftaByteorderLen  = 4
	nftaByteorderSize = 5
)

// nfMsgType is a message type of the nftables subsystem.
func nfMsgType(msg uint16) netlink.HeaderType {
	return netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | msg)
}

// nfgenmsg is the header every nfnetlink message starts with: the family,
// version 0 and a resource id of 0.
func nfgenmsg(family nftables.TableFamily) []byte {
	return []byte{byte(family), unix.NFNETLINK_V0, 0, 0}
}

// fetchRules asks for the rules of one chain, read off the socket in
// place (nldump).
func fetchRules(c *netlink.Conn, family nftables.TableFamily, table, chain string) ([]rawRule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: append([]byte(table), 0)},
		{Type: unix.NFTA_RULE_CHAIN, Data: append([]byte(chain), 0)},
	})
	if err != nil {
		return nil, err
	}
	var out []rawRule
	err = nldump.Request(c, netlink.Message{
		Header: netlink.Header{Type: nfMsgType(unix.NFT_MSG_GETRULE)},
		Data:   append(nfgenmsg(family), attrs...),
	}, func(typ uint16, data []byte) error {
		if typ == uint16(nfMsgType(unix.NFT_MSG_NEWRULE)) && len(data) >= 4 {
			out = append(out, splitRule(byte(family), data[4:]))
		}
		return nil
	})
	return out, err
}

// listChains lists the chains of a family's tables (one NFT_MSG_GETCHAIN
// dump), read off the socket as fetchRules reads rules: a ruleset of
// thousands of chains is listed for the headers of the few the walk
// needs. It reads the hook's device, which google/nftables' ListChains
// leaves out.
func listChains(c *netlink.Conn, family nftables.TableFamily) ([]*nftables.Chain, error) {
	var out []*nftables.Chain
	err := nldump.Request(c, netlink.Message{Header: netlink.Header{Type: nfMsgType(unix.NFT_MSG_GETCHAIN)}, Data: nfgenmsg(family)},
		func(typ uint16, data []byte) error {
			if typ == uint16(nfMsgType(unix.NFT_MSG_NEWCHAIN)) && len(data) >= 4 {
				out = append(out, chainOf(nftables.TableFamily(data[0]), data[4:]))
			}
			return nil
		})
	return out, err
}

// chainOf reads one chain's attributes.
func chainOf(fam nftables.TableFamily, b []byte) *nftables.Chain {
	ch := &nftables.Chain{Table: &nftables.Table{Family: fam}}
	str := func(v []byte) string { return string(bytes.TrimRight(v, "\x00")) }
	for _, a := range nldump.Attrs(b) {
		switch a.Type {
		case unix.NFTA_CHAIN_TABLE:
			ch.Table.Name = str(a.Value)
		case unix.NFTA_CHAIN_NAME:
			ch.Name = str(a.Value)
		case unix.NFTA_CHAIN_TYPE:
			ch.Type = nftables.ChainType(str(a.Value))
		case unix.NFTA_CHAIN_POLICY:
			if len(a.Value) == 4 {
				p := nftables.ChainPolicy(binary.BigEndian.Uint32(a.Value))
				ch.Policy = &p
			}
		case unix.NFTA_CHAIN_HOOK:
			hookOf(ch, a.Value)
		}
	}
	return ch
}

// hookOf reads a base chain's hook: its number, priority and device.
func hookOf(ch *nftables.Chain, b []byte) {
	for _, a := range nldump.Attrs(b) {
		switch {
		case a.Type == unix.NFTA_HOOK_HOOKNUM && len(a.Value) == 4:
			h := nftables.ChainHook(binary.BigEndian.Uint32(a.Value))
			ch.Hooknum = &h
		case a.Type == unix.NFTA_HOOK_PRIORITY && len(a.Value) == 4:
			p := nftables.ChainPriority(int32(binary.BigEndian.Uint32(a.Value)))
			ch.Priority = &p
		case a.Type == unix.NFTA_HOOK_DEV:
			ch.Device = string(bytes.TrimRight(a.Value, "\x00"))
		}
	}
}

// splitRule reads a rule's handle and splits its expressions into names
// and data, decoding none of them.
func splitRule(fam byte, b []byte) rawRule {
	r := rawRule{fam: fam}
	for _, a := range nldump.Attrs(b) {
		switch a.Type {
		case unix.NFTA_RULE_HANDLE:
			if len(a.Value) == 8 {
				r.handle = binary.BigEndian.Uint64(a.Value)
			}
		case unix.NFTA_RULE_EXPRESSIONS:
			for _, elem := range nldump.Attrs(a.Value) { // NFTA_LIST_ELEM
				var name string
				var data []byte
				for _, f := range nldump.Attrs(elem.Value) {
					switch f.Type {
					case unix.NFTA_EXPR_NAME:
						name = string(bytes.TrimRight(f.Value, "\x00"))
					case unix.NFTA_EXPR_DATA:
						data = f.Value
					}
				}
				r.names, r.data = append(r.names, name), append(r.data, data)
			}
		}
	}
	return r
}

// decodeExpr decodes one expression from its name and data.
func decodeExpr(fam byte, name string, data []byte) (any, error) {
	switch name {
	case "notrack":
		return &expr.Notrack{}, nil
	case "ct":
		return decodeCtExpr(data)
	case "byteorder":
		return decodeByteorder(data)
	case "immediate":
		var imm expr.Immediate
		if err := expr.Unmarshal(fam, data, &imm); err != nil {
			return nil, err
		}
		if imm.Register != unix.NFT_REG_VERDICT || len(imm.Data) > 0 {
			return &imm, nil
		}
		var v expr.Verdict
		return &v, expr.Unmarshal(fam, data, &v)
	}
	e := exprOfName(name)
	if e == nil {
		return &opaqueExpr{name: name}, nil
	}
	if err := expr.Unmarshal(fam, data, e); err != nil {
		return nil, fmt.Errorf("expression %s: %w", name, err)
	}
	return e, nil
}

// decodeCtExpr reads a ct expression with its source register, which
// google/nftables v0.3.0 does not read back: `ct mark set` would come back
// as a ct load into no register.
func decodeCtExpr(data []byte) (any, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	ct := &expr.Ct{}
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_CT_DREG:
			ct.Register = ad.Uint32()
		case unix.NFTA_CT_KEY:
			ct.Key = expr.CtKey(ad.Uint32())
		case unix.NFTA_CT_DIRECTION:
			ct.Direction = uint32(ad.Uint8())
		case unix.NFTA_CT_SREG:
			ct.Register, ct.SourceRegister = ad.Uint32(), true
		}
	}
	return ct, ad.Err()
}

func decodeByteorder(data []byte) (any, error) {
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		return nil, err
	}
	ad.ByteOrder = binary.BigEndian
	b := &byteorderExpr{}
	for ad.Next() {
		switch ad.Type() {
		case nftaByteorderSreg:
			b.sreg = ad.Uint32()
		case nftaByteorderDreg:
			b.dreg = ad.Uint32()
		case nftaByteorderOp:
			b.hton = ad.Uint32() == unix.NFT_BYTEORDER_HTON
		case nftaByteorderLen:
			b.len = ad.Uint32()
		case nftaByteorderSize:
			b.size = ad.Uint32()
		}
	}
	return b, ad.Err()
}

// exprOfName is the google/nftables type for an expression name, nil for
// one it does not decode. The same list as its exprFromName.
func exprOfName(name string) expr.Any {
	switch name {
	case "range":
		return &expr.Range{}
	case "meta":
		return &expr.Meta{}
	case "cmp":
		return &expr.Cmp{}
	case "counter":
		return &expr.Counter{}
	case "objref":
		return &expr.Objref{}
	case "payload":
		return &expr.Payload{}
	case "lookup":
		return &expr.Lookup{}
	case "bitwise":
		return &expr.Bitwise{}
	case "redir":
		return &expr.Redir{}
	case "nat":
		return &expr.NAT{}
	case "limit":
		return &expr.Limit{}
	case "quota":
		return &expr.Quota{}
	case "dynset":
		return &expr.Dynset{}
	case "log":
		return &expr.Log{}
	case "exthdr":
		return &expr.Exthdr{}
	case "match":
		return &expr.Match{}
	case "target":
		return &expr.Target{}
	case "connlimit":
		return &expr.Connlimit{}
	case "queue":
		return &expr.Queue{}
	case "flow_offload":
		return &expr.FlowOffload{}
	case "reject":
		return &expr.Reject{}
	case "masq":
		return &expr.Masq{}
	case "hash":
		return &expr.Hash{}
	case "synproxy":
		return &expr.SynProxy{}
	case "secmark":
		return &expr.SecMark{}
	case "fib":
		return &expr.Fib{}
	case "numgen":
		return &expr.Numgen{}
	}
	return nil
}

// toAny turns google/nftables' expressions into the walk's.
func toAny(exprs []expr.Any) []any {
	out := make([]any, len(exprs))
	for i, e := range exprs {
		out[i] = e
	}
	return out
}

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
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// rawRule is one rule as fetched: its handle and expressions. Each
// expression is an expr.Any, a *byteorderExpr or an *opaqueExpr.
type rawRule struct {
	handle uint64
	exprs  []any
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

// fetchRules asks for the rules of one chain.
func fetchRules(c *netlink.Conn, family nftables.TableFamily, table, chain string) ([]rawRule, error) {
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_RULE_TABLE, Data: append([]byte(table), 0)},
		{Type: unix.NFTA_RULE_CHAIN, Data: append([]byte(chain), 0)},
	})
	if err != nil {
		return nil, err
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: nfMsgType(unix.NFT_MSG_GETRULE), Flags: netlink.Request | netlink.Dump},
		Data:   append(nfgenmsg(family), attrs...),
	})
	if err != nil {
		return nil, err
	}
	out := make([]rawRule, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != nfMsgType(unix.NFT_MSG_NEWRULE) || len(m.Data) < 4 {
			continue
		}
		r, err := decodeRule(byte(family), m.Data[4:])
		if err != nil {
			return nil, fmt.Errorf("decode a rule of chain %s %s: %w", table, chain, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeRule(fam byte, b []byte) (rawRule, error) {
	var r rawRule
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return r, err
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_RULE_HANDLE:
			r.handle = ad.Uint64()
		case unix.NFTA_RULE_EXPRESSIONS:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					nad.Nested(func(ead *netlink.AttributeDecoder) error {
						e, err := decodeExpr(fam, ead)
						if err == nil {
							r.exprs = append(r.exprs, e)
						}
						return err
					})
				}
				return nil
			})
		}
	}
	return r, ad.Err()
}

// decodeExpr decodes one NFTA_LIST_ELEM: its name, then its data.
func decodeExpr(fam byte, ad *netlink.AttributeDecoder) (any, error) {
	var name string
	var data []byte
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_EXPR_NAME:
			name = ad.String()
		case unix.NFTA_EXPR_DATA:
			data = ad.Bytes()
		}
	}
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

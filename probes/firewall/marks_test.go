package firewall

import (
	"testing"

	"asym/evidence"

	"github.com/google/nftables/expr"
)

// TestMarkRules: the mark statements nft compiles, as google/nftables reads
// them back (a `ct mark set` arrives with no register: v0.3.0 does not
// decode NFTA_CT_SREG), each with the rule's conditions.
func TestMarkRules(t *testing.T) {
	u32 := func(v uint32) []byte { return native.PutUint32(v) }
	cases := []struct {
		name  string
		exprs []expr.Any
		want  []evidence.MarkRule
		text  string
	}{
		{"iif eth1 meta mark set 0x1 ct mark set meta mark", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIF, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: u32(3)},
			&expr.Immediate{Register: 1, Data: u32(1)}, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1}, &expr.Ct{Key: expr.CtKeyMARK},
		}, []evidence.MarkRule{{Sets: evidence.MarkPacket, Value: 1, IifIndex: 3}, {Sets: evidence.MarkConn, Copy: true, IifIndex: 3}},
			"iif 3 meta mark set 0x1 ct mark set meta mark"},
		{"iifname eth1 ct state new ct mark set 0x2", []expr.Any{
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte("eth1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
			&expr.Ct{Key: expr.CtKeySTATE, Register: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: u32(expr.CtStateBitNEW), Xor: u32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: u32(0)},
			&expr.Immediate{Register: 1, Data: u32(2)}, &expr.Ct{Key: expr.CtKeyMARK, Register: 1, SourceRegister: true},
		}, []evidence.MarkRule{{Sets: evidence.MarkConn, Value: 2, Iif: "eth1", CtStates: evidence.CtStateNew}},
			`iifname "eth1" ct state new ct mark set 0x2`},
		{"meta mark set ct mark (the restore)", []expr.Any{
			&expr.Ct{Key: expr.CtKeyMARK, Register: 1}, &expr.Meta{Key: expr.MetaKeyMARK, Register: 1, SourceRegister: true},
		}, []evidence.MarkRule{{Sets: evidence.MarkPacket, Copy: true}}, "meta mark set ct mark"},
		{"no mark", []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}, nil, ""},
	}
	for _, c := range cases {
		got := markRules(toAny(c.exprs))
		if len(got) != len(c.want) {
			t.Fatalf("%s: %d statements %+v, want %d", c.name, len(got), got, len(c.want))
		}
		for i, w := range c.want {
			g := got[i]
			if g.Sets != w.Sets || g.Copy != w.Copy || g.Value != w.Value || g.Iif != w.Iif || g.IifIndex != w.IifIndex || g.CtStates != w.CtStates || g.Partial || g.Text != c.text {
				t.Errorf("%s: statement %d is %+v, want %+v with text %q", c.name, i, g, w, c.text)
			}
		}
	}
}

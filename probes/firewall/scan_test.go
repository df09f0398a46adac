package firewall

import (
	"testing"

	"asym/evidence"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

func TestFirewallScanRule(t *testing.T) {
	firewalldVmap := nftSet{anonymous: true, elems: []nftSetElem{
		{key: probetest.U32(expr.CtStateBitESTABLISHED), verdict: "accept"},
		{key: probetest.U32(expr.CtStateBitINVALID), verdict: "drop"},
		{key: probetest.U32(expr.CtStateBitRELATED), verdict: "accept"},
	}}
	established := nftSet{anonymous: true, elems: []nftSetElem{
		{key: probetest.U32(expr.CtStateBitESTABLISHED), verdict: "accept"},
		{key: probetest.U32(expr.CtStateBitRELATED), verdict: "accept"},
	}}
	invalidNew := nftSet{anonymous: true, elems: []nftSetElem{{key: probetest.U32(expr.CtStateBitNEW)}, {key: probetest.U32(expr.CtStateBitINVALID)}}}
	sets := func(name string) (nftSet, bool) {
		s, ok := map[string]nftSet{"__map0": firewalldVmap, "__map1": established, "__set0": invalidNew}[name]
		return s, ok
	}
	fib := func(f expr.Fib, data ...byte) []expr.Any {
		f.Register = 1
		return []expr.Any{&f, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}}
	}
	strict := expr.Fib{FlagSADDR: true, FlagIIF: true, ResultOIF: true}
	strictPresent := expr.Fib{FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true}

	tests := []struct {
		name     string
		fam      nftables.TableFamily
		exprs    []expr.Any
		kind     evidence.FirewallRuleKind // "" = not reported
		source   string
		verdict  string
		text     string
		counter  bool
		pkts     uint64
		ctrName  string
		noCtrSet bool
	}{
		{name: "ct state invalid counter drop (nft)", exprs: probetest.Cat(probetest.CtState(1, expr.CmpOpNeq), &expr.Counter{Packets: 3, Bytes: 120}, probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", counter: true, pkts: 3,
			text: "ct state invalid counter packets 3 bytes 120 drop"},
		{name: "established,related accept is not about invalid", exprs: probetest.Cat(probetest.CtState(6, expr.CmpOpNeq), probetest.Accept)},
		{name: "invalid,new drop", exprs: probetest.Cat(probetest.CtState(9, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: "ct state invalid,new drop"},
		{name: "!= established drops invalid too", exprs: probetest.Cat(probetest.CtState(2, expr.CmpOpEq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: "ct state != established drop"},
		{name: "!= invalid accept", exprs: probetest.Cat(probetest.CtState(1, expr.CmpOpEq), probetest.Accept)},
		{name: "ct state == invalid without bitwise",
			exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: probetest.U32(1)}, probetest.Drop),
			kind:  "ct_invalid", source: "nftables", verdict: "drop", text: "ct state == invalid drop"},
		{name: "a counter before the match counts everything", exprs: probetest.Cat(&expr.Counter{Packets: 10, Bytes: 400}, probetest.CtState(1, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", counter: false,
			text: "counter packets 10 bytes 400 ct state invalid drop"},
		{name: "counting rule without verdict", exprs: probetest.Cat(probetest.CtState(1, expr.CmpOpNeq), &expr.Counter{Packets: 1, Bytes: 40}),
			kind: "ct_invalid", source: "nftables", verdict: "", counter: true, pkts: 1,
			text: "ct state invalid counter packets 1 bytes 40"},
		{name: "log and jump", exprs: probetest.Cat(probetest.CtState(1, expr.CmpOpNeq), &expr.Log{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: "LOGDROP"}),
			kind: "ct_invalid", source: "nftables", verdict: "jump LOGDROP", text: "ct state invalid log jump LOGDROP"},
		{name: "named counter and reject", exprs: probetest.Cat(probetest.CtState(1, expr.CmpOpNeq), &expr.Objref{Type: 1, Name: "inv"}, &expr.Reject{Type: 2, Code: 1}),
			kind: "ct_invalid", source: "nftables", verdict: "reject", ctrName: "inv", text: `ct state invalid counter name "inv" reject`},
		{name: "with source prefix (nft, inet)", fam: nftables.TableFamilyINet,
			exprs: probetest.Cat(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{unix.NFPROTO_IPV4}},
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 3},
				&expr.Cmp{Register: 1, Data: []byte{192, 0, 2}}, probetest.CtState(1, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: "ip saddr 192.0.2.0/24 ct state invalid drop"},
		{name: "with iifname", exprs: probetest.Cat(&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
			&expr.Cmp{Register: 1, Data: []byte("eth1\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")}, probetest.CtState(1, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: `iifname "eth1" ct state invalid drop`},
		{name: "firewalld vmap", exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Lookup{SourceRegister: 1, SetName: "__map0", IsDestRegSet: true, DestRegister: 0}),
			kind: "ct_invalid", source: "nftables", verdict: "drop",
			text: "ct state vmap { invalid : drop, established : accept, related : accept }"},
		{name: "vmap without invalid", exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Lookup{SourceRegister: 1, SetName: "__map1", IsDestRegSet: true, DestRegister: 0})},
		{name: "anonymous set", exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Lookup{SourceRegister: 1, SetName: "__set0"}, &expr.Counter{Packets: 2, Bytes: 80}, probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", counter: true, pkts: 2,
			text: "ct state { invalid, new } counter packets 2 bytes 80 drop"},
		{name: "set that cannot be read", exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Lookup{SourceRegister: 1, SetName: "gone"}, probetest.Drop)},
		{name: "fib missing (nft wiki, firewalld)", exprs: probetest.Cat(fib(strictPresent, 0), &expr.Counter{Packets: 4, Bytes: 336}, probetest.Drop),
			kind: "fib_rpfilter", source: "nftables", verdict: "drop", counter: true, pkts: 4,
			text: "fib saddr . iif oif missing counter packets 4 bytes 336 drop"},
		{name: "fib oif eq 0", exprs: probetest.Cat(fib(strict, 0, 0, 0, 0), probetest.Drop),
			kind: "fib_rpfilter", source: "nftables", verdict: "drop", text: "fib saddr . iif oif 0 drop"},
		{name: "firewalld ipv6 rpfilter with mark", exprs: probetest.Cat(&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
			&expr.Cmp{Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
			fib(expr.Fib{FlagSADDR: true, FlagMARK: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true}, 0), probetest.Drop),
			kind: "fib_rpfilter", source: "nftables", verdict: "drop", text: "meta nfproto ipv6 fib saddr . mark . iif oif missing drop"},
		{name: "loose fib", exprs: probetest.Cat(fib(expr.Fib{FlagSADDR: true, ResultOIF: true, FlagPRESENT: true}, 0), probetest.Drop),
			kind: "fib_rpfilter", source: "nftables", verdict: "drop", text: "fib saddr oif missing drop"},
		{name: "fib exists accept", exprs: probetest.Cat(&expr.Fib{Register: 1, FlagSADDR: true, FlagIIF: true, ResultOIF: true, FlagPRESENT: true},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}}, probetest.Accept)},
		{name: "fib daddr type local", exprs: probetest.Cat(fib(expr.Fib{FlagDADDR: true, ResultADDRTYPE: true}, 2, 0, 0, 0), probetest.Accept)},
		{name: "iptables-nft -m conntrack --ctstate INVALID", fam: nftables.TableFamilyIPv4,
			exprs: probetest.Cat(probetest.XtConntrack(1, false), &expr.Counter{Packets: 5, Bytes: 300}, probetest.Drop),
			kind:  "ct_invalid", source: "iptables-nft", verdict: "drop", counter: true, pkts: 5,
			text: "ct state invalid counter packets 5 bytes 300 drop"},
		{name: "iptables-nft ! --ctstate INVALID", exprs: probetest.Cat(probetest.XtConntrack(1, true), probetest.Accept)},
		{name: "iptables-nft --ctstate RELATED,ESTABLISHED", exprs: probetest.Cat(probetest.XtConntrack(6, false), probetest.Accept)},
		{name: "iptables-nft -s 198.51.100.0/24 -m state --state INVALID -j REJECT", fam: nftables.TableFamilyIPv4,
			exprs: probetest.Cat(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
				&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: probetest.U32(0)},
				&expr.Cmp{Register: 1, Data: []byte{198, 51, 100, 0}},
				&expr.Match{Name: "state", Info: probetest.XtRaw(1, 0, 0, 0, 0, 0, 0, 0)}, &expr.Counter{},
				&expr.Target{Name: "REJECT", Info: probetest.XtRaw(0, 0, 0, 0, 0, 0, 0, 0)}),
			kind: "ct_invalid", source: "iptables-nft", verdict: "reject", counter: true,
			text: "ip saddr 198.51.100.0/24 ct state invalid counter packets 0 bytes 0 reject"},
		{name: "iptables-nft -m rpfilter --invert -j DROP", exprs: probetest.Cat(&expr.Match{Name: "rpfilter", Info: probetest.XtRaw(8, 0, 0, 0, 0, 0, 0, 0)}, &expr.Counter{}, probetest.Drop),
			kind: "fib_rpfilter", source: "iptables-nft", verdict: "drop", counter: true, text: "fib saddr . iif oif 0 counter packets 0 bytes 0 drop"},
		{name: "iptables-nft -m rpfilter --loose --validmark --invert", exprs: probetest.Cat(&expr.Match{Name: "rpfilter", Info: probetest.XtRaw(11, 0, 0, 0, 0, 0, 0, 0)}, probetest.Drop),
			kind: "fib_rpfilter", source: "iptables-nft", verdict: "drop", text: "fib saddr . mark . oif 0 drop"},
		{name: "iptables-nft -m rpfilter -j ACCEPT", exprs: probetest.Cat(&expr.Match{Name: "rpfilter", Info: probetest.XtRaw(0, 0, 0, 0, 0, 0, 0, 0)}, probetest.Accept)},
		{name: "unknown conditions collapse", exprs: probetest.Cat(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseLLHeader, Offset: 6, Len: 6},
			&expr.Cmp{Register: 1, Data: make([]byte, 6)}, &expr.Meta{Key: expr.MetaKeyCPU, Register: 1}, &expr.Cmp{Register: 1, Data: probetest.U32(0)},
			probetest.CtState(1, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: "… ct state invalid drop"},
		{name: "tcp dport 22 accept", exprs: probetest.Cat(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Register: 1, Data: []byte{0, 22}}, probetest.Accept)},
		{name: "tcp dport rendering", exprs: probetest.Cat(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Register: 1, Data: []byte{6}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Register: 1, Data: []byte{0x1f, 0x90}}, probetest.CtState(1, expr.CmpOpNeq), probetest.Drop),
			kind: "ct_invalid", source: "nftables", verdict: "drop", text: "tcp dport 8080 ct state invalid drop"},
		{name: "ct mark is not ct state", exprs: probetest.Cat(&expr.Ct{Register: 1, Key: expr.CtKeyMARK}, &expr.Cmp{Register: 1, Data: probetest.U32(1)}, probetest.Drop)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fam := tc.fam
			if fam == 0 {
				fam = nftables.TableFamilyINet
			}
			sc := scanRule(fam, toAny(tc.exprs), sets)
			if sc.kind != tc.kind {
				t.Fatalf("kind = %q, want %q (text %q)", sc.kind, tc.kind, sc.text)
			}
			if tc.kind == "" {
				return
			}
			if sc.source != tc.source || sc.verdict != tc.verdict || sc.text != tc.text {
				t.Errorf("got source %q verdict %q text %q\nwant source %q verdict %q text %q",
					sc.source, sc.verdict, sc.text, tc.source, tc.verdict, tc.text)
			}
			if (sc.counter != nil) != tc.counter {
				t.Errorf("counter attributed = %v, want %v", sc.counter != nil, tc.counter)
			}
			if sc.counter != nil && sc.counter.Packets != tc.pkts {
				t.Errorf("packets = %d, want %d", sc.counter.Packets, tc.pkts)
			}
			if sc.counterName != tc.ctrName {
				t.Errorf("named counter = %q, want %q", sc.counterName, tc.ctrName)
			}
		})
	}
}

func TestFirewallVerdictData(t *testing.T) {
	// NFTA_DATA_VERDICT payloads exactly as GetSetElements returned them
	// for firewalld-style vmap elements on Linux 6.18.
	tests := []struct {
		val  []byte
		want string
	}{
		{[]byte{8, 0, 1, 0, 0, 0, 0, 0}, "drop"},
		{[]byte{8, 0, 1, 0, 0, 0, 0, 1}, "accept"},
		{[]byte{8, 0, 1, 0, 255, 255, 255, 253, 18, 0, 2, 0, 'a', 'l', 'l', 'o', 'w', '_', 'r', 'e', 'l', 'a', 't', 'e', 'd', 0, 0, 0}, "jump allow_related"},
		{[]byte{1, 2}, ""},
		{[]byte{6, 0, 1, 0, 0, 0, 0, 0}, ""}, // a 2-byte code: malformed, not a panic
	}
	for _, tc := range tests {
		if got := decodeVerdictData(tc.val); got != tc.want {
			t.Errorf("decodeVerdictData(%v) = %q, want %q", tc.val, got, tc.want)
		}
	}
}

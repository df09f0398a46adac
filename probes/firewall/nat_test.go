package firewall

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"asym/evidence"
	"asym/flow"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TestNATRule: the NAT rules nft compiles are read with what they select
// and where they translate to, and a flow they select is translated; a
// rule with conditions asym cannot read says so.
func TestNATRule(t *testing.T) {
	vip, to := netip.MustParseAddrPort("203.0.113.80:80"), netip.MustParseAddrPort("198.18.0.10:8080")
	vip4, to4 := vip.Addr().As4(), to.Addr().As4()
	net4 := netip.MustParseAddr("198.51.100.0").As4()
	dnat := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip4[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, vip.Port())},
		&expr.Counter{Packets: 3},
		&expr.Immediate{Register: 1, Data: to4[:]},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}
	snatNet := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: []byte{255, 255, 255, 0}, Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: net4[:]},
		&expr.Masq{},
	}
	unread := []expr.Any{&expr.Rt{Register: 1, Key: expr.RtNexthop4}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{1, 2, 3, 4}},
		&expr.Immediate{Register: 1, Data: to4[:]}, &expr.NAT{Type: expr.NATTypeSourceNAT, RegAddrMin: 1}}
	client := flow.Flow{Proto: flow.TCP, Src: netip.MustParseAddrPort("192.0.2.10:40000"), Dst: vip}

	r, ok := natRule(nftables.TableFamilyIPv4, toAny(dnat))
	if !ok || r.Kind != evidence.NATDest || r.ToAddr != to.Addr() || r.ToPort != 8080 || r.Proto != 6 || r.Dport != 80 ||
		r.Dst != netip.MustParsePrefix("203.0.113.80/32") || r.Partial || !r.HasCounter || r.Packets != 3 {
		t.Fatalf("dnat: %+v", r)
	}
	if r.Text != "ip daddr 203.0.113.80 meta l4proto tcp dport 80 counter packets 3 bytes 0 dnat to 198.18.0.10:8080" {
		t.Errorf("dnat text %q", r.Text)
	}
	if !r.Matches(client) || r.Translate(client) != (flow.Flow{Proto: flow.TCP, Src: client.Src, Dst: to}) {
		t.Errorf("the client's flow to the VIP is translated to %v", r.Translate(client))
	}
	other := client
	other.Dst = netip.MustParseAddrPort("203.0.113.80:443")
	if r.Matches(other) || r.Matches(other.Reverse()) {
		t.Error("a rule for port 80 does not concern port 443")
	}
	if got := evidence.NATForms([]evidence.NATRule{r}, client); len(got) != 1 || got[0].Dst != to {
		t.Errorf("forms %v", got)
	}
	// The server's own view of the flow is the reply of a DNAT written for
	// the other side: its form is the flow back through the rule.
	if got := evidence.NATForms([]evidence.NATRule{r}, client.Reverse()); len(got) != 1 || got[0].Src != to {
		t.Errorf("forms of the reverse %v", got)
	}

	m, ok := natRule(nftables.TableFamilyIPv4, toAny(snatNet))
	inside := flow.Flow{Proto: flow.UDP, Src: netip.MustParseAddrPort("198.51.100.7:5353"), Dst: netip.MustParseAddrPort("203.0.113.9:53")}
	if !ok || m.Kind != evidence.NATMasquerade || m.Src != netip.MustParsePrefix("198.51.100.0/24") || !m.Matches(inside) || m.Partial {
		t.Errorf("masquerade of a subnet: %+v", m)
	}
	u, ok := natRule(nftables.TableFamilyIPv4, toAny(unread))
	if !ok || !u.Partial || u.Kind != evidence.NATSource {
		t.Errorf("a rule with a condition asym cannot read is partial: %+v", u)
	}
	if _, ok := natRule(nftables.TableFamilyIPv4, toAny([]expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}})); ok {
		t.Error("a rule without NAT is not a NAT rule")
	}
}

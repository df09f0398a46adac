package lab

// Building block for translating gateways: a port forward (DNAT) as nft
// writes it, built with google/nftables expressions.

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// dnat installs a TCP port forward: `table ip nat { chain prerouting { type
// nat hook prerouting priority dstnat; policy accept; ip daddr <vip> tcp
// dport <port> counter dnat to <to> } }`. The rule's counter counts
// connections, not packets: only a connection's first packet passes the nat
// chains, so a gateway that never saw the request shows 0. A nat chain also
// makes the namespace track connections (notes §2).
func (b *builder) dnat(role string, vip, to netip.AddrPort) error {
	if !vip.Addr().Is4() || !to.Addr().Is4() {
		return fmt.Errorf("dnat %s to %s: the lab translates IPv4 only", vip, to)
	}
	c, err := b.nft(role)
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "nat"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityNATDest, Policy: &accept})
	vip4, to4 := vip.Addr().As4(), to.Addr().As4()
	// The same expressions nft compiles the rule to: the address compare, the
	// l4proto dependency of `tcp dport`, the port, then the target's
	// address and port in registers 1 and 2 for the nat expression.
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip4[:]},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, vip.Port())},
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: to4[:]},
		&expr.Immediate{Register: 2, Data: binary.BigEndian.AppendUint16(nil, to.Port())},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
	}})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("install `ip daddr %s tcp dport %d dnat to %s` in namespace %s: %w", vip.Addr(), vip.Port(), to, b.name(role), err)
	}
	return nil
}

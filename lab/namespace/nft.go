package namespace

import (
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Nft opens an nftables connection inside ns. It holds no socket between
// flushes, so there is nothing to close.
func Nft(ns NS) (*nftables.Conn, error) {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.Handle)))
	if err != nil {
		return nil, fmt.Errorf("open nftables in namespace %s: %w", ns.Name, err)
	}
	return c, nil
}

// BaseChain adds `chain name { type filter hook hook priority prio; policy
// accept; }` to table tb.
func BaseChain(c *nftables.Conn, tb *nftables.Table, name string, hook *nftables.ChainHook, prio int32) *nftables.Chain {
	accept := nftables.ChainPolicyAccept
	return c.AddChain(&nftables.Chain{Name: name, Table: tb, Type: nftables.ChainTypeFilter,
		Hooknum: hook, Priority: nftables.ChainPriorityRef(nftables.ChainPriority(prio)), Policy: &accept})
}

// FilterRule adds one rule to `table inet filter { chain chain { type
// filter hook hook priority 0; policy accept; } }` in ns, creating the
// table and the chain if they are not there yet.
func FilterRule(ns NS, chain string, hook *nftables.ChainHook, exprs ...expr.Any) error {
	c, err := Nft(ns)
	if err != nil {
		return err
	}
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "filter"})
	c.AddRule(&nftables.Rule{Table: tb, Chain: BaseChain(c, tb, chain, hook, 0), Exprs: exprs})
	if err := c.Flush(); err != nil {
		return fmt.Errorf("add a rule to chain %s of table inet filter in namespace %s: %w", chain, ns.Name, err)
	}
	return nil
}

// CtInvalidDrop is `ct state invalid counter drop` as nft compiles it. The
// kernel ANDs the state register as a host-endian u32, hence the mask in
// native byte order.
func CtInvalidDrop() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// TrackConntrack installs `table inet filter { chain input { type filter
// hook input priority 0; policy accept; ct state invalid counter drop } }`
// in ns: a stateful host firewall. A fresh namespace tracks no connections
// until a ruleset uses conntrack (vishvananda/netlink conntrack_test.go,
// ensureCtHooksInThisNS): the ct expression is what makes it track at all.
func TrackConntrack(ns NS) error {
	return FilterRule(ns, "input", nftables.ChainHookInput, CtInvalidDrop()...)
}

package firewall

// Reading the counters of rules Probe found, again and again: the live
// watch samples them every interval.

import (
	"fmt"

	"github.com/google/nftables"
)

// RuleCount is the packet count of one rule, as ChainCounters read it.
type RuleCount struct {
	Handle  uint64
	Packets uint64
	// Counted says the rule has a counter that counts what its match
	// selects: its own placed after the match, or a named one.
	Counted bool
}

// ChainCounters reads the rules of one chain and returns a RuleCount for
// each rule whose handle watched accepts and that is still there. It
// recognises each rule as Probe does, so the count is the one of the
// counter that counts what the match selected; sets and named counters are
// read only for rules that need them. A chain that is gone is an error
// that errors.Is matches with ENOENT.
func ChainCounters(c *nftables.Conn, family nftables.TableFamily, table, chain string, watched func(handle uint64) bool) ([]RuleCount, error) {
	tb := &nftables.Table{Name: table, Family: family}
	rules, err := c.GetRules(tb, &nftables.Chain{Name: chain, Table: tb})
	if err != nil {
		return nil, nftErr(fmt.Sprintf("list the rules of chain %s %s", tableKey(tb), chain), err)
	}
	tr := newTableReader(c, tb)
	var out []RuleCount
	for _, r := range rules {
		if watched(r.Handle) {
			out = append(out, tr.ruleCount(r))
		}
	}
	return out, nil
}

// ruleCount recognises r and reads the counter that counts its match.
func (tr *tableReader) ruleCount(r *nftables.Rule) RuleCount {
	rc := RuleCount{Handle: r.Handle}
	sc := scanRule(tr.tb.Family, toAny(r.Exprs), tr.set)
	ctr := sc.counter
	if ctr == nil && sc.counterName != "" {
		ctr, _ = tr.namedCounter(sc.counterName)
	}
	if ctr != nil {
		rc.Packets, rc.Counted = ctr.Packets, true
	}
	return rc
}

// DialLasting opens an nftables socket that stays open across requests,
// for reading chains again every interval (ChainCounters). nsfd is a
// descriptor of the namespace, or -1 for the namespace asym runs in. The
// library dials again with nsfd when the socket was closed, so nsfd must
// stay open until CloseLasting.
func DialLasting(nsfd int) (*nftables.Conn, error) {
	opts := []nftables.ConnOption{nftables.AsLasting()}
	if nsfd >= 0 {
		opts = append(opts, nftables.WithNetNSFd(nsfd))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, nftErr("open nftables", err)
	}
	return c, nil
}

// FamilyByName is the nftables family a FirewallRule names ("inet", "ip"…).
func FamilyByName(name string) (nftables.TableFamily, bool) {
	for _, f := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyIPv4, nftables.TableFamilyIPv6,
		nftables.TableFamilyBridge, nftables.TableFamilyNetdev, nftables.TableFamilyARP} {
		if familyName(f) == name {
			return f, true
		}
	}
	return 0, false
}

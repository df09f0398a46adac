// Package xtables writes iptables-legacy (x_tables) tables for tests and the
// lab, the way iptables-legacy-restore does but without it: the table is
// laid out as libiptc lays it out and handed to the kernel with
// setsockopt(IPT_SO_SET_REPLACE) (IP6T_SO_SET_REPLACE for ip6tables) on a
// thread inside the namespace. Nothing else in asym writes x_tables.
//
// It encodes the structs on its own, apart from the reader in
// asym/probes/xtables: the kernel checks every entry it is given
// (ip_tables.c translate_table), so a table it accepts from here is an
// independent witness for what the reader decodes.
package xtables

import (
	"fmt"
	"net/netip"
	"slices"
)

// Table is a whole x_tables table: installing it replaces every rule the
// table had.
type Table struct {
	Family string // "ip" (when empty) or "ip6"
	Name   string // "filter", "raw", "mangle", "nat" or "security"
	// Chains holds built-in chains by name (INPUT, FORWARD, …) and user
	// chains. A built-in chain of the table that is not listed is empty
	// with policy ACCEPT. User chains are laid out in this order.
	Chains []Chain
}

// Chain is a built-in chain (with a policy) or a user chain.
type Chain struct {
	Name   string
	Policy string // built-in chains: "ACCEPT" (when empty) or "DROP"; user chains: ""
	Rules  []Rule
}

// Rule is one rule: the conditions of the entry itself, its matches and
// its target.
type Rule struct {
	Src, Dst netip.Prefix // the zero Prefix matches any address
	In, Out  string       // interface names; "eth+" matches every name starting with "eth"
	Proto    uint8        // 0: any
	Matches  []Match
	// Target is what a matching packet gets; the zero Target only counts
	// it and goes on to the next rule (iptables without -j).
	Target Target
}

// Match is an x_tables match: its kernel name, revision and data, which
// must be exactly the kernel's struct padded to 8 bytes. The constructors
// below build the ones the tests need.
type Match struct {
	Name     string
	Revision uint8
	Data     []byte
}

// Target is a rule's target: a standard verdict, a jump or goto to a user
// chain, or an extension.
type Target struct {
	verdict string // "ACCEPT", "DROP", "RETURN", "QUEUE"
	chain   string // jump or goto target
	isGoto  bool
	ext     *Match // an extension target, with the same layout as a match
}

// The standard targets.
var (
	Accept = Target{verdict: "ACCEPT"}
	Drop   = Target{verdict: "DROP"}
	Return = Target{verdict: "RETURN"}
	Queue  = Target{verdict: "QUEUE"}
)

// Jump is -j CHAIN for a user chain.
func Jump(chain string) Target { return Target{chain: chain} }

// Goto is -g CHAIN: the chain's end does not come back here.
func Goto(chain string) Target { return Target{chain: chain, isGoto: true} }

// Extension is -j NAME for an extension target such as REJECT or MARK.
func Extension(name string, revision uint8, data []byte) Target {
	return Target{ext: &Match{Name: name, Revision: revision, Data: data}}
}

// hooks are the built-in chains, by hook number (NF_INET_*).
var hooks = [5]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// validHooks are the hooks each table registers (iptable_filter.c
// FILTER_VALID_HOOKS and friends); replacing a table with other hooks is
// refused (ip_tables.c __do_replace: "You lied!").
var validHooks = map[string]uint32{
	"filter":   1<<1 | 1<<2 | 1<<3,
	"raw":      1<<0 | 1<<3,
	"mangle":   1<<0 | 1<<1 | 1<<2 | 1<<3 | 1<<4,
	"nat":      1<<0 | 1<<1 | 1<<3 | 1<<4,
	"security": 1<<1 | 1<<2 | 1<<3,
}

// check says what is wrong with a table before it is encoded.
func (t Table) check() error {
	if t.Family != "" && t.Family != "ip" && t.Family != "ip6" {
		return fmt.Errorf("family %q: use \"ip\" or \"ip6\"", t.Family)
	}
	valid, ok := validHooks[t.Name]
	if !ok {
		return fmt.Errorf("table %q: use filter, raw, mangle, nat or security", t.Name)
	}
	seen := map[string]bool{}
	for _, c := range t.Chains {
		if seen[c.Name] {
			return fmt.Errorf("chain %s is listed twice", c.Name)
		}
		seen[c.Name] = true
		if h := slices.Index(hooks[:], c.Name); h >= 0 {
			if valid&(1<<h) == 0 {
				return fmt.Errorf("table %s has no chain %s", t.Name, c.Name)
			}
			if c.Policy != "" && c.Policy != "ACCEPT" && c.Policy != "DROP" {
				return fmt.Errorf("chain %s: a policy is ACCEPT or DROP, not %q", c.Name, c.Policy)
			}
			continue
		}
		switch {
		case c.Policy != "":
			return fmt.Errorf("user chain %s cannot have a policy", c.Name)
		case c.Name == "" || len(c.Name) > 28:
			return fmt.Errorf("user chain name %q must have 1 to 28 characters", c.Name)
		}
	}
	for _, c := range t.Chains {
		for i, r := range c.Rules {
			if r.Target.chain != "" && (!seen[r.Target.chain] || slices.Contains(hooks[:], r.Target.chain)) {
				return fmt.Errorf("chain %s rule %d jumps to %s, which is not a user chain of this table", c.Name, i+1, r.Target.chain)
			}
		}
	}
	return nil
}

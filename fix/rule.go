package fix

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"asym/evidence"
)

// Kinds of rule steps.
const (
	KindRuleAdd Kind = "rule.add"
	KindRuleDel Kind = "rule.del"
)

// RuleSpec is a routing policy rule with every selector the kernel knows,
// so that a rule asym deletes can be put back exactly as it was. Optional
// numbers are pointers: the kernel gives 0 a meaning for some of them
// (suppress_prefixlength 0 is common).
type RuleSpec struct {
	IPv6              bool         `json:"ipv6,omitempty"`
	Priority          int          `json:"priority,omitempty"`
	Src               netip.Prefix `json:"src,omitzero"`
	Dst               netip.Prefix `json:"dst,omitzero"`
	Table             int          `json:"table,omitempty"`
	Iif               string       `json:"iif,omitempty"`
	Oif               string       `json:"oif,omitempty"`
	Mark              uint32       `json:"fwmark,omitempty"`
	Mask              *uint32      `json:"fwmask,omitempty"`
	Tos               uint         `json:"tos,omitempty"`
	TunID             uint         `json:"tun_id,omitempty"`
	Goto              *int         `json:"goto,omitempty"`
	Flow              *int         `json:"realms,omitempty"`
	SuppressIfgroup   *int         `json:"suppress_ifgroup,omitempty"`
	SuppressPrefixlen *int         `json:"suppress_prefixlength,omitempty"`
	Invert            bool         `json:"not,omitempty"`
	Sport             *[2]uint16   `json:"sport,omitempty"`
	Dport             *[2]uint16   `json:"dport,omitempty"`
	IPProto           int          `json:"ipproto,omitempty"`
	UIDRange          *[2]uint32   `json:"uidrange,omitempty"`
	Protocol          uint8        `json:"protocol,omitempty"`
	Type              uint8        `json:"type,omitempty"` // FR_ACT_*: 0 or 1 lookup, 2 goto, 3 nop, 6 blackhole, 7 unreachable, 8 prohibit
}

// Is6 says whether the rule is of the IPv6 policy database.
func (r RuleSpec) Is6() bool {
	return r.IPv6 || r.Src.Addr().Is6() || r.Dst.Addr().Is6()
}

// words renders the rule's selectors and action after "ip rule add|del".
func (r RuleSpec) words() []string {
	var w []string
	if r.Invert {
		w = append(w, "not")
	}
	if r.Src.IsValid() {
		w = append(w, "from", evidence.HostOrPrefix(r.Src))
	}
	if r.Dst.IsValid() {
		w = append(w, "to", evidence.HostOrPrefix(r.Dst))
	}
	if r.Tos != 0 {
		w = append(w, "tos", "0x"+strconv.FormatUint(uint64(r.Tos), 16))
	}
	if r.Mark != 0 || r.Mask != nil {
		m := "0x" + strconv.FormatUint(uint64(r.Mark), 16)
		if r.Mask != nil && *r.Mask != 0xffffffff {
			m += "/0x" + strconv.FormatUint(uint64(*r.Mask), 16)
		}
		w = append(w, "fwmark", m)
	}
	if r.Iif != "" {
		w = append(w, "iif", r.Iif)
	}
	if r.Oif != "" {
		w = append(w, "oif", r.Oif)
	}
	if r.UIDRange != nil {
		w = append(w, "uidrange", strconv.Itoa(int(r.UIDRange[0]))+"-"+strconv.Itoa(int(r.UIDRange[1])))
	}
	if r.IPProto != 0 {
		w = append(w, "ipproto", evidence.ProtoName(uint8(r.IPProto)))
	}
	for _, p := range []struct {
		name string
		v    *[2]uint16
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if p.v == nil {
			continue
		}
		s := strconv.Itoa(int(p.v[0]))
		if p.v[1] != p.v[0] {
			s += "-" + strconv.Itoa(int(p.v[1]))
		}
		w = append(w, p.name, s)
	}
	switch {
	case r.Goto != nil && *r.Goto >= 0:
		w = append(w, "goto", strconv.Itoa(*r.Goto))
	case r.Type == 6:
		w = append(w, "blackhole")
	case r.Type == 7:
		w = append(w, "unreachable")
	case r.Type == 8:
		w = append(w, "prohibit")
	case r.Type == 3:
		w = append(w, "nop")
	default:
		w = append(w, "lookup", strconv.Itoa(r.Table))
	}
	if r.SuppressPrefixlen != nil && *r.SuppressPrefixlen >= 0 {
		w = append(w, "suppress_prefixlength", strconv.Itoa(*r.SuppressPrefixlen))
	}
	w = append(w, "priority", strconv.Itoa(r.Priority))
	if r.Protocol != 0 {
		// A rule asym added, or one it captured to put back: pasted, the
		// command names that rule and no look-alike of another protocol.
		w = append(w, "protocol", strconv.Itoa(int(r.Protocol)))
	}
	return w
}

func ruleWords(verb string, r RuleSpec) []string {
	w := []string{"ip"}
	if r.Is6() {
		w = append(w, "-6")
	}
	return append(append(w, "rule", verb), r.words()...)
}

// RuleAdd adds a policy rule.
type RuleAdd struct {
	RuleSpec
	// Dev is the interface whose configuration should carry the rule when
	// it is made permanent; empty when the table's routes say it.
	Dev string `json:"dev,omitempty"`
	// Restore marks the undo of a RuleDel: the rule asym deleted is put
	// back only where no other rule has taken its priority since.
	Restore bool `json:"restore,omitempty"`
}

func (s *RuleAdd) Kind() Kind      { return KindRuleAdd }
func (s *RuleAdd) Words() []string { return ruleWords("add", s.RuleSpec) }
func (s *RuleAdd) Missing() string { return "" }

// Prepare refuses when another rule took the priority since the host was
// probed (unless an earlier step of the fix deletes it). The rule asym
// adds carries asym's protocol, so that its undo deletes that rule and no
// other.
func (s *RuleAdd) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	rules, err := k.Rules(ctx, s.Is6())
	if err != nil {
		return nil, nil, fmt.Errorf("read the rules: %w", err)
	}
	for _, r := range rules {
		if r.Priority == s.Priority && !prep.freed[s.Priority] {
			return nil, nil, fmt.Errorf("priority %d is taken by another rule now: the host changed since it was probed; run the check again", s.Priority)
		}
	}
	do := *s
	do.Protocol = Protocol
	return &do, &RuleDel{RuleSpec: do.RuleSpec}, nil
}

// Apply adds the rule unless it is there already (IsGone). A rule put
// back (Restore) where another rule holds its priority now is a Drift. A
// fix may add rules of one priority (the kernel keeps them in the order
// they came), and Prepare checked the priority against the kernel's.
func (s *RuleAdd) Apply(ctx context.Context, k Kernel) error {
	rules, err := k.Rules(ctx, s.Is6())
	if err != nil {
		return fmt.Errorf("read the rules: %w", err)
	}
	for _, r := range rules {
		if SameRule(r, s.RuleSpec) {
			return errGone{"the rule " + describeRule(s.RuleSpec) + " is already there"}
		}
	}
	for _, r := range rules {
		if s.Restore && r.Priority == s.Priority {
			return &Drift{fmt.Sprintf("priority %d holds another rule now (%s), not %s: someone changed it since; asym leaves it alone",
				s.Priority, describeRule(r), describeRule(s.RuleSpec))}
		}
	}
	return k.AddRule(ctx, s.RuleSpec)
}

// RuleDel deletes a policy rule: the one with its priority, table and
// source. Prepared, it becomes the whole rule found in the kernel, so that
// its undo puts back exactly that rule, every selector included.
type RuleDel struct {
	RuleSpec
}

func (s *RuleDel) Kind() Kind      { return KindRuleDel }
func (s *RuleDel) Words() []string { return ruleWords("del", s.RuleSpec) }
func (s *RuleDel) Missing() string { return "" }

func (s *RuleDel) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	rules, err := k.Rules(ctx, s.Is6())
	if err != nil {
		return nil, nil, fmt.Errorf("read the rules: %w", err)
	}
	for _, r := range rules {
		if r.Priority == s.Priority && r.Table == s.Table && r.Src == s.Src {
			prep.free(s.Priority)
			return &RuleDel{RuleSpec: r}, &RuleAdd{RuleSpec: r, Restore: true}, nil
		}
	}
	return nil, nil, fmt.Errorf("the rule %q is no longer there: the host changed since it was probed; run the check again",
		strings.Join(s.RuleSpec.words(), " "))
}

// Apply deletes the rule that is exactly this one, named with every
// selector and its protocol: the kernel treats a selector a delete leaves
// out as a wildcard, so a rule that differs only in one asym did not name
// (an iif) would otherwise go in its place.
func (s *RuleDel) Apply(ctx context.Context, k Kernel) error {
	rules, err := k.Rules(ctx, s.Is6())
	if err != nil {
		return fmt.Errorf("read the rules: %w", err)
	}
	for _, r := range rules {
		if SameRule(r, s.RuleSpec) {
			return k.DelRule(ctx, r)
		}
	}
	for _, r := range rules {
		if r.Priority == s.Priority {
			return &Drift{fmt.Sprintf("the rule at priority %d is not %s any more but %s: someone changed it since; asym leaves it alone",
				s.Priority, describeRule(s.RuleSpec), describeRule(r))}
		}
	}
	return errGone{"the rule " + describeRule(s.RuleSpec) + " is not there"}
}

package evidence

import (
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one routing policy rule (`ip rule`), as plain data.
type Rule struct {
	Priority          int          `json:"priority"`
	Src               netip.Prefix `json:"from,omitzero"` // invalid = all
	Dst               netip.Prefix `json:"to,omitzero"`
	Iif               string       `json:"iif,omitempty"`
	Oif               string       `json:"oif,omitempty"`
	Mark              uint32       `json:"fwmark,omitempty"`
	Mask              uint32       `json:"fwmask,omitempty"` // 0 with Mark = 0xffffffff
	Tos               uint         `json:"tos,omitempty"`
	IPProto           int          `json:"ipproto,omitempty"`
	Sport             [2]uint16    `json:"sport,omitzero"` // [start,end]; zero = any
	Dport             [2]uint16    `json:"dport,omitzero"`
	UID               [2]uint32    `json:"uidrange,omitzero"`
	HasUID            bool         `json:"-"`
	Invert            bool         `json:"not,omitempty"`
	Action            string       `json:"action"` // lookup, goto, nop, blackhole, unreachable, prohibit
	Table             int          `json:"table,omitempty"`
	Goto              int          `json:"goto,omitempty"`
	SuppressPrefixlen int          `json:"suppress_prefixlength,omitempty"` // -1 = unset
	Text              string       `json:"text"`
}

// Default reports whether this is one of the three rules the kernel creates
// (0 lookup local, 32766 lookup main, 32767 lookup default) with no selectors.
func (r Rule) Default() bool {
	plain := !r.Src.IsValid() && !r.Dst.IsValid() && r.Iif == "" && r.Oif == "" && r.Mark == 0 && r.IPProto == 0 && !r.HasUID && r.Sport == [2]uint16{} && r.Dport == [2]uint16{}
	return plain && r.Action == "lookup" && ((r.Priority == 0 && r.Table == TableLocal) ||
		(r.Priority == 32766 && r.Table == TableMain) || (r.Priority == 32767 && r.Table == TableDefault))
}

// Packet is what rule selection looks at. For a packet this host sends, Iif
// is "lo": the kernel sets flowi iif to the loopback device for local output,
// which is why `iif lo` rules match only locally generated traffic.
type Packet struct {
	Src, Dst     netip.Addr
	Iif, Oif     string
	Mark         uint32
	Proto        uint8
	Sport, Dport uint16
	UID          uint32
	HasUID       bool
}

// Matches applies the rule's selectors to p the way fib_rule_match does.
func (r Rule) Matches(p Packet) bool {
	m := r.matches(p)
	if r.Invert {
		return !m
	}
	return m
}

func (r Rule) matches(p Packet) bool {
	if r.Src.IsValid() && !r.Src.Contains(p.Src) {
		return false
	}
	if r.Dst.IsValid() && !r.Dst.Contains(p.Dst) {
		return false
	}
	if r.Iif != "" && r.Iif != p.Iif {
		return false
	}
	if r.Oif != "" && r.Oif != p.Oif {
		return false
	}
	if r.Mark != 0 || r.Mask != 0 {
		mask := r.Mask
		if mask == 0 {
			mask = 0xffffffff
		}
		if (p.Mark^r.Mark)&mask != 0 {
			return false
		}
	}
	if r.IPProto != 0 && uint8(r.IPProto) != p.Proto {
		return false
	}
	if r.Sport != [2]uint16{} && (p.Sport < r.Sport[0] || p.Sport > r.Sport[1]) {
		return false
	}
	if r.Dport != [2]uint16{} && (p.Dport < r.Dport[0] || p.Dport > r.Dport[1]) {
		return false
	}
	if r.HasUID && (!p.HasUID || p.UID < r.UID[0] || p.UID > r.UID[1]) {
		return false
	}
	return true
}

// RulesView is the policy database of the flow's family: the rules that
// concern the flow (RuleScope), and how many others there are.
type RulesView struct {
	Report
	Rules  []Rule `json:"rules"`
	Others int    `json:"others,omitempty"` // rules that concern neither direction of the flow nor an address of this host
}

// RuleScope is what makes a policy rule concern a flow on this host: the
// packets of both directions as rule selection sees them, the marks they
// may carry, and the host's own addresses with their subnets. Every rule
// is read (the kernel has no filter for a rule dump); only these are
// reported.
type RuleScope struct {
	Packets []Packet
	// Marks are the marks the packets may carry; nil when they are not
	// known, and every mark is taken to be possible.
	Marks []uint32
	Local []netip.Prefix
}

// Concerns says whether a rule concerns the flow: one of the kernel's own
// three, one that can select either direction, or one that selects on an
// address of this host or of its subnets (a per-interface table, a typo).
func (s RuleScope) Concerns(r Rule) bool {
	if r.Default() {
		return true
	}
	for _, p := range s.Packets {
		if r.HasUID && p.Iif == "lo" {
			// A packet this host sends may come from any user.
			p.HasUID, p.UID = true, r.UID[0]
		}
		if s.Marks == nil {
			p.Mark = r.Mark
			if r.Matches(p) {
				return true
			}
			continue
		}
		for _, m := range s.Marks {
			p.Mark = m
			if r.Matches(p) {
				return true
			}
		}
	}
	if r.Src.IsValid() {
		for _, a := range s.Local {
			if a.Masked().Contains(r.Src.Addr()) || r.Src.Contains(a.Addr()) {
				return true
			}
		}
	}
	return false
}

// Served returns the rule that produced a decision: the first rule, in
// priority order, that matches the packet and either looks up the table the
// kernel answered from or ends the lookup itself (blackhole, unreachable,
// prohibit). Nil when unknown.
func (v *RulesView) Served(d *RouteDecision, p Packet) *Rule {
	if v == nil || d == nil || d.Failed() && d.Type == "" {
		return nil
	}
	for i := range v.Rules {
		r := &v.Rules[i]
		if !r.Matches(p) {
			continue
		}
		switch r.Action {
		case "lookup":
			if r.Table == d.Table {
				return r
			}
		case "blackhole", "unreachable", "prohibit":
			return r
		}
	}
	return nil
}

// Matching returns the rules that match p, in priority order.
func (v *RulesView) Matching(p Packet) []Rule {
	if v == nil {
		return nil
	}
	var out []Rule
	for _, r := range v.Rules {
		if r.Matches(p) {
			out = append(out, r)
		}
	}
	return out
}

// Render prints the rule as `ip rule show` does.
func (r Rule) Render() string {
	var w []string
	if r.Invert {
		w = append(w, "not")
	}
	if r.Src.IsValid() {
		w = append(w, "from", HostOrPrefix(r.Src))
	} else {
		w = append(w, "from", "all")
	}
	if r.Dst.IsValid() {
		w = append(w, "to", HostOrPrefix(r.Dst))
	}
	if r.Tos != 0 {
		w = append(w, "tos", "0x"+strconv.FormatUint(uint64(r.Tos), 16))
	}
	if r.Mark != 0 || r.Mask != 0 {
		s := "0x" + strconv.FormatUint(uint64(r.Mark), 16)
		if r.Mask != 0 && r.Mask != 0xffffffff {
			s += "/0x" + strconv.FormatUint(uint64(r.Mask), 16)
		}
		w = append(w, "fwmark", s)
	}
	if r.Iif != "" {
		w = append(w, "iif", r.Iif)
	}
	if r.Oif != "" {
		w = append(w, "oif", r.Oif)
	}
	if r.HasUID {
		w = append(w, "uidrange", strconv.Itoa(int(r.UID[0]))+"-"+strconv.Itoa(int(r.UID[1])))
	}
	if r.IPProto != 0 {
		w = append(w, "ipproto", ProtoName(uint8(r.IPProto)))
	}
	for _, pr := range []struct {
		name string
		v    [2]uint16
	}{{"sport", r.Sport}, {"dport", r.Dport}} {
		if pr.v == [2]uint16{} {
			continue
		}
		s := strconv.Itoa(int(pr.v[0]))
		if pr.v[1] != pr.v[0] {
			s += "-" + strconv.Itoa(int(pr.v[1]))
		}
		w = append(w, pr.name, s)
	}
	switch r.Action {
	case "lookup":
		w = append(w, "lookup", TableName(r.Table))
	case "goto":
		w = append(w, "goto", strconv.Itoa(r.Goto))
	default:
		w = append(w, r.Action)
	}
	if r.SuppressPrefixlen > 0 {
		w = append(w, "suppress_prefixlength", strconv.Itoa(r.SuppressPrefixlen))
	}
	return strconv.Itoa(r.Priority) + ":\t" + strings.Join(w, " ")
}

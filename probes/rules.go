package probes

import (
	"context"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"asym/flow"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
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
	return plain && r.Action == "lookup" && ((r.Priority == 0 && r.Table == unix.RT_TABLE_LOCAL) ||
		(r.Priority == 32766 && r.Table == unix.RT_TABLE_MAIN) || (r.Priority == 32767 && r.Table == unix.RT_TABLE_DEFAULT))
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

// RulesView is the policy database of the flow's family.
type RulesView struct {
	Report
	Rules []Rule `json:"rules"`
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

// ProbeRules lists the policy rules of the flow's family. The rule list is
// small on any real host (hundreds at most), so a dump is the targeted query.
func ProbeRules(ctx context.Context, t *Target, f flow.Flow) *RulesView {
	r, start := begin("rules", "Policy routing rules")
	v := &RulesView{Report: r}
	defer v.finish(start)
	family := netlink.FAMILY_V4
	v.Command = t.IPCmd("rule", "show")
	if f.Is6() {
		family = netlink.FAMILY_V6
		v.Command = t.IPCmd("-6", "rule", "show")
	}
	var rules []netlink.Rule
	if err := t.withTimeout(ctx, func() (err error) { rules, err = t.nl.RuleList(family); return }); err != nil {
		v.Fail(err)
		return v
	}
	t.gotRules.Add(int64(len(rules)))
	for _, nr := range rules {
		v.Rules = append(v.Rules, convertRule(nr))
	}
	sort.SliceStable(v.Rules, func(i, j int) bool { return v.Rules[i].Priority < v.Rules[j].Priority })
	for _, r := range v.Rules {
		v.Add("%s", r.Text)
	}
	return v
}

func convertRule(nr netlink.Rule) Rule {
	r := Rule{
		Priority: nr.Priority, Src: prefixOf(nr.Src), Dst: prefixOf(nr.Dst), Iif: nr.IifName, Oif: nr.OifName,
		Mark: nr.Mark, Tos: nr.Tos, IPProto: nr.IPProto, Invert: nr.Invert, Table: nr.Table, Goto: nr.Goto,
		SuppressPrefixlen: nr.SuppressPrefixlen,
	}
	if nr.Mask != nil {
		r.Mask = *nr.Mask
	}
	if nr.Sport != nil {
		r.Sport = [2]uint16{nr.Sport.Start, nr.Sport.End}
	}
	if nr.Dport != nil {
		r.Dport = [2]uint16{nr.Dport.Start, nr.Dport.End}
	}
	if nr.UIDRange != nil {
		r.UID, r.HasUID = [2]uint32{nr.UIDRange.Start, nr.UIDRange.End}, true
	}
	switch nr.Type {
	case unix.FR_ACT_GOTO:
		r.Action = "goto"
	case unix.FR_ACT_NOP:
		r.Action = "nop"
	case unix.FR_ACT_BLACKHOLE:
		r.Action = "blackhole"
	case unix.FR_ACT_UNREACHABLE:
		r.Action = "unreachable"
	case unix.FR_ACT_PROHIBIT:
		r.Action = "prohibit"
	default:
		r.Action = "lookup"
	}
	if r.Goto > 0 && r.Action == "lookup" {
		r.Action = "goto"
	}
	r.Text = r.render()
	return r
}

// render prints the rule as `ip rule show` does.
func (r Rule) render() string {
	var w []string
	if r.Invert {
		w = append(w, "not")
	}
	if r.Src.IsValid() {
		w = append(w, "from", hostOrPrefix(r.Src))
	} else {
		w = append(w, "from", "all")
	}
	if r.Dst.IsValid() {
		w = append(w, "to", hostOrPrefix(r.Dst))
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
		w = append(w, "ipproto", protoName(uint8(r.IPProto)))
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

func hostOrPrefix(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

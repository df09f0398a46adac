package probes

import (
	"context"
	"sort"

	"asym/evidence"
	"asym/flow"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProbeRules lists the policy rules of the flow's family that concern the
// flow (scope; nil keeps them all) and counts the others. The kernel has no
// filter for a rule dump, so every rule is read and parsed; a host with
// thousands gets a report as long as what concerns the flow.
func ProbeRules(ctx context.Context, t *Target, f flow.Flow, scope *evidence.RuleScope) *evidence.RulesView {
	r, start := evidence.Begin("rules", "Policy routing rules")
	v := &evidence.RulesView{Report: r}
	defer v.Finish(start)
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
		r := convertRule(nr)
		if scope != nil && !scope.Concerns(r) {
			v.Others++
			continue
		}
		r.Text = r.Render()
		v.Rules = append(v.Rules, r)
	}
	sort.SliceStable(v.Rules, func(i, j int) bool { return v.Rules[i].Priority < v.Rules[j].Priority })
	for _, r := range v.Rules {
		v.Add("%s", r.Text)
	}
	if v.Others > 0 {
		v.Add("# %d other rule(s) select neither direction of this flow nor an address of this host", v.Others)
	}
	return v
}

func convertRule(nr netlink.Rule) evidence.Rule {
	r := evidence.Rule{
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
	return r
}

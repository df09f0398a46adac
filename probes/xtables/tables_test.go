package xtables

import (
	"net/netip"

	labxt "asym/lab/xtables"
)

// routerFilter is the filter table of the forwarding namespace in the
// kernel tests: the stateful chokepoint in three forms (conntrack revision
// 3 dropping, revisions 1 and 2 and both spellings of -m state counting in
// a user chain), an INPUT rule in the old xt_state match, rules of other
// kinds, and policies.
func routerFilter() labxt.Table {
	return labxt.Table{Name: "filter", Chains: []labxt.Chain{
		{Name: "INPUT", Rules: []labxt.Rule{
			{Matches: []labxt.Match{labxt.State(labxt.StateInvalid)}, Target: labxt.Drop},
		}},
		{Name: "FORWARD", Policy: "DROP", Rules: []labxt.Rule{
			{Src: netip.MustParsePrefix("203.0.113.0/24"), In: "eth1", Target: labxt.Jump("CTCHECK")},
			{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateInvalid, false)}, Target: labxt.Drop},
			{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateRelated|labxt.StateEstablished, false)}, Target: labxt.Accept},
		}},
		{Name: "CTCHECK", Rules: []labxt.Rule{
			{Matches: []labxt.Match{labxt.Conntrack(1, labxt.StateInvalid, false)}},
			{Matches: []labxt.Match{labxt.Conntrack(2, labxt.StateInvalid, false)}},
			{Matches: []labxt.Match{labxt.StateAlias(labxt.StateInvalid)}},
			{Proto: 6, Matches: []labxt.Match{labxt.Mark(0, 0)}, Target: labxt.SetMark(0, 0)},
			{Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateInvalid, true), labxt.Comment("not invalid")}, Target: labxt.Accept},
		}},
	}}
}

// routerRaw drops what fails the reverse-path check, as firewalld's
// iptables backend does.
func routerRaw() labxt.Table {
	return labxt.Table{Name: "raw", Chains: []labxt.Chain{
		{Name: "PREROUTING", Rules: []labxt.Rule{
			{Matches: []labxt.Match{labxt.RPFilter(labxt.RPFilterInvert)}, Target: labxt.Drop},
		}},
	}}
}

// routerTexts are the rules of both tables as iptables-legacy-save -c
// prints them, with every counter at 0. Checked against Debian's
// iptables-legacy-save 1.8.9 on the installed tables: it prints the same
// lines except "-m mark --mark 0x0/0x0 -j MARK --set-xmark 0x0/0x0", which
// asym leaves opaque, and "-m state [unsupported revision]" and "-m conntrack
// [unsupported revision]" for xt_state and conntrack revisions 1 and 2:
// iptables 1.8.9 keeps only the newest revision's printer, and asym prints
// what libxt_conntrack's printers for those revisions would.
var routerTexts = map[string][]string{
	"filter INPUT": {"[0:0] -A INPUT -m state --state INVALID -j DROP"},
	"filter FORWARD": {
		"[0:0] -A FORWARD -s 203.0.113.0/24 -i eth1 -j CTCHECK",
		"[0:0] -A FORWARD -m conntrack --ctstate INVALID -j DROP",
		"[0:0] -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
	},
	"filter OUTPUT": nil,
	"filter CTCHECK": {
		"[0:0] -A CTCHECK -m conntrack --ctstate INVALID",
		"[0:0] -A CTCHECK -m conntrack --ctstate INVALID",
		"[0:0] -A CTCHECK -m state --state INVALID",
		"[0:0] -A CTCHECK -p tcp -m mark … -j MARK …",
		`[0:0] -A CTCHECK -m conntrack ! --ctstate INVALID -m comment --comment "not invalid" -j ACCEPT`,
	},
	"raw PREROUTING": {"[0:0] -A PREROUTING -m rpfilter --invert -j DROP"},
	"raw OUTPUT":     nil,
}

// loopback6Filter is an ip6tables filter table for traffic a namespace
// sends itself over ::1.
func loopback6Filter() labxt.Table {
	return labxt.Table{Family: "ip6", Name: "filter", Chains: []labxt.Chain{
		{Name: "OUTPUT", Rules: []labxt.Rule{
			{Dst: netip.MustParsePrefix("::1/128"), Out: "lo", Proto: 6,
				Matches: []labxt.Match{labxt.Conntrack(3, labxt.StateInvalid, false)}, Target: labxt.Reject(1)},
			{Dst: netip.MustParsePrefix("2001:db8::/32"), Matches: []labxt.Match{labxt.State(labxt.StateInvalid | labxt.StateNew)}, Target: labxt.Drop},
		}},
	}}
}

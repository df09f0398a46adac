package playbook

// Analyzers over the kernel's own word on the flow's drops (the drop
// witness of the live window: each drop with the kernel's reason, where it
// happened and on which interface). A reason confirms a finding the other
// evidence suspects — the kernel saying IP_RPFILTER is the reverse-path
// filter dropping the flow, not an inference from a refused lookup — and
// the reasons no finding explains become findings of their own where a
// person can act on them (neighbour_failed, kernel_drop). Reasons that are
// part of TCP's and the sockets' ordinary life (an old duplicate, a
// segment for a socket already closed) and frames flooded to this host
// for another MAC are shown in the window, never made findings.

import (
	"fmt"
	"strings"

	"asym/evidence"
	"asym/fix"
)

// dropsWhere returns the window's drops that match, in order.
func dropsWhere(e *evidence.Evidence, match func(d evidence.Drop) bool) []evidence.Drop {
	l := live(e)
	if l == nil {
		return nil
	}
	var out []evidence.Drop
	for _, d := range l.Drops {
		if match(d) {
			out = append(out, d)
		}
	}
	return out
}

func reasonIs(names ...string) func(d evidence.Drop) bool {
	return func(d evidence.Drop) bool { return !d.Quoted && contains(names, d.Reason) }
}

// dropLines are the evidence of a set of drops of one kind: the first in
// a sentence with how many there were, then its line.
func dropLines(ds []evidence.Drop, because string) []Line {
	d := ds[0]
	s := d.Sentence()
	if len(ds) > 1 {
		s += fmt.Sprintf(" (%d times over the window)", len(ds))
	}
	return []Line{{Probe: evidence.ProbeLive, Text: s + because}, {Probe: evidence.ProbeLive, Text: d.Text}}
}

// dropRPFilter: the kernel dropped the flow's packets with IP_RPFILTER,
// which proves rp_filter_strict_drop (the routing analyzers only infer it
// from a refused lookup). The way back that fails the check comes from
// the route probe of that direction when it ran.
func dropRPFilter(e *evidence.Evidence) []Finding {
	ds := dropsWhere(e, reasonIs("IP_RPFILTER"))
	if len(ds) == 0 {
		return nil
	}
	d := ds[0]
	p := okPath(e.Request)
	if d.Reply {
		p = okPath(e.Reply)
	}
	because := ""
	if p != nil && p.ReversePath != nil && p.ReversePath.Dev != "" && p.ReversePath.Dev != d.Iface {
		because = fmt.Sprintf(" — because the way back to %s leaves by %s (%s)", d.Src.Addr(), p.ReversePath.Dev, p.Probe)
	}
	f := Finding{
		ID:       RPFilterStrictDrop,
		Severity: Critical,
		Title:    fmt.Sprintf("The kernel dropped %s %s for failing the reverse-path check (IP_RPFILTER)", d.What(), d.Where()),
		Evidence: dropLines(ds, because),
		Fix:      sourceRoutingFix(e, ""),
	}
	if f.Fix == nil && d.Iface != "" {
		f.Fix = &fix.Fix{
			Summary: fmt.Sprintf("Loose reverse-path filter on %s (rp_filter=2): the drop stops, the asymmetry stays", d.Iface),
			Steps:   fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf." + d.Iface + ".rp_filter", Value: "2"}},
			Caveat:  "This hides the asymmetry on this host only; make the routing symmetric where you can.",
		}
	}
	return []Finding{f}
}

// dropNetfilter: the kernel dropped the flow's packets in the firewall
// (NETFILTER_DROP), and a rule that says why counted them over the window:
// a ct state invalid rule proves ct_invalid_drop, a fib reverse-path rule
// nft_fib_rpfilter_drop. Without a rule's counter (iptables-legacy rules
// have none in the window) conntrack's invalid count climbing with no
// event of the flow names the same cause. A NETFILTER_DROP that none of
// these explains is left to kernelDrop.
func dropNetfilter(e *evidence.Evidence) []Finding {
	ds := dropsWhere(e, reasonIs("NETFILTER_DROP"))
	if len(ds) == 0 || !ok(e.Firewall) {
		return nil
	}
	l := live(e)
	var out []Finding
	for _, kind := range []evidence.FirewallRuleKind{evidence.RuleCtInvalid, evidence.RuleFibRPFilter} {
		rules := risingDropRules(e, kind)
		if len(rules) == 0 && kind == evidence.RuleCtInvalid && l.Deltas[evidence.CounterCtInvalid] > 0 && len(l.Events) == 0 {
			rules = dropRules(e, kind)
		}
		if len(rules) == 0 {
			continue
		}
		out = append(out, netfilterFinding(e, ds, kind, rules))
	}
	return out
}

// netfilterFinding is the finding a firewall drop proves, naming the rule.
func netfilterFinding(e *evidence.Evidence, ds []evidence.Drop, kind evidence.FirewallRuleKind, rules []evidence.FirewallRule) Finding {
	l, d := live(e), ds[0]
	r := rules[0]
	ev := dropLines(ds, "")
	for _, r := range rules {
		txt := fmt.Sprintf("%s #%d: %s", r.Where(), r.Handle, r.Text)
		if n := l.Deltas[r.CounterKey()]; n > 0 {
			txt += fmt.Sprintf("   ← its counter %+d over the window", n)
		}
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: txt})
	}
	if kind == evidence.RuleFibRPFilter {
		return Finding{ID: NftFibRPFilterDrop, Severity: Critical, Evidence: ev,
			Title: fmt.Sprintf("The kernel dropped %s %s in the firewall (NETFILTER_DROP): the fib reverse-path rule of %s (#%d) drops it", d.What(), d.Where(), r.Where(), r.Handle)}
	}
	if n := l.Deltas[evidence.CounterCtInvalid]; n > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("nf_conntrack invalid %+d over the window, and %d conntrack event(s) of the flow", n, len(l.Events))})
	}
	return Finding{ID: CtInvalidDrop, Severity: Critical, Evidence: ev,
		Title: fmt.Sprintf("The kernel dropped %s %s as INVALID: NETFILTER_DROP, by the ct state invalid rule of %s (#%d)", d.What(), d.Where(), r.Where(), r.Handle),
		Fix: &fix.Fix{Summary: "Make both directions of the flow cross the same stateful device",
			Advice: "This host never saw the flow begin, so conntrack has no state for its packets and the rule drops them. Pin the route so both directions cross the same stateful device, take the prefix out of ECMP, or share state (conntrackd). Accepting INVALID would hide the problem and weaken the firewall.",
			Prove:  []string{proveConntrack(e)}}}
}

// risingDropRules are the dropping rules of a kind whose counter rose over
// the window.
func risingDropRules(e *evidence.Evidence, kind evidence.FirewallRuleKind) []evidence.FirewallRule {
	var out []evidence.FirewallRule
	for _, r := range dropRules(e, kind) {
		if live(e).Deltas[r.CounterKey()] > 0 {
			out = append(out, r)
		}
	}
	return out
}

func dropRules(e *evidence.Evidence, kind evidence.FirewallRuleKind) []evidence.FirewallRule {
	var out []evidence.FirewallRule
	for _, r := range e.Firewall.Rules {
		if r.Kind == kind && r.Drops() && hookRelevant(role(e), r.Hook) {
			out = append(out, r)
		}
	}
	return out
}

// dropMTU: the kernel refused the flow's packets for their size
// (PKT_TOO_BIG: ip_forward or ip6_forward found them larger than the way
// out), or dropped the fragmentation-needed (IPv6: packet-too-big) about
// them. Both together on a router are the black hole proven: it refuses
// the packets and the word that should tell the sender is dropped here
// too. Either alone is a warning with the half that is proven.
func dropMTU(e *evidence.Evidence) []Finding {
	big := dropsWhere(e, func(d evidence.Drop) bool {
		return !d.Quoted && (d.Reason == "PKT_TOO_BIG" || strings.Contains(d.Reason, "FRAG_NEEDED") || strings.Contains(d.Reason, "TOO_BIG"))
	})
	icmp := dropsWhere(e, func(d evidence.Drop) bool { return d.Quoted && d.ICMPMsg.TooBig() })
	if len(big) == 0 && len(icmp) == 0 {
		return nil
	}
	f := Finding{ID: MTUBlackhole, Severity: Warning}
	switch {
	case len(big) > 0 && len(icmp) > 0:
		f.Severity = Critical
		f.Title = fmt.Sprintf("Proven by the kernel: %d-byte packets of the flow were refused here for their size (%s) and the fragmentation-needed about them was dropped here too (%s): the sender never learns",
			big[0].Len, big[0].Reason, icmp[0].Reason)
	case len(big) > 0:
		f.Title = fmt.Sprintf("The kernel refuses the flow's %d-byte packets %s for their size (%s): the way out has a smaller MTU; if the sender keeps sending them, the fragmentation-needed this host sends never reaches it", big[0].Len, big[0].Where(), big[0].Reason)
	default:
		f.Severity = Critical
		f.Title = fmt.Sprintf("The kernel dropped %s here (%s): path MTU discovery cannot work for the flow", icmp[0].What(), icmp[0].Reason)
	}
	if len(big) > 0 {
		f.Evidence = append(f.Evidence, dropLines(big, "")...)
	}
	if len(icmp) > 0 {
		f.Evidence = append(f.Evidence, dropLines(icmp, "")...)
	}
	f.Fix = &fix.Fix{Summary: "Let the fragmentation-needed through, or clamp the MSS",
		Advice: "Allow ICMP destination-unreachable / fragmentation-needed (IPv6 packet-too-big) out of and through this host (the rule that drops it is the one counting with the flow), " +
			"or clamp the TCP MSS of forwarded SYNs to the smaller link (nftables: tcp flags syn tcp option maxseg size set rt mtu)."}
	return []Finding{f}
}

// dropNeighbour: the kernel freed the flow's packets because it could not
// resolve the next hop's link-layer address (ARP or neighbour discovery
// failed). Seen here: strict rp_filter on the far host silently ignores an
// ARP request whose sender address fails its reverse-path check, so the
// sender logs NEIGH_FAILED while the far host's IPReversePathFilter stays
// at 0.
func dropNeighbour(e *evidence.Evidence) []Finding {
	ds := dropsWhere(e, reasonIs("NEIGH_FAILED", "NEIGH_QUEUEFULL", "NEIGH_DEAD", "NEIGH_CREATEFAIL"))
	if len(ds) == 0 {
		return nil
	}
	d := ds[0]
	hop := nextHop(e, d)
	ev := dropLines(ds, "")
	if n := neighbourOf(e, hop, d.Iface); n != nil {
		ev = append(ev, Line{Probe: evidence.ProbeNeighbours, Text: n.Text})
	}
	who := "the next hop"
	if hop != "" {
		who = hop
	}
	f := Finding{
		ID:       NeighbourFailed,
		Title:    fmt.Sprintf("The kernel could not resolve %s's MAC %s and dropped %s (%s)", who, d.Where(), d.What(), d.Reason),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Find out why " + who + " does not answer ARP",
			Advice: fmt.Sprintf("%s does not answer this host's ARP requests (IPv6: neighbour solicitations) on %s. If it is up, look at its reverse-path filter: with rp_filter=1 it ignores an ARP request whose sender address it would not route back by the interface the request came in on, and this host puts the packet's source address (%s) in its requests unless arp_announce=2. Either give the far host a route back to that address by that interface, or set net.ipv4.conf.%s.arp_announce=2 here so requests carry the interface's own address.",
				who, d.Iface, d.Src.Addr(), d.Iface),
			Prove: []string{evidence.Command("ip", "neigh", "show", "dev", d.Iface), evidence.Command("sysctl", "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.all.arp_ignore") + "   # on " + who}},
	}
	return []Finding{f}
}

// nextHop is the address the host resolves for a dropped packet: its
// route's gateway on that interface, else the packet's destination.
func nextHop(e *evidence.Evidence, d evidence.Drop) string {
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p != nil && p.Egress == d.Iface && p.Decision.Gateway.IsValid() && (p.Direction == evidence.DirReply) == d.Reply {
			return p.Decision.Gateway.String()
		}
	}
	if d.Dst.Addr().IsValid() {
		return d.Dst.Addr().String()
	}
	return ""
}

func neighbourOf(e *evidence.Evidence, addr, dev string) *evidence.Neighbour {
	if e.Neighbours == nil {
		return nil
	}
	for i, n := range e.Neighbours.Entries {
		if n.Addr.String() == addr && n.Dev == dev {
			return &e.Neighbours.Entries[i]
		}
	}
	return nil
}

// kernelDrop: drops whose reason no other finding explains, grouped by
// reason, when a person can act on them. Ordinary TCP and socket life and
// frames meant for another host are left in the window.
func kernelDrop(e *evidence.Evidence) []Finding {
	explained := map[string]bool{"IP_RPFILTER": true, "PKT_TOO_BIG": true, "NEIGH_FAILED": true, "NEIGH_QUEUEFULL": true, "NEIGH_DEAD": true, "NEIGH_CREATEFAIL": true}
	if len(dropNetfilter(e)) > 0 {
		explained["NETFILTER_DROP"] = true
	}
	ds := dropsWhere(e, func(d evidence.Drop) bool { return !d.Quoted && !explained[d.Reason] && actionable(d) })
	if len(ds) == 0 {
		return nil
	}
	byReason := map[string][]evidence.Drop{}
	var order []string
	for _, d := range ds {
		if byReason[d.Reason] == nil {
			order = append(order, d.Reason)
		}
		byReason[d.Reason] = append(byReason[d.Reason], d)
	}
	var ev []Line
	var advice []string
	for _, r := range order {
		ev = append(ev, dropLines(byReason[r], "")...)
		if a := reasonAdvice(r); a != "" {
			advice = append(advice, r+": "+a)
		}
	}
	d := ds[0]
	return []Finding{{
		ID:       KernelDrop,
		Title:    fmt.Sprintf("The kernel dropped the flow's packets here: %s (%s %s)", evidence.DropCounts(ds), strings.TrimPrefix(d.In(), "in "), d.Where()),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Follow the reason the kernel gives",
			Advice: strings.Join(append(advice, "The reasons are the kernel's enum skb_drop_reason (include/net/dropreason-core.h); pwru and retis follow the packet through the stack up to the drop."), " "),
			Prove:  []string{evidence.Command("pwru", "--output-tuple", evidence.TcpdumpFilter(e.Flow))}},
	}}
}

// actionable says whether a drop tells a person something to change:
// not the kernel's ordinary bookkeeping (TCP's duplicates and windows,
// sockets closing, purged queues, a reason it did not name) nor a frame
// flooded to this host for another MAC. A segment for no socket counts
// when it opens a connection (nothing listens) or is UDP.
func actionable(d evidence.Drop) bool {
	for _, p := range []string{"TCP_", "SOCKET_", "UNIX_", "SKB_"} {
		if strings.HasPrefix(d.Reason, p) {
			return false
		}
	}
	switch d.Reason {
	case "NOT_SPECIFIED", "OTHERHOST", "QUEUE_PURGE", "PROTO_MEM":
		return false
	case "NO_SOCKET":
		return d.SYN() || d.Proto == 17
	}
	return true
}

// reasonAdvice says in a sentence what a reason usually means.
func reasonAdvice(reason string) string {
	switch reason {
	case "IP_INNOROUTES", "IP_OUTNOROUTES":
		return "this host has no route for the packet's destination (ip route get shows it)."
	case "IP_INADDRERRORS":
		return "the packet is addressed to something this host neither owns nor forwards (ip_forward off, or an invalid destination)."
	case "IP_INVALID_SOURCE", "IP_LOCAL_SOURCE", "IP_LOCALNET", "IP_INVALID_DEST":
		return "a martian: the source or destination is not valid on this interface (log_martians logs it)."
	case "NETFILTER_DROP":
		return "a firewall rule or a chain's drop policy drops it: nft list ruleset (or iptables-save -c) and watch which counter climbs with the flow."
	case "NO_SOCKET":
		return "nothing listens on the destination port here."
	case "XFRM_POLICY":
		return "an IPsec policy refuses it."
	}
	if strings.HasPrefix(reason, "QDISC_") || strings.HasPrefix(reason, "TC_") || reason == "CPU_BACKLOG" {
		return "a queue or traffic-control action on the interface drops it (tc -s qdisc, tc -s filter)."
	}
	return ""
}

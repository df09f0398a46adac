package playbook

import (
	"asym/evidence"
	"asym/fix"
	"fmt"
)

// HandOff lists ready-to-run commands of deeper tools for the flow: a
// capture on the interfaces involved, conntrack events, and pwru and retis
// (eBPF tracers of the packet's way through the kernel) where it has BTF.
func HandOff(e *evidence.Evidence, prefix []string) []string {
	return HandOffVia(e, fix.Prefixed(prefix), fix.Prefixed(nil))
}

// HandOffVia is HandOff with the commands rendered by render, and the
// tracers (which see every namespace of the kernel) by host.
func HandOffVia(e *evidence.Evidence, render, host fix.Render) []string {
	f := e.Flow
	ifaces := []string{}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil {
			continue
		}
		for _, i := range []string{p.Ingress, p.Egress} {
			if i != "" && !contains(ifaces, i) {
				ifaces = append(ifaces, i)
			}
		}
	}
	pre := func(w ...string) string { return render(w) }
	var out []string
	filter := evidence.TcpdumpFilter(f)
	if len(ifaces) == 0 {
		out = append(out, pre("tcpdump", "-ni", "any", filter))
	}
	for _, i := range ifaces {
		out = append(out, pre("tcpdump", "-ni", i, filter))
	}
	ct := []string{"conntrack", "-E", "-p", f.Proto.String(), "--orig-src", f.Src.Addr().String(), "--orig-dst", f.Dst.Addr().String()}
	if f.Proto.HasPorts() && f.Src.Port() != 0 && f.Dst.Port() != 0 {
		ct = append(ct, "--sport", fmt.Sprint(f.Src.Port()), "--dport", fmt.Sprint(f.Dst.Port()))
	}
	out = append(out, pre(ct...))
	if e.Host != nil && e.Host.BTF {
		out = append(out, host([]string{"pwru", "--output-tuple", filter})+"   # kernel drop reasons (needs BTF: present)"+dropsSeen(e))
		// retis fails when a collector named with -c cannot start, and ct
		// needs nf_conntrack: ask for it only where conntrack answered.
		collectors := "skb,skb-drop,skb-tracking"
		if ok(e.Conntrack) {
			collectors += ",ct"
		}
		out = append(out, host([]string{"retis", "collect", "-c", collectors, "-f", filter})+"   # the flow through the stack: drop reasons, conntrack state (needs BTF: present)")
	}
	return out
}

// dropsSeen says what asym's own drop witness already saw, for the pwru
// line: the reasons and where the first was, so the person starts from
// the kernel's word rather than from nothing.
func dropsSeen(e *evidence.Evidence) string {
	l := live(e)
	if l == nil || len(l.Drops) == 0 {
		return ""
	}
	d := l.Drops[0]
	where := d.Where()
	if d.Location != "" {
		where = d.Location + " " + where
	}
	return "; asym saw " + evidence.DropCounts(l.Drops) + " (" + where + ")"
}

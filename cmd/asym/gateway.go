package main

import (
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"

	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/session"
)

// gatewayFlag is `--gateway IFACE=ADDR`, repeatable: the gateway of an
// interface that no route, configuration or neighbour names, given by the
// person so that the source-routing fix can be applied.
type gatewayFlag map[string]netip.Addr

func (g *gatewayFlag) String() string {
	var s []string
	for dev, a := range *g {
		s = append(s, dev+"="+a.String())
	}
	sort.Strings(s)
	return strings.Join(s, ",")
}

func (g *gatewayFlag) Set(v string) error {
	dev, addr, ok := strings.Cut(v, "=")
	if !ok || dev == "" || strings.ContainsAny(dev, " /") {
		return fmt.Errorf("%q is not IFACE=ADDR: name the interface and its router, e.g. eth1=192.0.2.1", v)
	}
	a, err := netip.ParseAddr(addr)
	if err != nil || !(a.IsGlobalUnicast() || a.IsPrivate() || a.IsLinkLocalUnicast()) {
		return fmt.Errorf("%q is not a router's unicast address: give it as eth1=192.0.2.1 or eth1=fe80::1", addr)
	}
	if *g == nil {
		*g = gatewayFlag{}
	}
	(*g)[dev] = a.Unmap()
	return nil
}

// printGatewayHints tells, once per interface whose gateway a fix lacks,
// how to give it, the routers the interface knows, and how to learn it
// from the flow's frames.
func printGatewayHints(w io.Writer, t *probes.Target, f flow.Flow, r session.Result) {
	needs := map[string][]string{}
	var devs []string
	for _, fd := range r.Report.Findings {
		for _, dev := range fd.Fix.UnknownGateways() {
			if needs[dev] == nil {
				devs = append(devs, dev)
			}
			needs[dev] = append(needs[dev], string(fd.ID))
		}
	}
	ev := r.Evidence
	for _, dev := range devs {
		fmt.Fprintf(w, "\nThe fix of %s needs the gateway of %s. Name it and asym applies the rest:\n  %s\n",
			strings.Join(needs[dev], " and "), playbook.Clean(dev), fixCommand(t, "--gateway "+dev+"=ADDR", f.String()))
		if cs := playbook.GatewayChoices(&ev, dev); len(cs) > 0 {
			fmt.Fprintf(w, "  routers %s knows (which one is the way out, only its configuration or the flow's frames can say):\n", playbook.Clean(dev))
			for _, n := range cs {
				fmt.Fprintf(w, "    %s\n", playbook.Clean(n.Text))
			}
		}
		if ev.Live == nil {
			fmt.Fprintf(w, "  or let asym learn it from the frames that arrive on %s while you retry the flow:\n  %s\n", playbook.Clean(dev), fixCommand(t, "--watch 10s", f.String()))
		}
	}
}

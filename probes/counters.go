package probes

import (
	"context"
	"strings"
	"time"

	"asym/evidence"
	"asym/probes/counter"
)

// counterShown are the counters that speak about asymmetric routing and
// dropped flows, in the order they are shown. The kernel names the IPv4
// no-route counter IpExt:InNoRoutes (snmp4_ipextstats_list); Ip:InNoRoutes
// is kept for kernels or tools that name it so.
var counterShown = []string{
	"TcpExt:IPReversePathFilter",
	"TcpExt:TCPSynRetrans",
	"Tcp:RetransSegs",
	"Tcp:AttemptFails",
	"Tcp:OutRsts",
	"Ip:InAddrErrors",
	"Ip:InNoRoutes",
	"IpExt:InNoRoutes",
	"Ip:InDiscards",
	"Icmp:InDestUnreachs",
	"Icmp:OutDestUnreachs",
	"rt_cache:in_martian_src",
	"rt_cache:in_martian_dst",
	"nf_conntrack:invalid",
	"nf_conntrack:drop",
	"nf_conntrack:insert_failed",
	"nf_conntrack:early_drop",
	"Ip6:InNoRoutes",
	"Ip6:InDiscards",
	"Ip6:InAddrErrors",
	"Icmp6:InDestUnreachs",
	"Icmp6:OutDestUnreachs",
}

// ProbeCounters samples the kernel's counters in the target namespace.
func ProbeCounters(ctx context.Context, t *Target) *evidence.Counters {
	c := &evidence.Counters{Values: map[string]uint64{}}
	var start time.Time
	c.Report, start = evidence.Begin("counters", "Kernel counters")
	defer c.Finish(start)
	c.Command = t.Cmd("nstat", "-az")
	values, err := counter.Read(ctx, t)
	if err != nil {
		c.Fail(err)
		return c
	}
	c.Values = values
	if len(c.Values) == 0 {
		c.Add("no counters: /proc/thread-self/net has none of netstat, snmp, snmp6, stat/rt_cache, stat/nf_conntrack")
		return c
	}
	martian := false
	for _, k := range counterShown {
		v, ok := c.Values[k]
		if !ok {
			continue
		}
		c.Add("%-32s %d", counterNstatName(k), v)
		martian = martian || strings.HasPrefix(k, "rt_cache:")
	}
	if martian {
		// net/ipv4/route.c keeps rt_cache_stat in one per-CPU variable for
		// the whole kernel, although each namespace has its own file.
		c.Add("rt_cache counters are kernel-wide: they count martians of every namespace, not only this one")
	}
	return c
}

// counterNstatName renders a key the way nstat names it: "TcpExt:IPReversePathFilter"
// → "TcpExtIPReversePathFilter". The /proc/net/stat tables have no nstat
// name (lnstat shows them) and keep their "table:column" form.
func counterNstatName(key string) string {
	if strings.HasPrefix(key, "rt_cache:") || strings.HasPrefix(key, "nf_conntrack:") {
		return key
	}
	return strings.Replace(key, ":", "", 1)
}

package probes

import (
	"asym/evidence"
	"context"
	"strconv"
	"strings"
	"time"
)

// counterFiles are read inside the namespace. /proc/net follows the
// namespace of the thread-group leader, not of the reading thread, hence
// thread-self (ReadProc).
var counterFiles = []struct {
	path  string
	parse func(string) map[string]uint64
}{
	{"thread-self/net/netstat", ParseNetstat},
	{"thread-self/net/snmp", ParseNetstat},
	{"thread-self/net/snmp6", ParseSnmp6}, // absent when IPv6 is disabled at boot
	{"thread-self/net/stat/rt_cache", func(s string) map[string]uint64 { return ParseStatTable(s, "rt_cache") }},
	{"thread-self/net/stat/nf_conntrack", func(s string) map[string]uint64 { return ParseStatTable(s, "nf_conntrack") }}, // absent without nf_conntrack
}

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
	if err := ctx.Err(); err != nil {
		c.Fail(err) // out of time before starting: read nothing
		return c
	}

	paths := make([]string, len(counterFiles))
	for i, f := range counterFiles {
		paths[i] = f.path
	}
	texts, err := t.ReadProc(ctx, paths...)
	if err != nil {
		c.Fail(err)
		return c
	}
	for _, f := range counterFiles {
		text, ok := texts[f.path]
		if !ok {
			continue
		}
		for k, v := range f.parse(text) {
			c.Values[k] = v
		}
	}
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

// ParseNetstat reads /proc/net/netstat and /proc/net/snmp: lines in pairs,
// "Prefix: Name1 Name2…" then "Prefix: 1 2…", giving "Prefix:Name1" → 1.
// Values that are not counters and can be negative (Tcp: MaxConn -1) are
// left out, as is anything that does not parse.
func ParseNetstat(text string) map[string]uint64 {
	out := map[string]uint64{}
	var prefix string
	var names []string
	for _, line := range strings.Split(text, "\n") {
		p, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if names == nil || p != prefix {
			// A header: the values line that follows must carry the same prefix.
			prefix, names = p, fields
			continue
		}
		for i, name := range names {
			if i >= len(fields) {
				break
			}
			if v, err := strconv.ParseUint(fields[i], 10, 64); err == nil {
				out[prefix+":"+name] = v
			}
		}
		names = nil
	}
	return out
}

// ParseSnmp6 reads /proc/net/snmp6: one "Ip6InReceives 12" per line,
// giving "Ip6:InReceives" → 12. The prefix ends at the first "6" (Ip6,
// Icmp6, Udp6, UdpLite6), which is how nstat and net/ipv6/proc.c spell them.
func ParseSnmp6(text string) map[string]uint64 {
	out := map[string]uint64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		key := f[0]
		if i := strings.IndexByte(key, '6'); i > 0 && i < len(key)-1 {
			key = key[:i+1] + ":" + key[i+1:]
		}
		out[key] = v
	}
	return out
}

// ParseStatTable reads a /proc/net/stat table (rt_cache, nf_conntrack): a
// header row of column names, then one row of hexadecimal values per CPU.
// Columns are summed over CPUs and keyed by name, prefix+":"+name, because
// kernels renamed and reused columns (nf_conntrack's searched became
// clashres, delete_list became chainlength). The "entries" column is not
// per CPU: every row repeats the table's size, so it is taken once.
func ParseStatTable(text, prefix string) map[string]uint64 {
	out := map[string]uint64{}
	var names []string
	for _, line := range strings.Split(text, "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if names == nil {
			names = fields
			continue
		}
		row := make([]uint64, 0, len(fields))
		for _, f := range fields {
			v, err := strconv.ParseUint(f, 16, 64)
			if err != nil {
				row = nil
				break
			}
			row = append(row, v)
		}
		for i, v := range row {
			if i >= len(names) {
				break
			}
			key := prefix + ":" + names[i]
			if names[i] == "entries" {
				out[key] = max(out[key], v)
				continue
			}
			out[key] += v
		}
	}
	return out
}

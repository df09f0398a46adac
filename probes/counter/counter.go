// Package counter reads the kernel's counters of a network namespace from
// /proc/thread-self/net (netstat, snmp, snmp6, stat/rt_cache,
// stat/nf_conntrack), keyed "Prefix:Name" ("TcpExt:IPReversePathFilter",
// "nf_conntrack:invalid"). The counters probe shows them; the live watch
// samples a few of them every interval. Both read them here, so a key means
// the same in both.
package counter

import (
	"context"
	"strconv"
	"strings"
)

// ProcReader reads files of a namespace's /proc (*probes.Target.ReadProc).
type ProcReader interface {
	ReadProc(ctx context.Context, paths ...string) (map[string]string, error)
}

// files are read inside the namespace. /proc/net follows the namespace of
// the thread-group leader, not of the reading thread, hence thread-self.
var files = []struct {
	path  string
	parse func(string) map[string]uint64
}{
	{"thread-self/net/netstat", ParseNetstat},
	{"thread-self/net/snmp", ParseNetstat},
	{"thread-self/net/snmp6", ParseSnmp6}, // absent when IPv6 is disabled at boot
	{"thread-self/net/stat/rt_cache", func(s string) map[string]uint64 { return ParseStatTable(s, "rt_cache") }},
	{"thread-self/net/stat/nf_conntrack", func(s string) map[string]uint64 { return ParseStatTable(s, "nf_conntrack") }}, // absent without nf_conntrack
}

// Read reads every counter the namespace offers. A file or key this kernel
// lacks is simply absent; none at all is an empty map, not an error.
func Read(ctx context.Context, ns ProcReader) (map[string]uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err // out of time before starting: read nothing
	}
	paths := make([]string, len(files))
	for i, f := range files {
		paths[i] = f.path
	}
	texts, err := ns.ReadProc(ctx, paths...)
	if err != nil {
		return nil, err
	}
	values := map[string]uint64{}
	for _, f := range files {
		text, ok := texts[f.path]
		if !ok {
			continue
		}
		for k, v := range f.parse(text) {
			values[k] = v
		}
	}
	return values, nil
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

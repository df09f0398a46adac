package probes

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"
)

var globalKeys = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.fib_multipath_hash_policy",
	"net.ipv6.fib_multipath_hash_policy",
	"net.ipv6.conf.all.forwarding",
	"net.netfilter.nf_conntrack_tcp_loose",
	"net.netfilter.nf_conntrack_log_invalid",
	"net.netfilter.nf_conntrack_acct",
}

// ProbeSysctls reads the sysctls for the given interfaces inside the target.
func ProbeSysctls(ctx context.Context, t *Target, f flow.Flow, ifaces []string) *evidence.SysctlView {
	r, start := evidence.Begin("sysctls", "Sysctls that decide the outcome")
	v := &evidence.SysctlView{Report: r, Values: map[string]int{}}
	defer v.Finish(start)
	seen := map[string]bool{}
	for _, i := range append([]string{"all", "default"}, ifaces...) {
		if i != "" && !seen[i] && !strings.ContainsAny(i, "/\x00") {
			seen[i] = true
			v.Ifaces = append(v.Ifaces, i)
		}
	}
	var names []string
	for _, i := range v.Ifaces {
		for _, k := range evidence.ConfKeys {
			names = append(names, "net.ipv4.conf."+i+"."+k.Key)
		}
		if f.Is6() {
			names = append(names, "net.ipv6.conf."+i+".forwarding")
		}
	}
	names = append(names, globalKeys...)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = sysctlPath(n)
	}
	got, err := t.ReadProc(ctx, paths...)
	if err != nil {
		v.Fail(err)
		return v
	}
	for i, n := range names {
		s, ok := got[paths[i]]
		if !ok {
			continue
		}
		if val, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
			v.Values[n] = val
		}
	}
	v.Command = t.Cmd("sysctl", "-a", "-r", sysctlPattern)
	keys := make([]string, 0, len(v.Values))
	for k := range v.Values {
		keys = append(keys, k)
	}
	sort.SliceStable(keys, func(i, j int) bool { return order(names, keys[i]) < order(names, keys[j]) })
	for _, k := range keys {
		v.Add("%s = %d", displayName(k), v.Values[k])
	}
	for _, i := range v.Ifaces {
		if i == "all" || i == "default" {
			continue
		}
		if all, dev, eff, ok := v.Conf(i, "rp_filter"); ok {
			v.Add("# %s: rp_filter is %s (max of all=%d and %s=%d)", i, evidence.RPFilterMode(eff), all, i, dev)
		}
	}
	return v
}

// sysctlPath maps a dotted name to its /proc path relative to /proc. The
// interface part may itself contain dots (eth0.100), so split around it.
func sysctlPath(name string) string {
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			i := strings.LastIndex(rest, ".")
			return "sys/" + strings.ReplaceAll(pre, ".", "/") + rest[:i] + "/" + rest[i+1:]
		}
	}
	return "sys/" + strings.ReplaceAll(name, ".", "/")
}

// displayName is how sysctl(8) prints a name: dots inside an interface name
// become slashes (eth0.100 → eth0/100).
func displayName(name string) string {
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			i := strings.LastIndex(rest, ".")
			return pre + strings.ReplaceAll(rest[:i], ".", "/") + rest[i:]
		}
	}
	return name
}

// sysctlPattern is what a person would grep sysctl -a for.
const sysctlPattern = `rp_filter|src_valid_mark|log_martians|accept_local|arp_ignore|arp_announce|arp_filter|\.forwarding|ip_forward|fib_multipath_hash_policy|nf_conntrack_(tcp_loose|log_invalid|acct)`

func order(names []string, k string) int {
	for i, n := range names {
		if n == k {
			return i
		}
	}
	return len(names)
}

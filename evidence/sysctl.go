package evidence

import "strings"

// SysctlView holds the sysctls that decide what happens to a flow's packets,
// for "all", "default" and each interface in play.
type SysctlView struct {
	Report
	Values map[string]int `json:"values"` // "net.ipv4.conf.eth1.rp_filter" → 1; absent keys are not in the map
	Ifaces []string       `json:"interfaces"`
}

// ConfCombine is how the kernel combines "all" with an interface's own value.
type ConfCombine int

const (
	CombineMax ConfCombine = iota // the larger of the two (IN_DEV_MAXCONF)
	CombineOr                     // either one set (IN_DEV_ORCONF)
	CombineDev                    // the interface's value alone
)

// ConfKeys are the per-interface IPv4 keys asym reads, with how the kernel
// combines them (Documentation/networking/ip-sysctl.rst, and the
// IN_DEV_MAXCONF/IN_DEV_ORCONF macros in include/linux/inetdevice.h).
var ConfKeys = []struct {
	Key     string
	Combine ConfCombine
}{
	{"rp_filter", CombineMax},
	{"src_valid_mark", CombineOr},
	{"log_martians", CombineOr},
	{"accept_local", CombineOr},
	{"arp_ignore", CombineMax},
	{"arp_announce", CombineMax},
	{"arp_filter", CombineOr},
	{"forwarding", CombineDev},
}

// Conf returns the "all" value, the interface's value and the effective one
// the kernel uses, for an IPv4 per-interface key.
func (v *SysctlView) Conf(iface, key string) (all, dev, eff int, ok bool) {
	all, okAll := v.Values["net.ipv4.conf.all."+key]
	dev, okDev := v.Values["net.ipv4.conf."+iface+"."+key]
	if !okAll && !okDev {
		return 0, 0, 0, false
	}
	eff = dev
	for _, k := range ConfKeys {
		if k.Key != key {
			continue
		}
		switch k.Combine {
		case CombineMax:
			eff = max(all, dev)
		case CombineOr:
			if all != 0 || dev != 0 {
				eff = max(1, dev)
			}
		}
	}
	return all, dev, eff, true
}

// Effective is Conf's effective value, or def when unknown.
func (v *SysctlView) Effective(iface, key string, def int) int {
	if v == nil {
		return def
	}
	if _, _, eff, ok := v.Conf(iface, key); ok {
		return eff
	}
	return def
}

// Value returns a sysctl by its dotted name, and whether it was read.
func (v *SysctlView) Value(name string) (int, bool) {
	if v == nil {
		return 0, false
	}
	n, ok := v.Values[name]
	return n, ok
}

// SysctlPath maps a dotted sysctl name to its path relative to /proc. The
// interface part may itself contain dots (eth0.100), so split around it.
func SysctlPath(name string) string {
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			i := strings.LastIndex(rest, ".")
			return "sys/" + strings.ReplaceAll(pre, ".", "/") + rest[:i] + "/" + rest[i+1:]
		}
	}
	return "sys/" + strings.ReplaceAll(name, ".", "/")
}

// SysctlIface is the interface a per-interface sysctl name is about
// ("net.ipv4.conf.eth0.100.rp_filter" → "eth0.100"); "" for a global one
// or for all/default.
func SysctlIface(name string) string {
	for _, pre := range []string{"net.ipv4.conf.", "net.ipv6.conf."} {
		if rest, ok := strings.CutPrefix(name, pre); ok {
			if i := strings.LastIndex(rest, "."); i > 0 {
				if dev := rest[:i]; dev != "all" && dev != "default" {
					return dev
				}
			}
		}
	}
	return ""
}

package xtables

import (
	"math/bits"
	"net/netip"
	"strconv"
	"strings"
)

// The rule text follows iptables-legacy-save -c (iptables 1.8
// iptables/iptables.c print_rule4, ip6tables.c print_rule6, xshared.c
// save_ipv4_addr, save_ipv6_addr, save_rule_details), so that it reads like
// the tool's output people know and can be pasted back with -A.

// ipText renders the conditions of the ip part.
func ipText(fam family, p ipPart) string {
	var b strings.Builder
	b.WriteString(addrCond(fam, "-s", p.src, p.srcMask, p.invflags&invSrc != 0))
	b.WriteString(addrCond(fam, "-d", p.dst, p.dstMask, p.invflags&invDst != 0))
	b.WriteString(ifaceCond("-i", p.in, p.invflags&invIn != 0))
	b.WriteString(ifaceCond("-o", p.out, p.invflags&invOut != 0))
	if p.proto != 0 {
		if p.invflags&invProto != 0 {
			b.WriteString(" !")
		}
		b.WriteString(" -p " + protoName(p.proto))
	}
	if fam.flagFrag != 0 && p.flags&fam.flagFrag != 0 {
		if p.invflags&invFrag != 0 {
			b.WriteString(" !")
		}
		b.WriteString(" -f")
	}
	if fam.flagTOS != 0 && p.flags&fam.flagTOS != 0 {
		// ip6tables prints the IPv6 "TOS" condition it cannot parse back
		// this way (print_rule6).
		if p.invflags&invTOS != 0 {
			b.WriteString(" !")
		}
		b.WriteString(" -? " + strconv.Itoa(int(p.tos)))
	}
	return b.String()
}

// addrCond renders -s/-d: nothing for "any", else ADDR/PREFIX, or
// ADDR/MASK for a mask that is not a prefix.
func addrCond(fam family, flag string, addr netip.Addr, mask []byte, invert bool) string {
	plen := prefixLen(mask)
	if fam.addrLen == 4 {
		// save_ipv4_addr skips only an all-zero address and mask.
		if plen == 0 && !invert && addr.IsUnspecified() {
			return ""
		}
	} else if plen == 0 && !invert {
		return ""
	}
	s := " " + flag + " " + addr.String() + "/"
	if invert {
		s = " !" + s
	}
	if plen < 0 {
		m, _ := netip.AddrFromSlice(mask)
		return s + m.String()
	}
	return s + strconv.Itoa(plen)
}

// addrMask renders an address and mask as xtables_ipaddr_to_numeric and
// xtables_ipmask_to_numeric do for conntrack's --ctorigsrc and friends: no
// suffix for a host, /N for a prefix, /MASK otherwise. Only the first
// 4 bytes count in an IPv4 table.
func addrMask(fam family, addr, mask []byte) string {
	addr, mask = addr[:fam.addrLen], mask[:fam.addrLen]
	a, _ := netip.AddrFromSlice(addr)
	switch plen := prefixLen(mask); plen {
	case 8 * fam.addrLen:
		return a.String()
	case -1:
		m, _ := netip.AddrFromSlice(mask)
		return a.String() + "/" + m.String()
	default:
		return a.String() + "/" + strconv.Itoa(plen)
	}
}

// prefixLen is the length of a contiguous mask, or -1.
func prefixLen(mask []byte) int {
	n, seenZero := 0, false
	for _, c := range mask {
		if seenZero && c != 0 {
			return -1
		}
		ones := bits.LeadingZeros8(^c)
		if ones < 8 {
			if c<<ones != 0 {
				return -1
			}
			seenZero = true
		}
		n += ones
	}
	return n
}

// ifaceCond renders -i/-o. iptables stores "eth+" with a mask that covers
// "eth" only; a table written by another tool may leave the '+' out, so the
// mask decides whether the name is a prefix.
func ifaceCond(flag string, f iface, invert bool) string {
	name := cString(f.name[:])
	if f.mask[0] == 0 {
		// No condition; save_iface still shows "! -i +", which matches nothing.
		if invert && name != "" {
			return " ! " + flag + " " + name
		}
		return ""
	}
	covered := 0
	for covered < ifNameLen && f.mask[covered] != 0 {
		covered++
	}
	if covered < len(name) {
		name = name[:covered]
	}
	if covered <= len(name) && !strings.HasSuffix(name, "+") {
		name += "+"
	}
	s := " " + flag + " " + name
	if invert {
		s = " !" + s
	}
	return s
}

// protoName names a protocol as iptables-save 1.8.9 does: from its own
// table, then from /etc/protocols (proto_to_name); the common names of
// Debian's /etc/protocols are built in, so the text does not depend on the
// machine (iptables 1.8.11 stopped the lookup and prints other numbers).
func protoName(p uint16) string {
	switch p {
	case 2:
		return "igmp"
	case 4:
		return "ipencap"
	case 41:
		return "ipv6"
	case 47:
		return "gre"
	case 89:
		return "ospf"
	case 94:
		return "ipip"
	case 103:
		return "pim"
	case 112:
		return "vrrp"
	case 115:
		return "l2tp"
	case 6:
		return "tcp"
	case 132:
		return "sctp"
	case 17:
		return "udp"
	case 136:
		return "udplite"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	case 50:
		return "esp"
	case 51:
		return "ah"
	case 135:
		return "mobility-header"
	case 33:
		return "dccp"
	case 108:
		return "ipcomp"
	}
	return strconv.Itoa(int(p))
}

// rejectNames are the --reject-with values by family (ipt_reject_with,
// ip6t_reject_with); "" where iptables has no name.
var rejectNames = map[string][]string{
	"ip": {"icmp-net-unreachable", "icmp-host-unreachable", "icmp-proto-unreachable", "icmp-port-unreachable",
		"", "icmp-net-prohibited", "icmp-host-prohibited", "tcp-reset", "icmp-admin-prohibited"},
	"ip6": {"icmp6-no-route", "icmp6-adm-prohibited", "", "icmp6-addr-unreachable", "icmp6-port-unreachable",
		"", "tcp-reset", "icmp6-policy-fail", "icmp6-reject-route"},
}

// renderReject renders -j REJECT with its --reject-with.
func renderReject(fam family, t extension) string {
	if t.revision != 0 || len(t.data) < 4 {
		return opaque(" -j ", t)
	}
	with := native.Uint32(t.data)
	names := rejectNames[fam.name]
	if int(with) < len(names) && names[with] != "" {
		return " -j REJECT --reject-with " + names[with]
	}
	return " -j REJECT --reject-with " + strconv.FormatUint(uint64(with), 10)
}

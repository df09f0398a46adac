package xtables

import (
	"strconv"
	"strings"
)

// The tcp and udp matches (xt_tcpudp.h), rendered as libxt_tcp.c and
// libxt_udp.c save them: ports narrow many a conntrack rule, and a rule
// shown without them would read broader than it is.

// xt_tcp / xt_udp inversion flags.
const (
	invSrcPort  = 0x01
	invDstPort  = 0x02
	invTCPFlags = 0x04
	invTCPOpt   = 0x08
)

// renderTCP renders struct xt_tcp: u16 spts[2], u16 dpts[2], u8 option,
// u8 flg_mask, u8 flg_cmp, u8 invflags.
func renderTCP(d []byte) (string, bool) {
	if len(d) < 12 {
		return "", false
	}
	inv := d[11]
	s := " -m tcp" + portRange("--sport", d[0:], inv&invSrcPort != 0) + portRange("--dport", d[4:], inv&invDstPort != 0)
	if opt := d[8]; opt != 0 || inv&invTCPOpt != 0 {
		s += not(inv&invTCPOpt != 0) + " --tcp-option " + strconv.Itoa(int(opt))
	}
	if mask := d[9]; mask != 0 || inv&invTCPFlags != 0 {
		s += not(inv&invTCPFlags != 0) + " --tcp-flags " + tcpFlags(mask) + " " + tcpFlags(d[10])
	}
	return s, true
}

// renderUDP renders struct xt_udp: u16 spts[2], u16 dpts[2], u8 invflags.
func renderUDP(d []byte) (string, bool) {
	if len(d) < 9 {
		return "", false
	}
	inv := d[8]
	return " -m udp" + portRange("--sport", d[0:], inv&invSrcPort != 0) + portRange("--dport", d[4:], inv&invDstPort != 0), true
}

// portRange renders a low/high pair in host order; the whole range without
// inversion is no condition (skip_ports_match).
func portRange(opt string, d []byte, invert bool) string {
	lo, hi := native.Uint16(d), native.Uint16(d[2:])
	if lo == 0 && hi == 0xffff && !invert {
		return ""
	}
	s := not(invert) + " " + opt + " " + strconv.Itoa(int(lo))
	if hi != lo {
		s += ":" + strconv.Itoa(int(hi))
	}
	return s
}

// tcpFlags names TCP flags as print_tcpf does: FIN,SYN,… or NONE.
func tcpFlags(f uint8) string {
	var names []string
	for i, n := range []string{"FIN", "SYN", "RST", "PSH", "ACK", "URG"} {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if f&0xc0 != 0 {
		// Bits iptables has no name for (ECE, CWR): its printer would not
		// end; show the number.
		names = append(names, "0x"+strconv.FormatUint(uint64(f&0xc0), 16))
	}
	if len(names) == 0 {
		return "NONE"
	}
	return strings.Join(names, ",")
}

func not(invert bool) string {
	if invert {
		return " !"
	}
	return ""
}

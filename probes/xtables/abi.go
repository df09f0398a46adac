package xtables

import (
	"encoding/binary"
	"strconv"

	"golang.org/x/sys/unix"
)

// The layout of x_tables' user interface on a 64-bit kernel, from
// include/uapi/linux/netfilter/x_tables.h and netfilter_ipv4/ip_tables.h,
// netfilter_ipv6/ip6_tables.h (checked against the headers with offsetof
// and sizeof on x86_64). Every struct the kernel hands out is padded to
// XT_ALIGN, 8 bytes: the alignment of a u64 there. A 32-bit process would
// see the compat layout instead (net/netfilter/x_tables.c xt_compat_*),
// which this package does not read.
const (
	xtAlign = 8

	// struct xt_entry_match / xt_entry_target: u16 size, char name[29],
	// u8 revision, then the extension's data.
	extHeaderSize = 32
	extNameLen    = 29 // XT_EXTENSION_MAXNAMELEN, NUL included

	tableNameLen = 32 // XT_TABLE_MAXNAMELEN, NUL included
	ifNameLen    = unix.IFNAMSIZ

	// struct ipt_getinfo / ip6t_getinfo: char name[32], u32 valid_hooks,
	// u32 hook_entry[5], u32 underflow[5], u32 num_entries, u32 size.
	getInfoSize = tableNameLen + 4 + 4*numHooks + 4*numHooks + 4 + 4
	// struct ipt_get_entries: char name[32], u32 size, then the entries at
	// the next 8-byte boundary.
	getEntriesHeader = 40

	numHooks = 5 // NF_INET_NUMHOOKS

	// getsockopt options (IPT_BASE_CTL; the IPv6 ones have the same numbers
	// at level SOL_IPV6).
	soGetInfo    = 64 // IPT_SO_GET_INFO
	soGetEntries = 65 // IPT_SO_GET_ENTRIES

	// Standard verdicts: a negative verdict v means netfilter verdict -v-1
	// (include/uapi/linux/netfilter/x_tables.h XT_RETURN).
	verdictDrop   = -1 // -NF_DROP - 1
	verdictAccept = -2 // -NF_ACCEPT - 1
	verdictQueue  = -4 // -NF_QUEUE - 1
	verdictReturn = -5 // XT_RETURN = -NF_REPEAT - 1

	targetError    = "ERROR" // XT_ERROR_TARGET: heads a user chain, ends the table
	targetStandard = ""      // XT_STANDARD_TARGET
)

// hookNames are the built-in chains, by hook number (NF_INET_*).
var hookNames = [numHooks]string{"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}

// hookWords are the same hooks as evidence.FirewallRule spells them.
var hookWords = [numHooks]string{"prerouting", "input", "forward", "output", "postrouting"}

// family is what differs between iptables and ip6tables.
type family struct {
	name      string // evidence family: "ip" or "ip6"
	tool      string // the command a person knows
	domain    int    // socket domain
	level     int    // getsockopt level
	namesFile string // the table list under /proc/thread-self/net

	entrySize   int // sizeof(struct ipt_entry) / ip6t_entry
	ipSize      int // sizeof(struct ipt_ip) / ip6t_ip6: where nfcache starts
	addrLen     int
	offTarget   int // target_offset (u16), then next_offset (u16)
	offCounters int // struct xt_counters: u64 pcnt, u64 bcnt

	// Offsets inside the ip part.
	offIfaces int // iniface[16], outiface[16], iniface_mask[16], outiface_mask[16]
	offProto  int // u16 proto, then (v6 only) u8 tos, then u8 flags, u8 invflags
	offFlags  int
	offInv    int

	flagGoto uint8 // IPT_F_GOTO / IP6T_F_GOTO
	flagFrag uint8 // IPT_F_FRAG; ip6tables has none
	flagTOS  uint8 // IP6T_F_TOS; iptables has none
}

var (
	familyIPv4 = family{
		name: "ip", tool: "iptables-legacy", domain: unix.AF_INET, level: unix.SOL_IP, namesFile: "ip_tables_names",
		entrySize: 112, ipSize: 84, addrLen: 4, offTarget: 88, offCounters: 96,
		offIfaces: 16, offProto: 80, offFlags: 82, offInv: 83,
		flagGoto: 0x02, flagFrag: 0x01,
	}
	familyIPv6 = family{
		name: "ip6", tool: "ip6tables-legacy", domain: unix.AF_INET6, level: unix.SOL_IPV6, namesFile: "ip6_tables_names",
		entrySize: 168, ipSize: 136, addrLen: 16, offTarget: 140, offCounters: 152,
		offIfaces: 64, offProto: 128, offFlags: 131, offInv: 132,
		flagGoto: 0x04, flagTOS: 0x02,
	}
	families = []family{familyIPv4, familyIPv6}
)

// Inversion flags of the ip part (IPT_INV_*, the same bits for IPv6).
const (
	invIn    = 0x01
	invOut   = 0x02
	invTOS   = 0x04 // IP6T_INV_TOS
	invSrc   = 0x08
	invDst   = 0x10
	invFrag  = 0x20
	invProto = 0x40 // XT_INV_PROTO
)

// native is the byte order of the kernel's integers; addresses are in
// network order.
var native = binary.NativeEndian

// layoutSupported says whether this process sees the layout above: a 64-bit
// process. The kernel translates for 32-bit ones, into another layout.
func layoutSupported() bool { return strconv.IntSize == 64 }

func align(n int) int { return (n + xtAlign - 1) &^ (xtAlign - 1) }

// cString reads a NUL-terminated string from a fixed-size field.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

package xtables

import (
	"encoding/binary"
	"fmt"
)

// Conntrack states, as xt_conntrack and xt_state number them
// (include/uapi/linux/netfilter/xt_conntrack.h XT_CONNTRACK_STATE_BIT).
const (
	StateInvalid     = 1 << 0
	StateEstablished = 1 << 1
	StateRelated     = 1 << 2
	StateNew         = 1 << 3
)

// xt_conntrack match_flags the constructors set.
const (
	ctFlagState      = 1 << 0
	ctFlagStateAlias = 1 << 13
)

// conntrackSizes are sizeof(struct xt_conntrack_mtinfo1..3).
var conntrackSizes = map[int]int{1: 152, 2: 156, 3: 164}

// Conntrack is `-m conntrack [!] --ctstate STATES` in match revision 1, 2
// or 3 (the kernel has all three; iptables ≥ 1.4.16 writes 3).
func Conntrack(revision int, states uint16, invert bool) Match {
	size, ok := conntrackSizes[revision]
	if !ok {
		panic(fmt.Sprintf("xtables: conntrack match revision %d: use 1, 2 or 3", revision))
	}
	d := make([]byte, pad(size))
	binary.NativeEndian.PutUint16(d[146:], ctFlagState) // match_flags
	if invert {
		binary.NativeEndian.PutUint16(d[148:], ctFlagState) // invert_flags
	}
	if revision == 1 {
		d[150] = uint8(states) // __u8 state_mask
	} else {
		binary.NativeEndian.PutUint16(d[150:], states)
	}
	return Match{Name: "conntrack", Revision: uint8(revision), Data: d}
}

// StateAlias is `-m state --state STATES` as iptables ≥ 1.4.16 writes it: a
// conntrack revision 3 match whose flags say it was given as -m state.
func StateAlias(states uint16) Match {
	m := Conntrack(3, states, false)
	binary.NativeEndian.PutUint16(m.Data[146:], ctFlagState|ctFlagStateAlias)
	return m
}

// State is `-m state --state STATES` in the kernel's own xt_state match
// (struct xt_state_info), as iptables before 1.4.16 wrote it.
func State(states uint32) Match {
	d := make([]byte, pad(4))
	binary.NativeEndian.PutUint32(d, states)
	return Match{Name: "state", Data: d}
}

// rpfilter flags (include/uapi/linux/netfilter/xt_rpfilter.h).
const (
	RPFilterLoose       = 1 << 0
	RPFilterValidMark   = 1 << 1
	RPFilterAcceptLocal = 1 << 2
	RPFilterInvert      = 1 << 3
)

// RPFilter is `-m rpfilter [--loose] [--validmark] [--accept-local]
// [--invert]`. The kernel allows it only in the raw and mangle tables, in
// PREROUTING (ipt_rpfilter.c rpfilter_check).
func RPFilter(flags uint8) Match {
	d := make([]byte, pad(1))
	d[0] = flags
	return Match{Name: "rpfilter", Data: d}
}

// Comment is `-m comment --comment TEXT` (at most 255 bytes).
func Comment(text string) Match {
	if len(text) > 255 {
		panic("xtables: a comment holds at most 255 bytes")
	}
	d := make([]byte, 256) // struct xt_comment_info
	copy(d, text)
	return Match{Name: "comment", Data: d}
}

// Mark is `-m mark --mark VALUE/MASK` (xt_mark_mtinfo1, revision 1).
func Mark(value, mask uint32) Match {
	d := make([]byte, pad(9))
	binary.NativeEndian.PutUint32(d, value)
	binary.NativeEndian.PutUint32(d[4:], mask)
	return Match{Name: "mark", Revision: 1, Data: d}
}

// Reject is -j REJECT --reject-with WITH, WITH numbered as in
// ipt_reject_with (3: icmp-port-unreachable) or ip6t_reject_with. The
// kernel allows it in the filter table only.
func Reject(with uint32) Target {
	d := make([]byte, pad(4))
	binary.NativeEndian.PutUint32(d, with)
	return Extension("REJECT", 0, d)
}

// SetMark is -j MARK --set-xmark VALUE/MASK (xt_mark_tginfo2, revision 2).
// With mask 0 it changes nothing: a target that only shows up.
func SetMark(value, mask uint32) Target {
	d := make([]byte, pad(8))
	binary.NativeEndian.PutUint32(d, value)
	binary.NativeEndian.PutUint32(d[4:], mask)
	return Extension("MARK", 2, d)
}

// pad rounds a struct size up to XT_ALIGN (8 on 64-bit kernels), which is
// the exact data length the kernel expects (x_tables.c xt_check_match).
func pad(n int) int { return (n + 7) &^ 7 }

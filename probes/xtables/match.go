package xtables

import (
	"encoding/binary"
	"strconv"
	"strings"

	"asym/evidence"
)

// The matches asym reads, rendered as iptables-legacy-save prints them
// (iptables 1.8 extensions/libxt_conntrack.c, libxt_rpfilter.c,
// libxt_comment.c, and ports.go for tcp and udp). Any other match is "-m NAME", followed by "…" when it
// has options asym does not spell out.

// renderMatch renders one match and says what an invalid packet or a
// failed reverse-path check does to it.
func renderMatch(fam family, m extension) (string, evidence.FirewallRuleKind) {
	switch m.name {
	case "conntrack":
		if ct, ok := decodeConntrack(m); ok {
			return ct.render(fam), ct.kind()
		}
	case "state":
		if m.revision == 0 && len(m.data) >= 4 {
			mask := native.Uint32(m.data)
			text := " -m state --state" + stateNames(mask, xtStateBits)
			if mask&stateInvalid != 0 {
				return text, evidence.RuleCtInvalid
			}
			return text, ""
		}
	case "rpfilter":
		if m.revision == 0 && len(m.data) >= 1 {
			return renderRPFilter(m.data[0])
		}
	case "tcp", "udp":
		render := renderTCP
		if m.name == "udp" {
			render = renderUDP
		}
		if s, ok := render(m.data); ok && m.revision == 0 {
			return s, ""
		}
	case "comment":
		if m.revision == 0 {
			return " -m comment --comment" + saveString(cString(m.data)), ""
		}
	}
	return opaque(" -m ", m), ""
}

// opaque renders an extension asym does not decode.
func opaque(flag string, x extension) string {
	s := flag + x.name
	if len(x.data) > 0 {
		s += " …"
	}
	return s
}

// Conntrack state bits (include/uapi/linux/netfilter/xt_conntrack.h): bit 0
// is INVALID, then one bit per ip_conntrack_info below IP_CT_IS_REPLY.
const (
	stateInvalid     = 1 << 0
	stateEstablished = 1 << 1
	stateRelated     = 1 << 2
	stateNew         = 1 << 3
)

type stateBit struct {
	bit  uint32
	name string
}

// ctStateBits are xt_conntrack's, in the order iptables prints them.
var ctStateBits = []stateBit{
	{stateInvalid, "INVALID"}, {stateNew, "NEW"}, {stateRelated, "RELATED"}, {stateEstablished, "ESTABLISHED"},
	{1 << 8, "UNTRACKED"}, {1 << 6, "SNAT"}, {1 << 7, "DNAT"},
}

// xtStateBits are xt_state's: there UNTRACKED is bit 6 (XT_STATE_UNTRACKED),
// which iptables' shared printer would call SNAT; the kernel's meaning is
// shown.
var xtStateBits = []stateBit{
	{stateInvalid, "INVALID"}, {stateNew, "NEW"}, {stateRelated, "RELATED"}, {stateEstablished, "ESTABLISHED"},
	{1 << 6, "UNTRACKED"},
}

// stateNames renders a state mask as " INVALID,NEW" (print_state).
func stateNames(mask uint32, bits []stateBit) string {
	var names []string
	for _, b := range bits {
		if mask&b.bit != 0 {
			names = append(names, b.name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " " + strings.Join(names, ",")
}

// xt_conntrack match_flags.
const (
	ctFlagState      = 1 << 0
	ctFlagProto      = 1 << 1
	ctFlagOrigSrc    = 1 << 2
	ctFlagOrigDst    = 1 << 3
	ctFlagReplSrc    = 1 << 4
	ctFlagReplDst    = 1 << 5
	ctFlagStatus     = 1 << 6
	ctFlagExpires    = 1 << 7
	ctFlagOrigSrcPt  = 1 << 8
	ctFlagOrigDstPt  = 1 << 9
	ctFlagReplSrcPt  = 1 << 10
	ctFlagReplDstPt  = 1 << 11
	ctFlagDirection  = 1 << 12
	ctFlagStateAlias = 1 << 13 // written by `-m state` in iptables ≥ 1.4.16
)

// conntrackInfo is struct xt_conntrack_mtinfo3, revisions 1 and 2 widened
// into it as iptables does (cinfo_transform).
type conntrackInfo struct {
	revision             uint8
	addrs                [8][16]byte // origsrc, its mask, origdst, mask, replsrc, mask, repldst, mask
	expiresMin           uint32
	expiresMax           uint32
	l4proto              uint16
	ports, portsHigh     [4]uint16 // origsrc, origdst, replsrc, repldst; host order
	matchFlags, invFlags uint16
	stateMask            uint16
	statusMask           uint16
}

// conntrackSizes are sizeof(struct xt_conntrack_mtinfo1..3) by revision.
var conntrackSizes = map[uint8]int{1: 152, 2: 156, 3: 164}

// decodeConntrack reads revisions 1 to 3; ok is false for any other
// revision or a short buffer.
func decodeConntrack(m extension) (conntrackInfo, bool) {
	size, known := conntrackSizes[m.revision]
	if !known || len(m.data) < size {
		return conntrackInfo{}, false
	}
	d := m.data
	ct := conntrackInfo{revision: m.revision}
	for i := range ct.addrs {
		copy(ct.addrs[i][:], d[16*i:])
	}
	ct.expiresMin = native.Uint32(d[128:])
	ct.expiresMax = native.Uint32(d[132:])
	ct.l4proto = native.Uint16(d[136:])
	for i := range ct.ports {
		// Revisions 1 and 2 keep ports in network order, 3 in host order
		// with a high end for ranges (xt_conntrack.c ct_proto_port_check_v3).
		ct.ports[i] = binary.BigEndian.Uint16(d[138+2*i:])
		if m.revision == 3 {
			ct.ports[i] = native.Uint16(d[138+2*i:])
			ct.portsHigh[i] = native.Uint16(d[154+2*i:])
		}
	}
	ct.matchFlags = native.Uint16(d[146:])
	ct.invFlags = native.Uint16(d[148:])
	if m.revision == 1 {
		ct.stateMask, ct.statusMask = uint16(d[150]), uint16(d[151])
	} else {
		ct.stateMask, ct.statusMask = native.Uint16(d[150:]), native.Uint16(d[152:])
	}
	return ct, true
}

// kind: an invalid packet has no conntrack entry, so only the state
// condition decides for it (xt_conntrack.c conntrack_mt: without a ct it
// returns after the state check).
func (ct conntrackInfo) kind() evidence.FirewallRuleKind {
	if ct.matchFlags&ctFlagState == 0 {
		return ""
	}
	if (ct.stateMask&stateInvalid != 0) != (ct.invFlags&ctFlagState != 0) {
		return evidence.RuleCtInvalid
	}
	return ""
}

// render follows conntrack_dump with the "--" prefix and numeric output.
func (ct conntrackInfo) render(fam family) string {
	var b strings.Builder
	// iptables ≥ 1.4.16 writes `-m state` as this match with the alias flag
	// and prints it back under the name it was given (conntrack_print_name_alias).
	alias := ct.matchFlags&ctFlagStateAlias != 0
	if alias {
		b.WriteString(" -m state")
	} else {
		b.WriteString(" -m conntrack")
	}
	not := func(flag uint16) {
		if ct.invFlags&flag != 0 {
			b.WriteString(" !")
		}
	}
	if ct.matchFlags&ctFlagState != 0 {
		not(ctFlagState)
		if alias {
			b.WriteString(" --state")
		} else {
			b.WriteString(" --ctstate")
		}
		b.WriteString(stateNames(uint32(ct.stateMask), ctStateBits))
	}
	if ct.matchFlags&ctFlagProto != 0 {
		not(ctFlagProto)
		b.WriteString(" --ctproto " + strconv.Itoa(int(ct.l4proto)))
	}
	for i, opt := range []string{"ctorigsrc", "ctorigdst", "ctreplsrc", "ctrepldst"} {
		flag := uint16(ctFlagOrigSrc << i)
		if ct.matchFlags&flag != 0 {
			not(flag)
			b.WriteString(" --" + opt + " " + addrMask(fam, ct.addrs[2*i][:], ct.addrs[2*i+1][:]))
		}
	}
	for i, opt := range []string{"ctorigsrcport", "ctorigdstport", "ctreplsrcport", "ctrepldstport"} {
		flag := uint16(ctFlagOrigSrcPt << i)
		if ct.matchFlags&flag != 0 {
			not(flag)
			lo, hi := ct.ports[i], ct.portsHigh[i]
			b.WriteString(" --" + opt + " " + strconv.Itoa(int(lo)))
			if hi != 0 && hi != lo {
				b.WriteString(":" + strconv.Itoa(int(hi)))
			}
		}
	}
	if ct.matchFlags&ctFlagStatus != 0 {
		not(ctFlagStatus)
		b.WriteString(" --ctstatus" + statusNames(ct.statusMask))
	}
	if ct.matchFlags&ctFlagExpires != 0 {
		not(ctFlagExpires)
		b.WriteString(" --ctexpire " + strconv.FormatUint(uint64(ct.expiresMin), 10))
		if ct.expiresMax != ct.expiresMin {
			b.WriteString(":" + strconv.FormatUint(uint64(ct.expiresMax), 10))
		}
	}
	if ct.matchFlags&ctFlagDirection != 0 {
		if ct.invFlags&ctFlagDirection != 0 {
			b.WriteString(" --ctdir REPLY")
		} else {
			b.WriteString(" --ctdir ORIGINAL")
		}
	}
	return b.String()
}

// statusNames renders a conntrack status mask (print_status).
func statusNames(mask uint16) string {
	var names []string
	for _, s := range []struct {
		bit  uint16
		name string
	}{{1, "EXPECTED"}, {2, "SEEN_REPLY"}, {4, "ASSURED"}, {8, "CONFIRMED"}} {
		if mask&s.bit != 0 {
			names = append(names, s.name)
		}
	}
	if len(names) == 0 {
		return " NONE"
	}
	return " " + strings.Join(names, ",")
}

// xt_rpfilter_info flags (include/uapi/linux/netfilter/xt_rpfilter.h).
const (
	rpfLoose       = 1 << 0
	rpfValidMark   = 1 << 1
	rpfAcceptLocal = 1 << 2
	rpfInvert      = 1 << 3
)

// renderRPFilter: with --invert the rule matches packets that fail the
// reverse-path check, which is how firewalld and hand-written rules drop them.
func renderRPFilter(flags uint8) (string, evidence.FirewallRuleKind) {
	s := " -m rpfilter"
	for _, o := range []struct {
		bit  uint8
		name string
	}{{rpfLoose, "loose"}, {rpfValidMark, "validmark"}, {rpfAcceptLocal, "accept-local"}, {rpfInvert, "invert"}} {
		if flags&o.bit != 0 {
			s += " --" + o.name
		}
	}
	if flags&rpfInvert != 0 {
		return s, evidence.RuleFibRPFilter
	}
	return s, ""
}

// saveString quotes a value as xtables_save_string does: bare when it is
// made of letters, digits, dashes and underscores, else in double quotes,
// with double quotes, backslashes and single quotes escaped by a backslash.
func saveString(v string) string {
	bare := v != ""
	for _, c := range v {
		if !(c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			bare = false
			break
		}
	}
	if bare {
		return " " + v
	}
	var b strings.Builder
	b.WriteString(` "`)
	for _, c := range []byte(v) {
		if c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}

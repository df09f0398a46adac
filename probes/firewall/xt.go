package firewall

// x_tables matches and targets carried by nft_compat, as iptables-nft
// writes them into nftables tables.

import (
	"fmt"
	"strconv"
	"strings"

	"asym/evidence"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// decodeXtMatch reads an xt match.
func decodeXtMatch(s *scanner, m *expr.Match) {
	s.xt = true
	text, kind := xtMatch(m)
	s.text.push(text)
	if kind != "" {
		s.found(kind, evidence.SourceIptablesNft)
	}
}

// xtMatches read the matches asym spells out, by name. They return the
// kind when the match selects invalid packets or fails reverse-path
// filtering, and false for an Info they cannot read.
var xtMatches = map[string]func(*expr.Match) (text string, kind evidence.FirewallRuleKind, ok bool){
	"conntrack": xtConntrack,
	"state":     xtState,
	"rpfilter":  xtRPFilter,
	"comment":   xtComment,
	"tcp":       xtTCPText,
	"udp":       xtUDPText,
}

// xtMatch reads an x_tables match; one it cannot read is named.
func xtMatch(m *expr.Match) (string, evidence.FirewallRuleKind) {
	if read, ok := xtMatches[m.Name]; ok {
		if text, kind, ok := read(m); ok {
			return text, kind
		}
	}
	return "xt match " + strconv.Quote(m.Name), ""
}

// xtConntrack reads -m conntrack --ctstate. Anything besides the state
// (and the -m state alias flag) is a further condition not spelled out.
func xtConntrack(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	base, mask := xtConntrackState(m.Info)
	if base == nil || base.MatchFlags&uint16(xt.ConntrackState) == 0 {
		return "", "", false
	}
	inv := base.InvertFlags&uint16(xt.ConntrackState) != 0
	text := "ct state "
	if inv {
		text += "!= "
	}
	text += ctStateNames(mask)
	if base.MatchFlags&^uint16(xt.ConntrackState|xt.ConntrackStateAlias) != 0 {
		text += " …"
	}
	var kind evidence.FirewallRuleKind
	if (mask&ctInvalid != 0) != inv {
		kind = evidence.RuleCtInvalid
	}
	return text, kind, true
}

// xtConntrackState finds the flags and the state mask in whichever
// revision of xt_conntrack_mtinfo the rule carries.
func xtConntrackState(info xt.InfoAny) (*xt.ConntrackMtinfoBase, uint32) {
	switch i := info.(type) {
	case *xt.ConntrackMtinfo1:
		return &i.ConntrackMtinfoBase, uint32(i.StateMask)
	case *xt.ConntrackMtinfo2:
		return &i.ConntrackMtinfoBase, uint32(i.StateMask)
	case *xt.ConntrackMtinfo3:
		return &i.ConntrackMtinfoBase, uint32(i.StateMask)
	}
	return nil, 0
}

// xtState reads -m state --state. xt_state_info is one host-endian u32
// statemask; google/nftables has no type for it, so it arrives as raw bytes
// (padded to 8). XT_STATE_INVALID is bit 0. `! --state` is stored as the
// complemented mask, there is no invert flag.
func xtState(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	u, ok := m.Info.(*xt.Unknown)
	if !ok || len(*u) < 4 {
		return "", "", false
	}
	mask := native.Uint32((*u)[:4])
	var kind evidence.FirewallRuleKind
	if mask&ctInvalid != 0 {
		kind = evidence.RuleCtInvalid
	}
	return "ct state " + ctStateNames(mask), kind, true
}

// xtRPFilter reads -m rpfilter. xt_rpfilter_info is one u8 of flags: LOOSE
// 1, VALID_MARK 2, ACCEPT_LOCAL 4, INVERT 8. `-m rpfilter --invert -j DROP`
// is the iptables reverse-path drop (firewalld's iptables backend). Rendered
// as nft's own translation of it.
func xtRPFilter(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	u, ok := m.Info.(*xt.Unknown)
	if !ok || len(*u) < 1 {
		return "", "", false
	}
	flags := (*u)[0]
	keys := "saddr . "
	if flags&2 != 0 {
		keys += "mark . "
	}
	if flags&1 == 0 {
		keys += "iif "
	}
	text := "fib " + keys + "oif "
	if flags&8 != 0 {
		return text + "0", evidence.RuleFibRPFilter, true
	}
	return text + "!= 0", "", true
}

// xtTCPText reads -m tcp as nft translates it: ports and flags.
func xtTCPText(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	t, ok := m.Info.(*xt.Tcp)
	if !ok {
		return "", "", false
	}
	words := portWords("tcp", t.SrcPorts, t.DstPorts, t.InvFlags&xt.TcpInvSrcPorts != 0, t.InvFlags&xt.TcpInvDestPorts != 0)
	if t.FlagsMask != 0 {
		op := "=="
		if t.InvFlags&xt.TcpInvFlags != 0 {
			op = "!="
		}
		words = append(words, fmt.Sprintf("tcp flags & (%s) %s %s", nftTCPFlags(t.FlagsMask), op, nftTCPFlags(t.FlagsCmp)))
	}
	if t.Option != 0 {
		words = append(words, "tcp option …")
	}
	if len(words) == 0 {
		return "meta l4proto tcp", "", true
	}
	return strings.Join(words, " "), "", true
}

// xtUDPText reads -m udp.
func xtUDPText(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	u, ok := m.Info.(*xt.Udp)
	if !ok {
		return "", "", false
	}
	words := portWords("udp", u.SrcPorts, u.DstPorts, u.InvFlags&xt.UdpInvSrcPorts != 0, u.InvFlags&xt.UdpInvDestPorts != 0)
	if len(words) == 0 {
		return "meta l4proto udp", "", true
	}
	return strings.Join(words, " "), "", true
}

// portWords render port ranges that are not the whole range.
func portWords(proto string, src, dst [2]uint16, invSrc, invDst bool) []string {
	var out []string
	for _, p := range []struct {
		word string
		r    [2]uint16
		inv  bool
	}{{"sport", src, invSrc}, {"dport", dst, invDst}} {
		if p.r == [2]uint16{0, 0xffff} && !p.inv {
			continue
		}
		v := strconv.Itoa(int(p.r[0]))
		if p.r[1] != p.r[0] {
			v += "-" + strconv.Itoa(int(p.r[1]))
		}
		if p.inv {
			v = "!= " + v
		}
		out = append(out, proto+" "+p.word+" "+v)
	}
	return out
}

// nftTCPFlags names TCP flags as nft does: syn | ack.
func nftTCPFlags(f uint8) string {
	var names []string
	for i, n := range []string{"fin", "syn", "rst", "psh", "ack", "urg", "ecn", "cwr"} {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "0x0"
	}
	return strings.Join(names, " | ")
}

// xtComment reads -m comment.
func xtComment(m *expr.Match) (string, evidence.FirewallRuleKind, bool) {
	c, ok := m.Info.(*xt.Comment)
	if !ok {
		return "", "", false
	}
	return "comment " + strconv.Quote(string(*c)), "", true
}

// decodeXtTarget reads an xt target (-j): REJECT decides, LOG goes on.
func decodeXtTarget(s *scanner, t *expr.Target) {
	s.xt = true
	switch t.Name {
	case "REJECT":
		s.text.push("reject")
		s.sc.verdict = "reject"
	case "LOG", "NFLOG":
		s.text.push("log")
	default:
		s.text.push("xt target " + strconv.Quote(t.Name))
	}
}

package firewall

// payload: address and port comparisons.

import (
	"asym/evidence"
	"math/bits"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// decodePayload reads a header load compared with a constant. A compare
// of an ICMP type that is an error (destination unreachable, packet too
// big, time exceeded) makes the rule one about ICMP errors: a router that
// drops the ones it sends makes an MTU black hole.
func decodePayload(s *scanner, p *expr.Payload) {
	used, text := payloadCond(s.fam, s.rest, p)
	if used == 0 && p.OperationType == expr.PayloadLoad {
		if word := payloadWord(s.fam, p); word != "" {
			s.hold(p.DestRegister, word, false) // a set lookup or a statement reads it
			return
		}
	}
	if used > 0 && p.Base == expr.PayloadBaseTransportHeader && p.Offset == 0 && p.Len == 1 {
		if _, cmp, _ := maskedCompare(s.rest, p.DestRegister); cmp != nil && cmp.Op == expr.CmpOpEq && len(cmp.Data) == 1 && icmpErrorType(cmp.Data[0]) {
			s.found(evidence.RuleICMPError, evidence.SourceNftables)
		}
	}
	s.condition(used, text)
}

// icmpErrorType says whether an ICMP (v4) or ICMPv6 type is an error about
// another packet: v4 destination unreachable 3 and time exceeded 11; v6
// destination unreachable 1, packet too big 2, time exceeded 3.
func icmpErrorType(t byte) bool { return t == 1 || t == 2 || t == 3 || t == 11 }

// payloadWords render a comparison of what a load from the header base
// reads, or return false when they cannot.
var payloadWords = map[expr.PayloadBase]func(fam nftables.TableFamily, p *expr.Payload, mask, data []byte, op string) (string, bool){
	expr.PayloadBaseNetworkHeader: addrCond,
	expr.PayloadBaseTransportHeader: func(_ nftables.TableFamily, p *expr.Payload, mask, data []byte, op string) (string, bool) {
		if p.Len == 1 && p.Offset <= 1 && len(data) == 1 && mask == nil {
			return map[uint32]string{0: "icmp type ", 1: "icmp code "}[p.Offset] + op + strconv.Itoa(int(data[0])), true
		}
		return portCond(p, mask, data, op)
	},
}

// payloadCond renders address and port comparisons, the conditions that
// commonly narrow a ct-invalid or rpfilter rule. nft compiles a prefix on a
// byte boundary as a shorter load (`ip saddr 192.0.2.0/24` is a 3-byte
// payload), iptables-nft as a 4-byte load and a Bitwise mask. used is 0
// when it cannot.
func payloadCond(fam nftables.TableFamily, rest []any, p *expr.Payload) (used int, text string) {
	word := payloadWords[p.Base]
	if p.OperationType != expr.PayloadLoad || word == nil {
		return 0, ""
	}
	mask, cmp, used := maskedCompare(rest, p.DestRegister)
	if cmp == nil || !eqOrNeq(cmp.Op) {
		return 0, ""
	}
	op := ""
	if cmp.Op == expr.CmpOpNeq {
		op = "!= "
	}
	text, ok := word(fam, p, mask, cmp.Data, op)
	if !ok {
		return 0, ""
	}
	return used, text
}

// maskedCompare reads a compare of register reg, with the Bitwise mask
// iptables-nft puts before it when there is one; used counts both.
func maskedCompare(rest []any, reg uint32) (mask []byte, cmp *expr.Cmp, used int) {
	if len(rest) == 0 {
		return nil, nil, 0
	}
	if bw, ok := rest[0].(*expr.Bitwise); ok && bw.SourceRegister == reg && len(rest) > 1 {
		mask, reg, used = bw.Mask, bw.DestRegister, 1
	}
	cmp, ok := compareOf(rest[used], reg)
	if !ok {
		return nil, nil, 0
	}
	return mask, cmp, used + 1
}

// payloadWord names a whole field a load reads: an address or a port.
func payloadWord(fam nftables.TableFamily, p *expr.Payload) string {
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		if word, full, ok := addrField(fam, p); ok && int(p.Len) == full {
			return strings.TrimSpace(word)
		}
	case expr.PayloadBaseTransportHeader:
		if p.Len == 2 && (p.Offset == 0 || p.Offset == 2) {
			return map[uint32]string{0: "th sport", 2: "th dport"}[p.Offset]
		}
	}
	return ""
}

// addrField names the address a network-header load reads, and how long a
// full one is.
func addrField(fam nftables.TableFamily, p *expr.Payload) (word string, full int, ok bool) {
	switch {
	case fam != nftables.TableFamilyIPv6 && (p.Offset == 12 || p.Offset == 16) && p.Len <= 4:
		return map[uint32]string{12: "ip saddr ", 16: "ip daddr "}[p.Offset], 4, true
	case fam != nftables.TableFamilyIPv4 && (p.Offset == 8 || p.Offset == 24) && p.Len <= 16:
		return map[uint32]string{8: "ip6 saddr ", 24: "ip6 daddr "}[p.Offset], 16, true
	}
	return "", 0, false
}

// addrCond renders an address or a prefix: the prefix length is the load's
// length, or the mask's bits when there is one.
func addrCond(fam nftables.TableFamily, p *expr.Payload, mask, data []byte, op string) (string, bool) {
	word, full, ok := addrField(fam, p)
	if !ok {
		return "", false
	}
	addr := make([]byte, full)
	copy(addr, data)
	plen := int(p.Len) * 8
	if mask != nil {
		plen = 0
		for _, b := range mask {
			plen += bits.OnesCount8(b)
		}
	}
	a, _ := netip.AddrFromSlice(addr)
	s := a.String()
	if plen < full*8 {
		s = netip.PrefixFrom(a, plen).String()
	}
	return word + op + s, true
}

// portCond renders `th sport` or `th dport`; nft turns it into `tcp dport`
// when an l4proto condition comes before it (ruleText.push).
func portCond(p *expr.Payload, mask, data []byte, op string) (string, bool) {
	if p.Len != 2 || (p.Offset != 0 && p.Offset != 2) || len(data) != 2 || mask != nil {
		return "", false
	}
	word := map[uint32]string{0: "th sport ", 2: "th dport "}[p.Offset]
	return word + op + strconv.Itoa(int(binaryutil.BigEndian.Uint16(data))), true
}

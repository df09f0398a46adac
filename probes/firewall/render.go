package firewall

// Rendering: rules as nft list prints them, grouped under chain headers.

import (
	"strconv"
	"strings"

	"asym/evidence"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// ruleText is a rule's words as the decoders add them, with the rewrites
// nft makes when it prints a rule.
type ruleText struct{ toks []string }

// push adds one token. nft hides the protocol dependency it adds itself:
// `tcp dport 22` is meta l4proto tcp + th dport, and `ip saddr` in an inet
// table comes after meta nfproto ipv4. Consecutive "…" read as one.
func (t *ruleText) push(tok string) {
	n := len(t.toks)
	if n == 0 {
		t.toks = append(t.toks, tok)
		return
	}
	prev := t.toks[n-1]
	switch {
	case tok == "…" && prev == "…":
	case strings.HasPrefix(prev, "meta l4proto ") && strings.HasPrefix(tok, "th "):
		t.toks[n-1] = strings.TrimPrefix(prev, "meta l4proto ") + strings.TrimPrefix(tok, "th")
	case prev == "meta nfproto ipv4" && strings.HasPrefix(tok, "ip "),
		prev == "meta nfproto ipv6" && strings.HasPrefix(tok, "ip6 "):
		t.toks[n-1] = tok
	default:
		t.toks = append(t.toks, tok)
	}
}

func (t *ruleText) String() string { return strings.Join(t.toks, " ") }

// nftChainHeader renders the line that introduces a chain's rules.
func nftChainHeader(r evidence.FirewallRule, policy, device string, dormant bool) string {
	h := "table " + r.Family + " " + r.Table
	if dormant {
		h += " (dormant: not applied)"
	}
	h += "  chain " + r.Chain
	if r.Hook == "" {
		return h
	}
	var attrs []string
	a := "hook " + r.Hook
	if device != "" {
		a += " device " + strconv.Quote(device)
	}
	attrs = append(attrs, a+" priority "+strconv.Itoa(r.Priority))
	if policy != "" {
		attrs = append(attrs, "policy "+policy)
	}
	return h + " (" + strings.Join(attrs, "; ") + ")"
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return "family-" + strconv.Itoa(int(f))
}

// hookName names a hook number; the numbering depends on the family.
func hookName(f nftables.TableFamily, h uint32) string {
	var names []string
	switch f {
	case nftables.TableFamilyNetdev:
		names = []string{"ingress", "egress"} // NF_NETDEV_*
	case nftables.TableFamilyARP:
		names = []string{"input", "output", "forward"} // NF_ARP_*
	default:
		names = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"} // NF_INET_*
	}
	if int(h) < len(names) {
		return names[h]
	}
	return "hook-" + strconv.Itoa(int(h))
}

// chainPolicy is a base chain's policy; "" for a regular chain.
func chainPolicy(ch *nftables.Chain) string {
	if ch.Policy == nil {
		return ""
	}
	switch *ch.Policy {
	case nftables.ChainPolicyAccept:
		return "accept"
	case nftables.ChainPolicyDrop:
		return "drop"
	}
	return strconv.Itoa(int(*ch.Policy))
}

func cmpOpName(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return "=="
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return "?"
}

package firewall

// Verdicts: what a rule does with the packets it matches.

import "github.com/google/nftables/expr"

// decodeVerdict reads an immediate verdict; continue and break say nothing.
func decodeVerdict(s *scanner, v *expr.Verdict) {
	if name := verdictName(v.Kind, v.Chain); name != "" {
		s.text.push(name)
		s.sc.verdict = name
	}
}

// decodeReject reads reject, a verdict of its own in nftables.
func decodeReject(s *scanner, _ *expr.Reject) {
	s.text.push("reject")
	s.sc.verdict = "reject"
}

// verdictWords are the verdicts that name no chain, as nft prints them.
var verdictWords = map[expr.VerdictKind]string{
	expr.VerdictDrop:   "drop",
	expr.VerdictAccept: "accept",
	expr.VerdictReturn: "return",
	expr.VerdictQueue:  "queue",
	expr.VerdictStolen: "stolen",
}

// verdictName renders a verdict as nft does; "" for continue/break.
func verdictName(k expr.VerdictKind, chain string) string {
	switch k {
	case expr.VerdictJump:
		return "jump " + chain
	case expr.VerdictGoto:
		return "goto " + chain
	}
	return verdictWords[k]
}

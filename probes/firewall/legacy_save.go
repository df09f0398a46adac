package firewall

// Reading iptables-save -c output: which rules match conntrack state
// INVALID or fail an inverted rpfilter check.

import (
	"bufio"
	"slices"
	"strconv"
	"strings"

	"asym/evidence"
)

// parseLegacySave reads `iptables-save -c` output (also `iptables -S -c`
// style lines with "-c PKTS BYTES") and returns the rules matching conntrack
// state INVALID (-m conntrack --ctstate, -m state --state) or doing an
// inverted rpfilter check, plus a header line per chain.
func parseLegacySave(family, text string) ([]evidence.FirewallRule, map[string]string) {
	p := &saveParser{family: family, headers: map[string]string{}, policies: map[string]string{},
		userChains: map[string]bool{}, count: map[string]uint64{}}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		p.line(strings.TrimSpace(sc.Text()))
	}
	return p.rules, p.headers
}

// saveParser is one reading of iptables-save output.
type saveParser struct {
	family     string
	table      string            // the table being read ("*filter")
	policies   map[string]string // chain -> policy, "-" for a user chain
	userChains map[string]bool
	count      map[string]uint64 // rules so far per "table chain": a rule's position
	rules      []evidence.FirewallRule
	headers    map[string]string
}

// line reads one line: a table, a chain, a rule, or nothing of interest.
func (p *saveParser) line(line string) {
	switch {
	case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
	case strings.HasPrefix(line, "*"):
		p.table = line[1:]
		clear(p.policies)
		clear(p.userChains)
	case strings.HasPrefix(line, ":"):
		p.chain(strings.Fields(line[1:]))
	default:
		p.rule(line)
	}
}

// chain reads ":CHAIN POLICY [p:b]".
func (p *saveParser) chain(f []string) {
	if len(f) < 2 {
		return
	}
	p.policies[f[0]] = f[1]
	if f[1] == "-" {
		p.userChains[f[0]] = true
	}
}

// rule counts every rule of a chain, for positions, and keeps the ones
// that matter.
func (p *saveParser) rule(line string) {
	r, ok := parseLegacyRule(line, p.userChains)
	if !ok {
		return
	}
	key := p.table + " " + r.Chain
	p.count[key]++
	if r.Kind == "" {
		return
	}
	r.Source, r.Family, r.Table, r.Handle = evidence.SourceIptablesLegacy, p.family, p.table, p.count[key]
	r.Hook, r.Priority = legacyHook(p.table, r.Chain)
	p.rules = append(p.rules, r)
	p.headers[groupKey(r)] = legacyChainHeader(r, p.policies[r.Chain])
}

// legacyRule is one rule being read: what its options said so far.
type legacyRule struct {
	r                       evidence.FirewallRule
	userChains              map[string]bool
	invalid, rpf, rpfInvert bool
}

// legacyOptions read the options that matter; each gets the words after
// it and returns how many of them it took. neg says a "!" came before.
var legacyOptions = map[string]func(lr *legacyRule, opt string, neg bool, next []string) int{
	"--ctstate": (*legacyRule).state,
	"--state":   (*legacyRule).state,
	"-m":        (*legacyRule).module,
	"--invert":  (*legacyRule).invert,
	"-c":        (*legacyRule).counters,
	"-j":        (*legacyRule).target,
	"-g":        (*legacyRule).target,
}

// parseLegacyRule parses one "[p:b] -A CHAIN …" line. ok is false for
// lines that are not rules; Kind is "" for rules of no interest.
func parseLegacyRule(line string, userChains map[string]bool) (evidence.FirewallRule, bool) {
	lr := &legacyRule{userChains: userChains}
	lr.r.Text = line
	line, ok := lr.cutCounters(line)
	if !ok {
		return evidence.FirewallRule{}, false
	}
	args := splitArgs(line)
	if len(args) < 2 || args[0] != "-A" {
		return evidence.FirewallRule{}, false
	}
	lr.r.Chain = args[1]
	for i := 2; i < len(args); i++ {
		if read, ok := legacyOptions[args[i]]; ok {
			i += read(lr, args[i], args[i-1] == "!", args[i+1:])
		}
	}
	switch {
	case lr.invalid:
		lr.r.Kind = evidence.RuleCtInvalid
	case lr.rpf && lr.rpfInvert:
		lr.r.Kind = evidence.RuleFibRPFilter
	}
	return lr.r, true
}

// cutCounters reads the "[pkts:bytes]" iptables-save -c puts before a
// rule; false when the bracket is not closed.
func (lr *legacyRule) cutCounters(line string) (string, bool) {
	if !strings.HasPrefix(line, "[") {
		return line, true
	}
	end := strings.IndexByte(line, ']')
	if end < 0 {
		return "", false
	}
	if p, b, found := strings.Cut(line[1:end], ":"); found {
		lr.setCounters(p, b)
	}
	return strings.TrimSpace(line[end+1:]), true
}

// setCounters keeps the packet and byte counts when both are numbers.
func (lr *legacyRule) setCounters(packets, bytes string) {
	pn, err1 := strconv.ParseUint(packets, 10, 64)
	bn, err2 := strconv.ParseUint(bytes, 10, 64)
	if err1 == nil && err2 == nil {
		lr.r.HasCounter, lr.r.Packets, lr.r.Bytes = true, pn, bn
	}
}

// state reads --ctstate/--state LIST: INVALID among the states, or absent
// from them after "!", selects invalid packets.
func (lr *legacyRule) state(_ string, neg bool, next []string) int {
	if len(next) < 1 {
		return 0
	}
	if slices.Contains(strings.Split(next[0], ","), "INVALID") != neg {
		lr.invalid = true
	}
	return 1
}

// module reads -m, for -m rpfilter; other modules' options are read as
// they come.
func (lr *legacyRule) module(_ string, _ bool, next []string) int {
	if len(next) < 1 || next[0] != "rpfilter" {
		return 0
	}
	lr.rpf = true
	return 1
}

// invert reads rpfilter's --invert: the rule then matches packets that
// fail the check.
func (lr *legacyRule) invert(_ string, _ bool, _ []string) int {
	if lr.rpf {
		lr.rpfInvert = true
	}
	return 0
}

// counters reads "-c PKTS BYTES" (iptables -S -c).
func (lr *legacyRule) counters(_ string, _ bool, next []string) int {
	if len(next) < 2 {
		return 0
	}
	lr.setCounters(next[0], next[1])
	return 2
}

// target reads -j TARGET and -g CHAIN.
func (lr *legacyRule) target(opt string, _ bool, next []string) int {
	if len(next) < 1 {
		return 0
	}
	lr.r.Verdict = legacyVerdict(opt, next[0], lr.userChains)
	return 1
}

func legacyVerdict(flag, target string, userChains map[string]bool) string {
	if flag == "-g" {
		return "goto " + target
	}
	switch target {
	case "DROP":
		return "drop"
	case "REJECT":
		return "reject"
	case "ACCEPT":
		return "accept"
	case "RETURN":
		return "return"
	}
	if userChains[target] {
		return "jump " + target
	}
	return "" // an extension target such as LOG or MARK: the rule goes on
}

// legacyHook maps a built-in chain to its hook and the priority its
// table registers with (NF_IP_PRI_*); user chains have neither.
func legacyHook(table, chain string) (string, int) {
	hook := map[string]string{"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward",
		"OUTPUT": "output", "POSTROUTING": "postrouting"}[chain]
	if hook == "" {
		return "", 0
	}
	switch table {
	case "raw":
		return hook, -300
	case "mangle":
		return hook, -150
	case "security":
		return hook, 50
	case "nat":
		if hook == "prerouting" || hook == "output" {
			return hook, -100
		}
		return hook, 100
	}
	return hook, 0
}

// splitArgs splits an iptables-save rule into words: iptables-save quotes
// words holding spaces with double quotes and escapes quotes inside them.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

package ui

import (
	"slices"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// wrapCommand breaks a shell command into lines of at most width columns
// that a shell reads back as the same command: only between words, each
// line but the last ending in " \", and a flag or an iproute2 keyword
// never apart from its value (a pasted `--sport 40000 --` / `dport 80`
// is another command). A word longer than the width stays whole on its
// own line: the view cuts it, and y copies it intact.
func wrapCommand(cmd string, width int) []string {
	groups := commandGroups(shellWords(cmd))
	var lines []string
	cur := ""
	for _, g := range groups {
		switch {
		case cur == "":
			cur = g
		case ansi.StringWidth(cur)+1+ansi.StringWidth(g)+2 <= width:
			cur += " " + g
		default:
			lines = append(lines, cur+" \\")
			cur = g
		}
	}
	return append(lines, cur)
}

// shellWords splits a command line as a POSIX shell would find its words,
// keeping each word's quoting: 'a b' and a\ b are one word.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	quoted, escaped := byte(0), false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case quoted != 0:
			if c == quoted {
				quoted = 0
			}
		case c == '\\':
			escaped = true
		case c == '\'' || c == '"':
			quoted = c
		case c == ' ':
			if cur.Len() > 0 {
				words = append(words, cur.String())
				cur.Reset()
			}
			continue
		}
		cur.WriteByte(c)
	}
	if cur.Len() > 0 {
		words = append(words, cur.String())
	}
	return words
}

// valueKeywords are iproute2 and sysctl words whose value follows them.
var valueKeywords = []string{"from", "to", "lookup", "table", "priority", "pref", "dev", "via", "src", "scope", "proto", "protocol",
	"metric", "iif", "oif", "sport", "dport", "ipproto", "fwmark", "mtu", "nexthop", "weight", "exec", "-n", "-t", "-w"}

// commandGroups joins each flag or keyword with the value after it.
func commandGroups(words []string) []string {
	var out []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		takesValue := slices.Contains(valueKeywords, w) || (strings.HasPrefix(w, "-") && !strings.Contains(w, "="))
		if takesValue && i+1 < len(words) && !strings.HasPrefix(words[i+1], "-") {
			w += " " + words[i+1]
			i++
		}
		out = append(out, w)
	}
	return out
}

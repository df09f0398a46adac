package peer

import (
	"asym/evidence"
	"slices"
	"strings"
	"testing"
)

func TestSplitPrefix(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"ssh db1 sudo", []string{"ssh", "db1", "sudo"}},
		{"  ip\tnetns  exec\nserver  ", []string{"ip", "netns", "exec", "server"}},
		{"ssh -o 'ProxyJump bastion' db1 sudo", []string{"ssh", "-o", "ProxyJump bastion", "db1", "sudo"}},
		{`ssh -o "ProxyJump bastion" db1`, []string{"ssh", "-o", "ProxyJump bastion", "db1"}},
		{`ssh -o ProxyJump\ bastion db1`, []string{"ssh", "-o", "ProxyJump bastion", "db1"}},
		// Single quotes keep everything, backslashes and operators included.
		{`sudo -u 'a\b "c" | $x'`, []string{"sudo", "-u", `a\b "c" | $x`}},
		// Double quotes: only \" and \\ are escapes; $ and ` are literal.
		{`env "A=\"q\" \\ \n $HOME ` + "`x`" + `"`, []string{"env", `A="q" \ \n $HOME ` + "`x`"}},
		// Quotes join with what touches them, and '' is an empty word.
		{`a'b c'"d e"f ''`, []string{"ab cd ef", ""}},
		// A backslash escapes operators and quotes; before a line break it joins lines.
		{`echo \| \; \$ \' \" \\`, []string{"echo", "|", ";", "$", "'", `"`, `\`}},
		{"ssh db1 \\\nsudo", []string{"ssh", "db1", "sudo"}},
		// No expansion: globs and ~ are ordinary characters.
		{"ssh db[12] ~/bin/wrap *", []string{"ssh", "db[12]", "~/bin/wrap", "*"}},
		{"ssh [2001:db8::1]", []string{"ssh", "[2001:db8::1]"}},
	} {
		got, err := SplitPrefix(tc.in)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("SplitPrefix(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestSplitPrefixRefuses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // in the sentence
	}{
		{"", "the peer command is empty"},
		{" \t\n", "the peer command is empty"},
		{"ssh db1 | sudo", "runs without a shell, so | cannot be used: put the pipeline in a script on the peer, or quote it"},
		{"ssh db1 sudo; ls", "so ; cannot be used"},
		{"ssh db1 && sudo", "so && cannot be used"},
		{"ssh db1 &", "so & cannot be used"},
		{"ssh db1 > out", "so > cannot be used"},
		{"ssh db1 2>/dev/null", "so > cannot be used"},
		{"ssh < in", "so < cannot be used"},
		{"ssh $HOST", "so $ cannot be used: nothing is expanded"},
		{"ssh $(hostname)", "so $( cannot be used"},
		{"ssh `hostname`", "so ` cannot be used"},
		{"(ssh db1)", "so ( cannot be used"},
		{"ssh db1)", "so ) cannot be used"},
		{"ssh db1;sudo", "so ; cannot be used"},
		{"ssh 'db1", "single quote that is not closed"},
		{`ssh "db1`, "double quote that is not closed"},
		{`ssh "db1\"`, "double quote that is not closed"},
		{`'ssh db1 sudo`, "single quote that is not closed"},
		{`ssh db1\`, "backslash that escapes nothing"},
		{"ssh db\x001", "NUL"},
	} {
		got, err := SplitPrefix(tc.in)
		if err == nil {
			t.Errorf("SplitPrefix(%q) = %q, want an error", tc.in, got)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SplitPrefix(%q) error = %q, want it to contain %q", tc.in, err, tc.want)
		}
		if strings.HasSuffix(err.Error(), ".") || strings.ContainsAny(err.Error(), "\x00\n") {
			t.Errorf("SplitPrefix(%q) error = %q: one sentence, no period, no raw controls", tc.in, err)
		}
	}
}

// FuzzSplitPrefix: no input panics, and accepted words survive being
// quoted for a shell and split again (what asym shows a person to paste is
// what runs).
func FuzzSplitPrefix(f *testing.F) {
	for _, s := range []string{
		"ssh db1 sudo", "ssh -o 'ProxyJump bastion' db1", `a"b\"c"d\ e`, "''", `"\\"`,
		"ip netns exec x", "a|b", "'unterminated", "\\\n", "é ü\u202e", "x\xff\xfe y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		words, err := SplitPrefix(s)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("SplitPrefix(%q): empty error", s)
			}
			return
		}
		if len(words) == 0 {
			t.Fatalf("SplitPrefix(%q) accepted no words", s)
		}
		again, err := SplitPrefix(evidence.Command(words...))
		if err != nil || !slices.Equal(again, words) {
			t.Fatalf("SplitPrefix(%q) = %q; quoted %q splits to %q, %v", s, words, evidence.Command(words...), again, err)
		}
	})
}

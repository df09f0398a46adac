package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
)

func TestBadInput(t *testing.T) {
	cases := []struct {
		args []string
		says string
	}{
		{nil, "needs a terminal"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"check"}, "three words"},
		{[]string{"check", "--bogus", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "there is no flag --bogus: asym check --help lists them"},
		{[]string{"check", "--watch", "abc", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, `--watch takes a duration such as 10s or 1m30s, not "abc"`},
		{[]string{"fix", "--only"}, "--only needs a value"},
		{[]string{"check", "sctp", "192.0.2.1:1", "192.0.2.2:2"}, "unknown protocol"},
		{[]string{"check", "tcp", "192.0.2.1:99999", "192.0.2.2:2"}, "1 to 65535"},
		{[]string{"check", "icmp", "192.0.2.1:5", "192.0.2.2"}, "icmp has no ports"},
		{[]string{"check", "tcp", "192.0.2.1:1", "[2001:db8::1]:2"}, "different IP versions"},
		{[]string{"check", "tcp", "192.0.2.1:1", "192.0.2.2:2", "--netns", "asym-no-such-ns"}, `no network namespace named "asym-no-such-ns"`},
		{[]string{"check", "--pid", "2147483647", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "there is no process 2147483647"},
		{[]string{"check", "--pid", "-3", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "not a process id"},
		{[]string{"check", "--netns", "x", "--pid", "1", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "not both"},
		{[]string{"check", "--json", "--markdown", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "not both"},
		{[]string{"check", "--timeout", "0s", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "--timeout must be positive"},
		{[]string{"check", "--timeout", "soon", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "--timeout takes a duration"},
		{[]string{"check", "--json=maybe", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, `--json is a switch: give it alone, or as --json=true or --json=false, not "maybe"`},
		{[]string{"--bogus"}, "there is no flag --bogus: asym --help lists them"},
		{[]string{"lab", "frob"}, `unknown lab command "frob"`},
		{[]string{"explain", "no_such_finding"}, "there is no finding"},
		{[]string{"check", "--peer", "ssh db1 | tee x", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "--peer: the peer command runs without a shell"},
		{[]string{"check", "--peer", "ssh 'db1", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "--peer:"},
		{[]string{"check", "--peer", "ssh db1", "--peer-timeout", "0s", "tcp", "192.0.2.1:1", "192.0.2.2:2"}, "--peer-timeout must be positive"},
		{[]string{"collect", "tcp", "192.0.2.1:1"}, "three words"},
		{[]string{"check", "tcp", "192.0.2.1:1", "\x1b[31m192.0.2.2:2"}, "?[31m"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		if code != 2 {
			t.Errorf("%q: exit status %d, want 2", c.args, code)
		}
		msg := errb.String()
		if !strings.Contains(msg, c.says) {
			t.Errorf("%q: stderr %q does not say %q", c.args, msg, c.says)
		}
		if strings.ContainsRune(msg, 0x1b) || strings.Count(strings.TrimSpace(msg), "\n") > 0 && c.args != nil {
			t.Errorf("%q: the error must be one clean line: %q", c.args, msg)
		}
	}
}

func TestExplain(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"explain"}, &out, &out); code != 0 || !strings.Contains(out.String(), "rp_filter_strict_drop") {
		t.Fatalf("explain lists: %d %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{"explain", "missing_link_route"}, &out, &out); code != 0 || !strings.Contains(out.String(), "scope link") {
		t.Fatalf("explain one: %d %s", code, out.String())
	}
}

// TestHelp: --help on every command prints its usage, every flag it takes
// included, on stdout, and exits 0.
func TestHelp(t *testing.T) {
	for _, c := range []struct {
		args []string
		says []string
	}{
		{[]string{"--help"}, []string{"asym check", "--peer-timeout", "--timeout"}},
		{[]string{"help"}, []string{"asym fix"}},
		{[]string{"check", "--help"}, []string{"Usage: asym check", "--watch duration", "--timeout duration", "--peer-timeout duration", "--iif IFACE", "Exit status: 0"}},
		{[]string{"collect", "-h"}, []string{"Usage: asym collect", "--watch", "--peer"}},
		{[]string{"fix", "--help"}, []string{"Usage: asym fix", "--apply", "--revert-after", "--persist", "--root"}},
		{[]string{"lab", "--help"}, []string{"Usage: asym lab list | run [NAME]"}},
		{[]string{"lab", "run", "--help"}, []string{"Usage: asym lab"}},
		{[]string{"explain", "--help"}, []string{"Usage: asym explain [ID]"}},
		{[]string{"help", "check"}, []string{"Usage: asym check", "--peer-timeout duration"}},
		{[]string{"fix", "--help"}, []string{"--root DIR", "--gateway IFACE=ADDR"}},
		{[]string{"--netns", "x", "--help"}, []string{"Usage: asym [--netns NAME", "--notes FILE", "--revert-after"}},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != 0 || errb.Len() > 0 {
			t.Errorf("%q: exit status %d, stderr %q", c.args, code, errb.String())
		}
		for _, s := range c.says {
			if !strings.Contains(out.String(), s) {
				t.Errorf("%q: the help does not say %q:\n%s", c.args, s, out.String())
			}
		}
		if strings.Contains(out.String(), "watchdog") {
			t.Errorf("%q: internal flags stay out of the help", c.args)
		}
	}
}

// TestUsageListsEveryFlag: the synopsis of asym --help names every flag
// each command's own --help lists, so that nobody needs to guess one.
func TestUsageListsEveryFlag(t *testing.T) {
	synopsis := map[string]string{} // command -> its usage lines, joined
	cmd := ""
	for _, line := range strings.Split(usage[strings.Index(usage, "Usage:\n"):], "\n")[1:] {
		if line == "" {
			break
		}
		if rest, ok := strings.CutPrefix(line, "  asym "); ok {
			cmd = "asym"
			if w := strings.Fields(rest)[0]; !strings.HasPrefix(w, "[") {
				cmd = w
			}
		}
		synopsis[cmd] += line + "\n"
	}
	for _, c := range []string{"asym", "check", "collect", "fix"} {
		args := []string{c, "--help"}
		if c == "asym" {
			args = []string{"--netns", "x", "--help"}
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("%q: exit status %d, %s", args, code, errb.String())
		}
		_, flags, ok := strings.Cut(out.String(), "\nFlags:\n")
		if !ok {
			t.Fatalf("%q lists no flags:\n%s", args, out.String())
		}
		for _, line := range strings.Split(flags, "\n") {
			name, ok := strings.CutPrefix(line, "  --")
			if !ok {
				continue
			}
			name, _, _ = strings.Cut(name, " ")
			if !regexp.MustCompile(`--` + regexp.QuoteMeta(name) + `[^a-z-]`).MatchString(synopsis[c]) {
				t.Errorf("asym --help does not show --%s in the synopsis of %s:\n%s", name, c, synopsis[c])
			}
		}
	}
}

// Command asym diagnoses asymmetric routing for one failing flow.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"asym/playbook"
)

const usage = `asym finds out why one flow fails when its packets take a different way back.

Usage:
  asym [--netns NAME|--pid PID] [--iif IFACE] [--timeout 3s] [--notes FILE] [--revert-after 60s]
       [--peer 'COMMAND' [--peer-asym PATH] [--peer-timeout 30s]] [PROTO SRC DST]
  asym check [--netns NAME|--pid PID] [--iif IFACE] [--timeout 3s] [--watch 10s] [--json|--markdown]
             [--peer 'COMMAND' [--peer-asym PATH] [--peer-timeout 30s]] PROTO SRC DST
  asym collect [--netns NAME|--pid PID] [--iif IFACE] [--timeout 3s] [--watch 10s] [--json]
               [--peer 'COMMAND' [--peer-asym PATH] [--peer-timeout 30s]] PROTO SRC DST
  asym trace [--netns NAME|--pid PID] [--iif IFACE] [--timeout 3s] [--max-hops 30] [--wait 1s]
             [--no-send] [--json] [--peer 'COMMAND' [--peer-asym PATH] [--peer-timeout 30s]] PROTO SRC DST
  asym fix [--netns NAME|--pid PID] [--iif IFACE] [--timeout 3s] [--watch 10s] [--only ID]
           [--gateway IFACE=ADDR]... [--apply [--revert-after 60s] [--no-wait]] PROTO SRC DST
  asym fix [--netns NAME|--pid PID] --confirm | --rollback | --undo | --status
  asym fix [--netns NAME|--pid PID] [--only ID] --persist [--root DIR] PROTO SRC DST
  asym lab list | run [NAME] | up NAME | down
  asym explain [ID]
  asym version
  asym COMMAND --help     (every command's flags)

A flow is PROTO SRC DST: tcp, udp or icmp, and two endpoints ip[:port] or
[ipv6]:port, the way the client sent it, e.g.
  asym check tcp 203.0.113.10:40000 198.51.100.11:8080

asym lab builds broken networks in namespaces (named asym-lab-*) to try asym
on: run opens the interactive view on one and removes it on exit.

Without a subcommand asym opens the interactive view (it asks for the flow
when none is given).

--peer also diagnoses the other end of the flow: asym runs COMMAND asym
collect there (e.g. --peer 'ssh db1 sudo', --peer 'ip netns exec server';
no shell is involved) and joins both ends' evidence. The peer needs the same
asym binary; --peer-asym PATH names it when it is not on the PATH there.
collect prints this host's evidence as JSON, for another asym to read.

trace sends the flow's own packets with growing TTLs (TCP SYNs from its own
port, so every ECMP hash sends them the flow's way) and shows who answers;
with --peer the far end traces the reply with SYN-ACKs at the same time, and
asym names where the two paths part and the device that drops the reply.

fix shows the plan (a dry run) unless --apply; an applied fix reverts by
itself unless confirmed in time, even when the session dies.

Exit status of check: 0 no finding and the flow proven to work (clean),
1 findings (on either end), 2 error, 3 no finding but not proven (nothing
showed the flow working: watch it with --watch, or ask the other end),
4 a fix asym applied to the target will not revert by itself (asym fix
--status says why; asym fix --rollback undoes it).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// errUsage marks errors in what the person typed (exit status 2, with a hint).
type errUsage struct{ msg string }

func (e errUsage) Error() string { return e.msg }

func run(args []string, stdout, stderr io.Writer) int {
	var err error
	code := 0
	switch {
	case len(args) == 0 || looksLikeTUI(args[0]):
		err = cmdTUI(args)
	default:
		code, err = subcommand(args, stdout)
	}
	var help helpError
	if errors.As(err, &help) {
		printHelp(stdout, help.fs)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "asym: %s\n", err)
		return 2
	}
	return code
}

func subcommand(args []string, stdout io.Writer) (code int, err error) {
	switch args[0] {
	case "check":
		code, err = cmdCheck(args[1:], stdout, os.Stderr)
	case "collect":
		code, err = cmdCollect(args[1:], stdout, os.Stderr)
	case "trace":
		code, err = cmdTrace(args[1:], stdout, os.Stderr)
	case "fix":
		code, err = cmdFix(args[1:], stdout)
	case "lab":
		code, err = cmdLab(args[1:], stdout)
	case "explain":
		err = cmdExplain(args[1:], stdout)
	case "version", "--version", "-version":
		printVersion(stdout)
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] != "help" && !strings.HasPrefix(args[1], "-") {
			return subcommand([]string{args[1], "--help"}, stdout) // asym help check
		}
		fmt.Fprint(stdout, usage)
	default:
		err = errUsage{fmt.Sprintf("unknown command %q: use check, collect, trace, fix, lab, explain or version, or give a flow (asym help shows how)", clip(args[0]))}
	}
	return code, err
}

// parseInterleaved lets flags come before, between or after the flow's
// words, as people type them.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var rest []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return rest, nil
		}
		if args[0] == "--" {
			return append(rest, args[1:]...), nil
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported once, as a sentence, by run
	return fs
}

func cmdCheck(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("check")
	var fc flowCommand
	fc.register(fs)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	asMD := fs.Bool("markdown", false, "print the report as Markdown notes")
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return 2, flagError(fs, err)
	}
	if *asJSON && *asMD {
		return 2, errUsage{"give either --json or --markdown, not both"}
	}
	if err := fc.open(words); err != nil {
		return 2, err
	}
	defer fc.sess.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep := fc.sess.Check(ctx, fc.flow, fc.options(stderr)).Report
	if ctx.Err() != nil {
		return 2, errors.New("interrupted before the check finished")
	}
	// A fix pending on the target heads the text (it is what a person must
	// act on first); it follows the Markdown, and goes to stderr beside JSON.
	stuck := false
	switch {
	case *asJSON:
		err = rep.WriteJSON(stdout)
		stuck = reportPendingFix(fc.sess, stdout, stderr, *asJSON, *asMD)
	case *asMD:
		err = rep.WriteMarkdown(stdout)
		stuck = reportPendingFix(fc.sess, stdout, stderr, *asJSON, *asMD)
	default:
		stuck = reportPendingFix(fc.sess, stdout, stderr, *asJSON, *asMD)
		err = rep.WriteText(stdout)
	}
	if err != nil {
		return 2, fmt.Errorf("write the report: %w", err)
	}
	if stuck {
		return exitFixStuck, nil
	}
	return checkStatus(rep), nil
}

// Exit statuses of check. 1 stays "findings" and 2 "error" as before, so
// scripts that test -eq 1 for "something is wrong" keep working; a check
// with no finding that could not prove the flow works is 3, never 0: a
// script must not read it as healthy.
const (
	exitClean     = 0
	exitFindings  = 1
	exitError     = 2
	exitNotProven = 3
)

func checkStatus(rep playbook.Report) int {
	switch {
	case len(rep.Findings) > 0 || (rep.Peer != nil && len(rep.Peer.Findings) > 0):
		return exitFindings
	case rep.Verdict.Verdict == playbook.VerdictClean:
		return exitClean
	}
	return exitNotProven
}

func cmdExplain(args []string, stdout io.Writer) error {
	if isHelp(args) {
		return helpError{newFlagSet("explain")}
	}
	if len(args) == 0 {
		fmt.Fprintln(stdout, "Findings asym can report (asym explain ID for the whole story):")
		for _, e := range playbook.Catalog {
			fmt.Fprintf(stdout, "  %-24s %-8s %s\n", e.ID, e.Severity, e.Title)
		}
		return nil
	}
	if len(args) > 1 {
		return errUsage{"explain takes one finding id"}
	}
	e, ok := playbook.Lookup(playbook.FindingID(args[0]))
	if !ok {
		return errUsage{fmt.Sprintf("there is no finding %q: asym explain lists them", clip(args[0]))}
	}
	fmt.Fprintf(stdout, "%s (%s, %s step)\n%s\n\n%s\n", e.ID, e.Severity, e.Step, e.Title, e.Explain)
	return nil
}

func clip(s string) string { return playbook.Clean(truncate(s, 64)) }

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// synopses say what each subcommand takes, for its --help.
var synopses = map[string]string{
	"asym": `asym [--netns NAME|--pid PID] [--iif IFACE] [--notes FILE] [--peer 'COMMAND'] [PROTO SRC DST]

Opens the interactive view on the flow (it asks for one when none is given).`,
	"check": `asym check [flags] PROTO SRC DST

Runs the First, Second and Third steps on the flow and prints the report:
the verdict, the kernel's answers, the findings with their evidence and fix.
Exit status: 0 no finding and the flow proven to work, 1 findings, 2 error,
3 no finding but not proven.`,
	"collect": `asym collect [flags] PROTO SRC DST

Prints this host's evidence for the flow as versioned JSON, for another asym
to read (asym check --peer runs it on the far end).`,
	"trace": `asym trace [flags] PROTO SRC DST

Sends the flow's own packets with growing TTLs from this end (the request's
SYN from the client, the reply's SYN-ACK from the server), keeping its whole
tuple so that every ECMP hash on the way sends them where it sends the flow,
and shows who answers hop by hop. With --peer the other end traces the other
direction (it runs COMMAND asym trace there, no shell) and listens while this
end's probes arrive; both paths are shown side by side, with where they part
and the first stateful device without state for the flow. Per TTL 3 probes,
20 a second at most; never with the tuple of a connection established here
(a fresh client port instead, and it says so). Needs CAP_NET_RAW.
Exit status: 0 traced and nothing found, 1 findings, 2 error, 3 not traced.`,
	"fix": `asym fix [flags] PROTO SRC DST               the plan: a dry run
asym fix --apply [--revert-after 60s] PROTO SRC DST
asym fix --confirm | --rollback | --undo | --status
asym fix --persist [--root DIR] PROTO SRC DST

Applies the fixes of the findings through netlink and sysctl writes, with a
revert armed first that undoes them unless they are kept in time. --undo
undoes a kept fix later, each change only while it is as asym left it.`,
	"lab": `asym lab list | run [NAME] | up NAME | down

Builds broken networks in namespaces named asym-lab-* to try asym on: run
opens the view on one and removes it on exit; up keeps one going for
scripts; down removes it. One lab at a time; ASYM_LAB_PREFIX=asym-NAME-
(1 to 12 lowercase letters or digits) builds one of its own beside it.`,
	"explain": `asym explain [ID]

Lists the findings asym knows, or tells one's whole story.`,
}

// helpError is --help on a subcommand: its usage is printed, status 0.
type helpError struct{ fs *flag.FlagSet }

func (helpError) Error() string { return "help requested" }

// isHelp says whether args ask for help (-h, --help, help).
func isHelp(args []string) bool {
	return len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help")
}

// printHelp writes a subcommand's synopsis and every flag it takes.
func printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n", synopses[fs.Name()])
	var lines []string
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Usage, "internal:") {
			return
		}
		name, usage := flag.UnquoteUsage(f)
		left := "--" + f.Name
		if name != "" {
			left += " " + name
		}
		if def := f.DefValue; def != "" && def != "false" && def != "0" && def != "0s" {
			usage += " (default " + def + ")"
		}
		lines = append(lines, fmt.Sprintf("  %-24s %s", left, usage))
	})
	if len(lines) > 0 {
		sort.Strings(lines)
		fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(lines, "\n"))
	}
	if fs.Name() == "lab" || fs.Name() == "explain" {
		return
	}
	fmt.Fprintln(w, "\nA flow is PROTO SRC DST as the client sent it: tcp, udp or icmp, and two\nendpoints ip[:port] or [ipv6]:port, e.g. tcp 203.0.113.10:40000 198.51.100.11:8080")
}

// flagError turns the flag package's errors into sentences in asym's voice.
func flagError(fs *flag.FlagSet, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return helpError{fs}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimPrefix(name, "-")
		return errUsage{fmt.Sprintf("there is no flag --%s: %s --help lists them", clip(name), commandName(fs))}
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		return errUsage{fmt.Sprintf("--%s needs a value: %s --help says which", strings.TrimPrefix(clip(name), "-"), commandName(fs))}
	}
	// invalid boolean value "maybe" for -json: parse error
	var value, name string
	if _, scanErr := fmt.Sscanf(msg, "invalid boolean value %q for -%s", &value, &name); scanErr == nil {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "-"), ":")
		return errUsage{fmt.Sprintf("--%s is a switch: give it alone, or as --%s=true or --%s=false, not %q", name, name, name, clip(value))}
	}
	// invalid value "abc" for flag -watch: parse error
	if _, scanErr := fmt.Sscanf(msg, "invalid value %q for flag -%s", &value, &name); scanErr == nil {
		name = strings.TrimSuffix(strings.TrimPrefix(name, "-"), ":")
		if f := fs.Lookup(name); f != nil {
			if _, isDuration := f.Value.(flag.Getter).Get().(time.Duration); isDuration {
				return errUsage{fmt.Sprintf("--%s takes a duration such as 10s or 1m30s, not %q", name, clip(value))}
			}
		}
		return errUsage{fmt.Sprintf("--%s does not take %q: %s --help says what it takes", name, clip(value), commandName(fs))}
	}
	return errUsage{msg}
}

func commandName(fs *flag.FlagSet) string {
	if fs.Name() == "asym" {
		return "asym"
	}
	return "asym " + fs.Name()
}

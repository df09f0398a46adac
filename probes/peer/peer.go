// Package peer runs asym on the other host of a flow and reads its evidence:
// `asym check --peer 'ssh db1 sudo' FLOW` runs
// `ssh db1 sudo asym collect --json --timeout 3s -- FLOW` without a shell,
// and decodes the versioned JSON that `asym collect` prints.
package peer

import (
	"path/filepath"
	"strings"
	"time"

	"asym/flow"
	"asym/probes"
)

// Format is the version of the collect wire format; a peer with another
// Format is incompatible. Raise it whenever a change to Collection or
// probes.Evidence would make an older asym misread a newer one's output.
const Format = 1

// Collection is what `asym collect --json` prints: one host's evidence for
// the flow.
type Collection struct {
	Format   int             `json:"asym_collect"` // first, so that a person reading the output knows what it is
	Version  string          `json:"version"`      // the collecting asym's version string
	Time     time.Time       `json:"time"`
	Evidence probes.Evidence `json:"evidence"`
}

// DefaultTimeout bounds a whole peer run when Options.Timeout is zero: ssh,
// sudo and all the peer's probes. A live window (Watch) is added to it.
const DefaultTimeout = 30 * time.Second

// Options say how to reach the peer and what to ask it.
type Options struct {
	Prefix       []string      // words before the asym executable, from SplitPrefix
	Exe          string        // the asym executable on the peer; "asym" when empty
	Flow         flow.Flow     // the flow, as the client sent it
	Watch        time.Duration // 0: no live window; else passed as --watch
	ProbeTimeout time.Duration // passed as --timeout (probes.DefaultTimeout when 0)
	Timeout      time.Duration // bound of the whole run; DefaultTimeout + Watch when 0
	LocalVersion string        // this asym's version, for messages ("this is asym X")
}

// Args returns the full argv that Collect runs: the prefix, the executable
// and the collect arguments.
//
// ssh joins its arguments with spaces into one command line for the remote
// shell, so when any word of the prefix is ssh, every word asym appends is
// quoted for that shell: an IPv6 endpoint such as [2001:db8::1]:80 is a glob
// pattern there. The prefix's own words are the person's, passed as typed
// (as their own shell would pass them to ssh).
func Args(o Options) []string {
	exe := o.Exe
	if exe == "" {
		exe = "asym"
	}
	pt := o.ProbeTimeout
	if pt <= 0 {
		pt = probes.DefaultTimeout
	}
	words := []string{exe, "collect", "--json", "--timeout", pt.String()}
	if o.Watch > 0 {
		words = append(words, "--watch", o.Watch.String())
	}
	// "--" ends the flags, so nothing in the flow can be read as one.
	words = append(words, "--")
	words = append(words, strings.Fields(o.Flow.String())...)
	return command(o.Prefix, words)
}

// command appends words to the prefix, quoted when ssh will hand them to a
// remote shell.
func command(prefix, words []string) []string {
	argv := append([]string(nil), prefix...)
	quote := false
	for _, w := range prefix {
		if filepath.Base(w) == "ssh" {
			quote = true
		}
	}
	for _, w := range words {
		if quote {
			w = probes.Quote(w)
		}
		argv = append(argv, w)
	}
	return argv
}

// Command renders words to run on the peer as one line a person can paste
// here: the --peer prefix, then the words, quoted for the remote shell when
// ssh carries them and again for the local one.
func Command(prefix []string, words ...string) string {
	return probes.Command(command(prefix, words)...)
}

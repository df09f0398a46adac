// Package peer runs asym on the other host of a flow and reads its evidence:
// `asym check --peer 'ssh db1 sudo' FLOW` runs
// `ssh db1 sudo asym collect --json --timeout 3s -- FLOW` without a shell,
// and decodes the versioned JSON that `asym collect` prints.
package peer

import (
	"strings"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
)

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
	return evidence.RemoteArgv(o.Prefix, words)
}

package main

import (
	"flag"
	"fmt"
	"io"
	"time"

	"asym/flow"
	"asym/probes"
	"asym/probes/peer"
	"asym/session"
)

// targetFlags say which namespace to diagnose and how long a probe may take.
type targetFlags struct {
	netns   string
	pid     int
	iif     string
	timeout time.Duration
}

func (t *targetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.netns, "netns", "", "inspect the network namespace `NAME` (ip netns) or PATH")
	fs.IntVar(&t.pid, "pid", 0, "inspect the network namespace of process `PID` (a container)")
	fs.StringVar(&t.iif, "iif", "", "the interface `IFACE` the request arrives on, when asym cannot tell")
	fs.DurationVar(&t.timeout, "timeout", probes.DefaultTimeout, "time limit for each probe")
}

// config checks the flags and turns them into a session's configuration.
func (t *targetFlags) config() (session.Config, error) {
	if t.timeout <= 0 {
		return session.Config{}, errUsage{"--timeout must be positive, e.g. 3s"}
	}
	return session.Config{Netns: t.netns, Pid: t.pid, Iif: t.iif, ProbeTimeout: t.timeout}, nil
}

// peerFlags are the flags that reach the other end of the flow.
type peerFlags struct {
	prefix  string
	exe     string
	timeout time.Duration
}

func (p *peerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.prefix, "peer", "", "also diagnose the other end: the `COMMAND` that runs asym there, e.g. 'ssh db1 sudo' or 'ip netns exec server'")
	fs.StringVar(&p.exe, "peer-asym", "asym", "the asym executable `PATH` on the peer (or a name on its PATH)")
	fs.DurationVar(&p.timeout, "peer-timeout", 30*time.Second, "time limit for the peer, on top of --watch")
}

// options checks the flags and builds the peer's options; nil without
// --peer. The flow and the live window are the session's to add per run.
func (p *peerFlags) options() (*peer.Options, error) {
	if p.prefix == "" {
		return nil, nil
	}
	words, err := peer.SplitPrefix(p.prefix)
	if err != nil {
		return nil, errUsage{"--peer: " + err.Error()}
	}
	if p.timeout <= 0 {
		return nil, errUsage{"--peer-timeout must be positive, e.g. 30s"}
	}
	if p.exe == "" {
		return nil, errUsage{"--peer-asym must name the asym executable on the peer"}
	}
	return &peer.Options{Prefix: words, Exe: p.exe, Timeout: p.timeout, LocalVersion: version}, nil
}

// flowCommand is what check and collect share: the flow, the target, the
// live window and the far end, read from the command line and checked.
type flowCommand struct {
	tf    targetFlags
	pf    peerFlags
	watch time.Duration
	flow  flow.Flow
	sess  *session.Session
}

func (fc *flowCommand) register(fs *flag.FlagSet) {
	fc.tf.register(fs)
	fc.pf.register(fs)
	fs.DurationVar(&fc.watch, "watch", 0, "after the steps, observe the flow's packets, conntrack events and counters for this long")
}

// open reads the flow's words, checks the flags and opens the session; the
// caller closes fc.sess. Mistakes in what was typed are errUsage.
func (fc *flowCommand) open(words []string) error {
	f, err := flow.Parse(words)
	if err != nil {
		return errUsage{err.Error()}
	}
	fc.flow = f
	cfg, err := fc.tf.config()
	if err != nil {
		return err
	}
	if fc.watch < 0 || fc.watch > time.Hour {
		return errUsage{"--watch takes a duration up to 1h, e.g. 10s"}
	}
	if cfg.Peer, err = fc.pf.options(); err != nil {
		return err
	}
	fc.sess, err = session.Open(cfg)
	return err
}

// options are the session's options for this command line: the live
// window (announced on stderr) and the far end.
func (fc *flowCommand) options(stderr io.Writer) session.Options {
	return session.Options{Watch: fc.watch, Peer: fc.pf.prefix != "", Notify: func(s string) { fmt.Fprintf(stderr, "asym: %s\n", s) }}
}

// Package session is one diagnosis of one target, written once for both
// front ends: it opens the namespace, runs the playbook's steps, watches
// the flow live and asks the far end (--peer), judges the evidence, and
// applies a fix with its revert armed before checking again. cmd/asym's
// subcommands and the view (through ui.Session) drive it; neither walks the
// steps or applies fixes its own way.
package session

import (
	"fmt"
	"os"
	"syscall"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes"
	"asym/probes/peer"
)

// Config is what a person chose on the command line.
type Config struct {
	Netns string // a named namespace (ip netns) or a path
	Pid   int    // a process's namespace (a container)
	Iif   string // where the request arrives, when asym cannot tell
	// ProbeTimeout bounds each probe (probes.DefaultTimeout when zero).
	ProbeTimeout time.Duration
	// Peer reaches the far end (--peer); nil for one end only. Flow, Watch
	// and Timeout are set per run.
	Peer *peer.Options
	// RevertAfter is how long an applied fix waits to be kept (60 s when zero).
	RevertAfter time.Duration
	// PersistRoot is where the network manager's files are read (and, with
	// --persist, written). Empty: the host's ("/") for the host's own
	// namespace; for another namespace, no manager's files at all (see
	// Session.Persistence).
	PersistRoot string
}

// Session is an open target and what the person asked of it.
type Session struct {
	cfg  Config
	t    *probes.Target
	info evidence.TargetInfo
}

// Open opens the target and checks what can be checked before any probe
// runs (the interface given with --iif exists there). The caller closes it.
func Open(cfg Config) (*Session, error) {
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = probes.DefaultTimeout
	}
	if cfg.RevertAfter <= 0 {
		cfg.RevertAfter = 60 * time.Second
	}
	t, err := probes.OpenTarget(cfg.Netns, cfg.Pid)
	if err != nil {
		return nil, err
	}
	if cfg.Iif != "" {
		if _, err := t.Netlink().LinkByName(cfg.Iif); err != nil {
			t.Close()
			return nil, fmt.Errorf("there is no interface %q in %s: `ip link` lists them", evidence.Clean(clip(cfg.Iif)), t)
		}
	}
	s := &Session{cfg: cfg, t: t}
	s.info.Hostname, _ = os.Hostname()
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		s.info.Kernel = utsString(u.Release[:])
	}
	s.info.Target, s.info.Prefix = t.String(), t.Prefix()
	return s, nil
}

// Close releases the target.
func (s *Session) Close() { s.t.Close() }

// Target is the open namespace, for what only the command line prints.
func (s *Session) Target() *probes.Target { return s.t }

// Info says where the diagnosis runs.
func (s *Session) Info() evidence.TargetInfo { return s.info }

// Prober makes the prober of one flow: the probes run in the target, each
// bounded by the probe timeout.
func (s *Session) Prober(f flow.Flow) evidence.Prober { return s.collector(f) }

func (s *Session) collector(f flow.Flow) *probes.Collector {
	c := probes.NewCollector(s.t, f, s.cfg.Iif)
	c.Timeout = s.cfg.ProbeTimeout
	return c
}

func utsString(b []int8) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		out = append(out, byte(c))
	}
	return string(out)
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

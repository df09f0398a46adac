package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/sys/unix"

	"asym/evidence"
	"asym/fix"
	"asym/fix/apply"
	"asym/flow"
	"asym/probes"
	"asym/probes/capture"
	"asym/probes/peer"
	"asym/ui"
)

// cmdTUI opens the terminal UI: asym [--netns NAME|--pid PID] [--iif IFACE] [--notes FILE] [--peer COMMAND] [FLOW].
func cmdTUI(args []string) error { return runTUI(args, nil) }

// tuiExtras is what `asym lab run` adds: the scenario, its traffic, and
// signals that must close the view (so the lab is torn down).
type tuiExtras struct {
	labName, labStory string
	traffic           <-chan error
	quit              <-chan os.Signal
}

func runTUI(args []string, extras *tuiExtras) error {
	fs := newFlagSet("asym")
	var tf targetFlags
	tf.register(fs)
	notes := fs.String("notes", "", "append incident notes to `FILE` (default ./asym-HOST-TIME.md)")
	revertAfter := fs.Duration("revert-after", 60*time.Second, "an applied fix reverts unless kept within this time")
	var pf peerFlags
	pf.register(fs)
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(err)
	}
	var fl *flow.Flow
	if len(words) > 0 {
		f, err := flow.Parse(words)
		if err != nil {
			return errUsage{err.Error()}
		}
		fl = &f
	}
	if tf.timeout <= 0 {
		return errUsage{"--timeout must be positive, e.g. 3s"}
	}
	if *revertAfter < 5*time.Second || *revertAfter > 24*time.Hour {
		return errUsage{"--revert-after must be between 5s and 24h"}
	}
	// The peer's options are made per flow (the form may ask for it); a
	// mistake in --peer is reported now, before the view opens.
	po, withPeer, err := pf.options(flow.Flow{}, 0, tf.timeout)
	if err != nil {
		return err
	}
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errUsage{"the interactive view needs a terminal; for scripts use: asym check [--json] FLOW"}
	}
	t, err := probes.OpenTarget(tf.netns, tf.pid)
	if err != nil {
		return err
	}
	defer t.Close()
	if tf.iif != "" {
		if _, err := t.Netlink().LinkByName(tf.iif); err != nil {
			return fmt.Errorf("there is no interface %q in %s: `ip link` lists them", clip(tf.iif), t)
		}
	}
	host, _ := os.Hostname()
	var u unix.Utsname
	unix.Uname(&u)
	opt := ui.Options{
		NewProber: func(f flow.Flow) ui.Prober {
			c := probes.NewCollector(t, f, tf.iif)
			c.Timeout = tf.timeout
			return c
		},
		Flow:     fl,
		Target:   t.String(),
		Prefix:   t.Prefix(),
		Hostname: host,
		Kernel:   unix.ByteSliceToString(u.Release[:]),
		Watch: func(ctx context.Context, f flow.Flow) <-chan evidence.WatchUpdate {
			return probes.Watch(ctx, t, f, probes.WatchOptions{})
		},
		Capture: func(ctx context.Context, f flow.Flow) <-chan evidence.CaptureUpdate {
			return capture.Capture(ctx, t, f, capture.Options{})
		},
		ApplyFix: applyFromUI(t, tf, *revertAfter),
		DecideFix: func(ctx context.Context, keep bool) error {
			id := apply.IDFor(t.Kind, t.Value)
			if keep {
				_, err := apply.Confirm(id)
				return err
			}
			_, err := apply.Rollback(ctx, id)
			return err
		},
		Persist: []ui.PersistView{{Title: "the network manager that configures the interface", Lines: func(fx *fix.Fix) []string {
			r, _, err := renderPersist("/", fx.Steps)
			if err != nil {
				return []string{"asym cannot render it for this host: " + err.Error()}
			}
			return strings.Split(strings.TrimRight(r.Text(), "\n"), "\n")
		}}},
		NotesPath:   *notes,
		HistoryPath: ui.HistoryPath(),
	}
	if withPeer {
		opt.PeerCommand = evidence.Command(po.Prefix...)
		opt.Peer = func(ctx context.Context, f flow.Flow, watch time.Duration) evidence.PeerResult {
			o := po
			o.Flow, o.Watch, o.Timeout = f, watch, po.Timeout+watch
			return peer.Collect(ctx, o)
		}
	}
	if extras != nil {
		opt.Lab = &ui.LabInfo{Name: extras.labName, Story: extras.labStory, Traffic: extras.traffic}
	}
	m := ui.New(opt)
	// Bubble Tea restores the terminal on exit, on ctrl+c and after a panic
	// in the model (it catches panics unless told not to).
	p := tea.NewProgram(m)
	if extras != nil && extras.quit != nil {
		go func() {
			if _, ok := <-extras.quit; ok {
				p.Quit()
			}
		}()
	}
	if _, err := p.Run(); err != nil {
		return fmt.Errorf("the terminal view stopped: %v", err)
	}
	return nil
}

// applyFromUI re-probes the flow, refuses when the fix is no longer what the
// person saw (the host changed since), applies it with the revert armed,
// and checks again for the before/after.
func applyFromUI(t *probes.Target, tf targetFlags, revertAfter time.Duration) func(context.Context, flow.Flow, string, []string) (*ui.FixOutcome, error) {
	return func(ctx context.Context, f flow.Flow, id string, shown []string) (*ui.FixOutcome, error) {
		before := check(ctx, newCollector(t, f, tf), t.Prefix())
		var fx *fix.Fix
		for _, fd := range before.Findings {
			if fd.ID == id {
				fx = fd.Fix
			}
		}
		if fx == nil {
			return nil, fmt.Errorf("%s is no longer found: the host changed since it was probed; re-run the steps (a)", id)
		}
		if !slices.Equal(fx.CommandsIn(nil), shown) {
			return nil, fmt.Errorf("the fix is different now (the host changed since it was probed): re-run the steps and read it again")
		}
		j, err := apply.Apply(ctx, apply.Plan{Target: t, Flow: f.String(), Summary: fx.Summary, Steps: fx.Steps, RevertAfter: revertAfter})
		if err != nil {
			return nil, err
		}
		after := check(ctx, newCollector(t, f, tf), t.Prefix())
		return &ui.FixOutcome{Changes: len(j.Steps), Deadline: j.Deadline, Watchdog: j.Watchdog, Before: before.Findings, After: after.Findings}, nil
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// looksLikeTUI tells `asym [flags] [FLOW]` from a subcommand.
func looksLikeTUI(arg string) bool {
	if strings.HasPrefix(arg, "-") && arg != "-h" && arg != "--help" && arg != "--version" && arg != "-version" {
		return true
	}
	switch strings.ToLower(arg) {
	case "tcp", "udp", "icmp", "icmpv6", "icmp6", "ping":
		return true
	}
	return false
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/sys/unix"

	"asym/probes"
	"asym/probes/flow"
	"asym/ui"
)

// cmdTUI opens the terminal UI: asym [--netns NAME|--pid PID] [--iif IFACE] [--notes FILE] [FLOW].
func cmdTUI(args []string) error {
	fs := newFlagSet("asym")
	var tf targetFlags
	tf.register(fs)
	notes := fs.String("notes", "", "append incident notes to `FILE` (default ./asym-HOST-TIME.md)")
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
		Watch: func(ctx context.Context, f flow.Flow) <-chan probes.WatchUpdate {
			return probes.Watch(ctx, t, f, probes.WatchOptions{})
		},
		NotesPath:   *notes,
		HistoryPath: ui.HistoryPath(),
	}
	m := ui.New(opt)
	// Bubble Tea restores the terminal on exit, on ctrl+c and after a panic
	// in the model (it catches panics unless told not to).
	if _, err := tea.NewProgram(m).Run(); err != nil {
		return fmt.Errorf("the terminal view stopped: %v", err)
	}
	return nil
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

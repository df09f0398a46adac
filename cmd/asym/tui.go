package main

import (
	"fmt"
	"os"
	"os/user"
	"strings"
	"time"

	tea "charm.land/bubbletea/v2"
	"golang.org/x/sys/unix"

	"asym/flow"
	"asym/session"
	"asym/ui"
)

// The view's session is the diagnosis session: nothing else stands between
// the terminal and the kernel.
var _ ui.Session = (*session.Session)(nil)

// viewConfig is what opens the interactive view: a session's configuration,
// the flow when given, the notes file, and what `asym lab run` adds.
type viewConfig struct {
	cfg   session.Config
	flow  *flow.Flow
	notes string
	lab   *ui.LabInfo
	quit  <-chan os.Signal // signals that must close the view (so a lab is torn down)
}

// cmdTUI opens the terminal UI: asym [--netns NAME|--pid PID] [--iif IFACE] [--notes FILE] [--peer COMMAND] [FLOW].
func cmdTUI(args []string) error {
	fs := newFlagSet("asym")
	var tf targetFlags
	tf.register(fs)
	notes := fs.String("notes", "", "append incident notes to `FILE` (default ./asym-HOST-TIME.md)")
	revertAfter := fs.Duration("revert-after", 60*time.Second, "an applied fix reverts unless kept within this time")
	var pf peerFlags
	pf.register(fs)
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return flagError(fs, err)
	}
	if err := checkNotes(*notes); err != nil {
		return err
	}
	vc := viewConfig{notes: *notes}
	if len(words) > 0 {
		f, err := flow.Parse(words)
		if err != nil {
			return errUsage{err.Error()}
		}
		vc.flow = &f
	}
	if vc.cfg, err = tf.config(); err != nil {
		return err
	}
	if *revertAfter < 5*time.Second || *revertAfter > 24*time.Hour {
		return errUsage{"--revert-after must be between 5s and 24h"}
	}
	vc.cfg.RevertAfter = *revertAfter
	// A mistake in --peer is reported now, before the view opens.
	if vc.cfg.Peer, err = pf.options(); err != nil {
		return err
	}
	return openView(vc)
}

// openView runs the view on a session until the person quits.
func openView(vc viewConfig) error {
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errUsage{"the interactive view needs a terminal; for scripts use: asym check [--json] FLOW"}
	}
	sess, err := session.Open(vc.cfg)
	if err != nil {
		return err
	}
	defer sess.Close()
	m := ui.New(ui.Options{Session: sess, Flow: vc.flow, Lab: vc.lab, NotesPath: vc.notes, HistoryPath: ui.HistoryPath(), Operator: operator()})
	// Bubble Tea restores the terminal on exit, on ctrl+c and after a panic
	// in the model (it catches panics unless told not to).
	p := tea.NewProgram(m)
	if vc.quit != nil {
		go func() {
			if _, ok := <-vc.quit; ok {
				p.Quit()
			}
		}()
	}
	if _, err := p.Run(); err != nil {
		return fmt.Errorf("the terminal view stopped: %v", err)
	}
	return nil
}

// operator names who runs asym, for the notes' timeline: the user, and the
// one who became it with sudo.
func operator() string {
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" && s != name {
		return name + " (sudo from " + s + ")"
	}
	return name
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

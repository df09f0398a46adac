package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/lab"
	"asym/probes"
	"asym/session"
	"asym/ui"
)

// defaultLabPrefix names every namespace `asym lab` makes: one lab at a
// time, and `asym lab down` can always find what an earlier run left.
const defaultLabPrefix = "asym-lab-"

// labPrefixRe is what ASYM_LAB_PREFIX may be: a lab of its own beside the
// machine's (a second person's, a test run's), whose names no other lab's
// prefix covers.
var labPrefixRe = regexp.MustCompile(`^asym-[a-z0-9]{1,12}-$`)

// labPrefix is the prefix of this asym's lab: ASYM_LAB_PREFIX when set (the
// tests give each run its own, so that a lab someone has up on the same
// machine never meets theirs), asym-lab- otherwise.
func labPrefix() string {
	if p := os.Getenv("ASYM_LAB_PREFIX"); p != "" {
		return p
	}
	return defaultLabPrefix
}

// checkLabPrefix refuses an ASYM_LAB_PREFIX whose namespaces another lab's
// prefix would also name (asym lab down removes every namespace its prefix
// names).
func checkLabPrefix() error {
	p := labPrefix()
	if p == defaultLabPrefix {
		return nil
	}
	if !labPrefixRe.MatchString(p) || strings.HasPrefix(p, defaultLabPrefix) {
		return errUsage{fmt.Sprintf("ASYM_LAB_PREFIX=%q: it must be asym-, 1 to 12 lowercase letters or digits, then -, and not start with %s (e.g. asym-mine-), or unset", clip(p), defaultLabPrefix)}
	}
	return nil
}

func cmdLab(args []string, stdout io.Writer) (int, error) {
	if isHelp(args) || len(args) > 1 && isHelp(args[1:]) {
		return 0, helpError{newFlagSet("lab")}
	}
	if len(args) == 0 {
		return 2, errUsage{"asym lab takes list, run [NAME], up NAME or down"}
	}
	if err := checkLabPrefix(); err != nil {
		return 2, err
	}
	switch args[0] {
	case "list":
		fmt.Fprintln(stdout, "Scenarios (asym lab run NAME; the first is the default):")
		for _, s := range lab.Scenarios() {
			fmt.Fprintf(stdout, "  %-20s %s\n  %-20s wrong: %s\n", s.Name, s.Story, "", s.Wrong)
		}
		return 0, nil
	case "run":
		return 0, labRun(args[1:])
	case "up":
		return 0, labUp(args[1:], stdout)
	case "serve":
		return 0, labServe(args[1:])
	case "down":
		return 0, labDown(args[1:], stdout)
	}
	return 2, errUsage{fmt.Sprintf("unknown lab command %q: use list, run, up or down", clip(args[0]))}
}

func findScenario(args []string) (lab.Scenario, error) {
	if len(args) == 0 {
		return lab.Scenarios()[0], nil
	}
	if len(args) > 1 {
		return lab.Scenario{}, errUsage{"give one scenario name"}
	}
	s, ok := lab.Find(args[0])
	if !ok {
		return lab.Scenario{}, errUsage{fmt.Sprintf("there is no scenario %q: asym lab list shows them (%s)", clip(args[0]), strings.Join(lab.Names(), ", "))}
	}
	return s, nil
}

func requireRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("the lab builds network namespaces, veths and firewall rules, which needs root: run it with sudo")
	}
	return nil
}

// labRun builds the scenario, keeps its failing flow going in the
// background, and opens the interactive view on it. Everything is removed
// when the view closes, whatever closes it.
func labRun(args []string) error {
	s, err := findScenario(args)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errUsage{"asym lab run opens the interactive view and needs a terminal; for scripts use asym lab up"}
	}
	st, err := claimLab(s.Name, ownerRun)
	if err != nil {
		return err
	}
	defer releaseLab()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	env, err := s.Up(ctx, labPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("build the lab %s: %v", s.Name, err)
	}
	defer tearDown(env)
	st.built(env)
	if err := st.save(); err != nil {
		return err
	}
	traffic, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	results := env.Traffic(traffic, time.Second)
	c := env.Checks[0]
	// A hang-up or a kill request still tears the lab down: the view quits
	// and the deferred teardown runs.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGTERM)
	defer signal.Stop(sig)
	f, err := flow.ParseString(c.Flow)
	if err != nil {
		return fmt.Errorf("the lab's flow %q does not parse: %v", c.Flow, err)
	}
	return openView(viewConfig{
		cfg:  session.Config{Netns: c.Target, ProbeTimeout: probes.DefaultTimeout},
		flow: &f,
		lab:  &ui.LabInfo{Name: s.Name, Story: s.Story, Traffic: results},
		quit: sig,
	})
}

// tearDown removes a lab this process built: the journals of fixes made in
// it go first, so that their watchdogs revert and end while the namespaces
// are still there, and nothing of the lab (a journal, a lock, a watchdog)
// outlives the command.
func tearDown(env *lab.Env) {
	forgetFixes(env.Namespaces)
	awaitHolders(env.Namespaces, 5*time.Second)
	env.Down()
}

// labUp starts `asym lab serve` detached and returns when it is ready.
func labUp(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return errUsage{"asym lab up takes one scenario name (asym lab list shows them)"}
	}
	s, err := findScenario(args)
	if err != nil {
		return err
	}
	if err := requireRoot(); err != nil {
		return err
	}
	if err := refuseIfUp(); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(exe, "lab", "serve", s.Name)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the lab: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(30 * time.Second)
	for {
		if st, err := readLabState(); err == nil && st.PID == cmd.Process.Pid && len(st.Checks) > 0 {
			fmt.Fprintf(stdout, "lab %s is up (namespaces %s).\n", s.Name, strings.Join(st.Namespaces, ", "))
			for _, c := range st.Checks {
				fmt.Fprintf(stdout, "  asym --netns %s %s\n", c.Target, c.Flow)
				if len(c.Expect) == 0 && len(c.Live) > 0 {
					fmt.Fprintf(stdout, "  asym check --watch 5s --netns %s %s   # the proof is in its packets\n", c.Target, c.Flow)
				}
			}
			if st.Client != "" && st.Server != "" {
				fmt.Fprintf(stdout, "Both ends at once (from the client, the server as the peer):\n  asym check --watch 5s --netns %s --peer %s --peer-asym %s %s\n",
					st.Client, evidence.Quote("ip netns exec "+st.Server), evidence.Quote(exe), st.Checks[0].Flow)
			}
			fmt.Fprintf(stdout, "Its failing flow is tried every second. Remove it with: asym lab down\n")
			return nil
		}
		select {
		case err := <-done:
			return fmt.Errorf("the lab stopped while starting (%v): asym lab down cleans up", err)
		case <-deadline:
			cmd.Process.Kill()
			return errors.New("the lab did not come up within 30s: asym lab down cleans up")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// labServe is the detached body of `asym lab up`: it holds the lab's
// responder and traffic until asked to stop.
func labServe(args []string) error {
	s, err := findScenario(args)
	if err != nil {
		return err
	}
	st, err := claimLab(s.Name, ownerServe)
	if err != nil {
		return err
	}
	defer releaseLab()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	env, err := s.Up(ctx, labPrefix())
	cancel()
	if err != nil {
		return err
	}
	defer tearDown(env)
	traffic, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		for range env.Traffic(traffic, time.Second) {
		}
	}()
	st.built(env)
	if err := st.save(); err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	// Stop also when someone removed the namespaces under us.
	for {
		select {
		case <-sig:
			return nil
		case <-time.After(time.Second):
			if _, err := os.Stat("/run/netns/" + env.Checks[0].Target); err != nil {
				return nil
			}
		}
	}
}

// labDown stops a lab started by up and removes every namespace an earlier
// lab left behind. A lab that asym lab run shows is its view's to remove:
// it is refused, with the process that owns it.
func labDown(args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errUsage{"asym lab down takes at most a scenario name"}
	}
	if err := requireRoot(); err != nil {
		return err
	}
	var removed []string
	if st, err := readLabState(); err == nil && st.process().Alive() {
		if len(args) == 1 && args[0] != st.Scenario {
			return fmt.Errorf("the lab that is up is %q, not %q", st.Scenario, args[0])
		}
		if st.Owner != ownerServe {
			return fmt.Errorf("the lab %q is in use, owned by %s; asym lab down removed nothing", st.Scenario, st.ownedBy())
		}
		if err := stopServe(st); err != nil {
			return err
		}
		removed = st.Namespaces // the serve removes its own lab
	}
	left, err := removeLeftovers()
	removed = append(removed, left...)
	if st, rerr := readLabState(); rerr == nil && !st.process().Alive() {
		os.Remove(labStatePath())
	}
	if len(removed) > 0 {
		fmt.Fprintf(stdout, "removed %s\n", strings.Join(removed, ", "))
	} else if err == nil {
		fmt.Fprintln(stdout, "no lab was up")
	}
	return err
}

// stopServe ends the lab serve of asym lab up, which removes its lab.
func stopServe(st labState) error {
	syscall.Kill(st.PID, syscall.SIGTERM)
	for i := 0; i < 200 && st.process().Alive(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if st.process().Alive() {
		return fmt.Errorf("the lab's process %d did not stop within 10s: kill it (kill %d), then asym lab down again", st.PID, st.PID)
	}
	return nil
}

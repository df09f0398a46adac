package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"asym/evidence"
	"asym/fix/apply"
	"asym/flow"
	"asym/lab"
	"asym/probes"
	"asym/session"
	"asym/ui"
)

// labPrefix names every namespace `asym lab` makes: one lab at a time, and
// `asym lab down` can always find what an earlier run left.
const labPrefix = "asym-lab-"

// labState is what `asym lab up` leaves for `asym lab down` and scripts.
type labState struct {
	Scenario   string      `json:"scenario"`
	PID        int         `json:"pid"`
	Checks     []lab.Check `json:"checks"`
	Namespaces []string    `json:"namespaces"`
	Client     string      `json:"client"` // the namespaces of the flow's two ends
	Server     string      `json:"server"`
}

func labStatePath() string { return filepath.Join(apply.Dir(), "lab.json") }

func cmdLab(args []string, stdout io.Writer) (int, error) {
	if isHelp(args) || len(args) > 1 && isHelp(args[1:]) {
		return 0, helpError{newFlagSet("lab")}
	}
	if len(args) == 0 {
		return 2, errUsage{"asym lab takes list, run [NAME], up NAME or down"}
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

// refuseIfUp keeps one lab at a time.
func refuseIfUp() error {
	if st, err := readLabState(); err == nil && processAlive(st.PID) {
		return fmt.Errorf("the lab %q is already up (process %d): asym lab down first", st.Scenario, st.PID)
	}
	if left, _ := lab.Leftovers(labPrefix); len(left) > 0 {
		return fmt.Errorf("namespaces of an earlier lab are still there (%s): asym lab down removes them", strings.Join(left, ", "))
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
	if err := refuseIfUp(); err != nil {
		return err
	}
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errUsage{"asym lab run opens the interactive view and needs a terminal; for scripts use asym lab up"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	env, err := s.Up(ctx, labPrefix)
	cancel()
	if err != nil {
		return fmt.Errorf("build the lab %s: %v", s.Name, err)
	}
	defer env.Down()
	// Journals of fixes made in this lab go with the lab.
	defer os.Remove(apply.PathFor(apply.IDFor("netns", env.Checks[0].Target)))
	traffic, stopTraffic := context.WithCancel(context.Background())
	defer stopTraffic()
	results := env.Traffic(traffic, time.Second)
	c := env.Checks[0]
	// A hang-up or a kill request still tears the lab down: the view quits
	// and the deferred Down runs.
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
	os.Remove(labStatePath())
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
		if st, err := readLabState(); err == nil && st.PID == cmd.Process.Pid {
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	env, err := s.Up(ctx, labPrefix)
	cancel()
	if err != nil {
		return err
	}
	defer env.Down()
	defer os.Remove(labStatePath())
	traffic, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		for range env.Traffic(traffic, time.Second) {
		}
	}()
	st := labState{Scenario: s.Name, PID: os.Getpid(), Checks: env.Checks, Namespaces: env.Namespaces}
	st.Client, st.Server = env.Ends()
	b, _ := json.MarshalIndent(st, "", " ")
	os.MkdirAll(filepath.Dir(labStatePath()), 0o700)
	if err := os.WriteFile(labStatePath(), b, 0o600); err != nil {
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
// lab left behind.
func labDown(args []string, stdout io.Writer) error {
	if len(args) > 1 {
		return errUsage{"asym lab down takes at most a scenario name"}
	}
	if err := requireRoot(); err != nil {
		return err
	}
	left, _ := lab.Leftovers(labPrefix)
	if st, err := readLabState(); err == nil {
		if len(args) == 1 && args[0] != st.Scenario {
			return fmt.Errorf("the lab that is up is %q, not %q", st.Scenario, args[0])
		}
		if processAlive(st.PID) && isLabServe(st.PID) {
			syscall.Kill(st.PID, syscall.SIGTERM)
			for i := 0; i < 100 && processAlive(st.PID); i++ {
				time.Sleep(50 * time.Millisecond)
			}
		}
		os.Remove(labStatePath())
		for _, c := range st.Checks {
			os.Remove(apply.PathFor(apply.IDFor("netns", c.Target)))
		}
	}
	if err := lab.Cleanup(labPrefix); err != nil {
		return fmt.Errorf("remove the lab's namespaces: %v", err)
	}
	if len(left) > 0 {
		fmt.Fprintf(stdout, "removed %s\n", strings.Join(left, ", "))
	} else {
		fmt.Fprintln(stdout, "no lab was up")
	}
	return nil
}

func readLabState() (labState, error) {
	var st labState
	b, err := os.ReadFile(labStatePath())
	if err != nil {
		return st, err
	}
	return st, json.Unmarshal(b, &st)
}

func processAlive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// isLabServe checks the process is ours before signalling it: a pid in a
// stale state file may have been reused.
func isLabServe(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(b), "lab\x00serve")
}

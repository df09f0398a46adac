package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Peak memory of a child process is read from its VmHWM when it exits,
// caught with ptrace (PTRACE_O_TRACEEXIT), not from wait4's ru_maxrss: a Go
// program starts children with vfork semantics (CLONE_VM), and at execve
// the kernel folds the high-water mark of the mm being left — the parent's
// — into the child's maxrss (exec_mmap → setmax_mm_hiwater_rss in
// fs/exec.c). ru_maxrss of /bin/true started by a Go process holding 100 MB
// reads 105 MB; VmHWM at exit reads 1.1 MB. Tracing stops the child only at
// exec, at exit and on signals, so wall time is measured on separate,
// untraced runs.

// cmdSpec is one command to measure.
type cmdSpec struct {
	argv []string
	env  []string // added to the environment
	// okCodes are the exit statuses that are not an error (default 0).
	okCodes []int
	// setup adjusts the command before it starts (a terminal, a session).
	setup func(*exec.Cmd)
}

func (c cmdSpec) String() string { return strings.Join(c.argv, " ") }

func (c cmdSpec) ok(code int) bool {
	if len(c.okCodes) == 0 {
		return code == 0
	}
	return slices.Contains(c.okCodes, code)
}

func (c cmdSpec) command(ctx context.Context, cfg *config) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.argv[0], c.argv[1:]...)
	cmd.Stdout, cmd.Stderr = cfg.devnull, cfg.devnull
	if len(c.env) > 0 {
		cmd.Env = append(os.Environ(), c.env...)
	}
	if c.setup != nil {
		c.setup(cmd)
	}
	return cmd
}

// check runs the command once, unmeasured, and returns its output; it also
// warms the page cache and the kernel's caches for the measured runs.
func (c cmdSpec) check(ctx context.Context, cfg *config) ([]byte, error) {
	cmd := c.command(ctx, cfg)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := cmd.ProcessState.ExitCode()
	if err != nil && !(errors.As(err, new(*exec.ExitError)) && c.ok(code)) {
		return nil, fmt.Errorf("%s: %v: %s", c, err, strings.TrimSpace(errb.String()))
	}
	return out.Bytes(), nil
}

// timed runs the command once and returns its wall time, process start to
// exit as seen by the parent.
func (c cmdSpec) timed(ctx context.Context, cfg *config) (time.Duration, error) {
	cmd := c.command(ctx, cfg)
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil && !(errors.As(err, new(*exec.ExitError)) && c.ok(cmd.ProcessState.ExitCode())) {
		return 0, fmt.Errorf("%s: %w", c, err)
	}
	return d, nil
}

// peak runs the command once under ptrace and returns its peak resident
// set size (VmHWM at exit) in bytes.
func (c cmdSpec) peak(ctx context.Context, cfg *config) (int64, error) {
	type result struct {
		hwm int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Every ptrace request must come from the thread that traces.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		hwm, err := c.traced(ctx, cfg)
		done <- result{hwm, err}
	}()
	r := <-done
	return r.hwm, r.err
}

func (c cmdSpec) traced(ctx context.Context, cfg *config) (int64, error) {
	cmd := c.command(context.Background(), cfg) // killed below, not by exec: we reap it ourselves
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Ptrace = true
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("%s: %w", c, err)
	}
	pid := cmd.Process.Pid
	defer cmd.Process.Release()
	stop := context.AfterFunc(ctx, func() { unix.Kill(pid, unix.SIGKILL) })
	defer stop()
	var ws unix.WaitStatus
	// The first stop is the SIGTRAP after execve.
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		return 0, fmt.Errorf("%s: wait for exec: %w", c, err)
	}
	if !ws.Stopped() {
		return 0, fmt.Errorf("%s: ended before it started (status %v)", c, ws)
	}
	// EXITKILL: if this program dies, the traced child dies with it.
	if err := unix.PtraceSetOptions(pid, unix.PTRACE_O_TRACEEXIT|unix.PTRACE_O_EXITKILL); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		return 0, fmt.Errorf("%s: ptrace options: %w", c, err)
	}
	var hwm int64 = -1
	sig := 0
	for {
		if err := unix.PtraceCont(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			unix.Kill(pid, unix.SIGKILL)
			return 0, fmt.Errorf("%s: ptrace: %w", c, err)
		}
		if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
			return 0, fmt.Errorf("%s: wait: %w", c, err)
		}
		switch {
		case ws.Exited():
			if !c.ok(ws.ExitStatus()) {
				return 0, fmt.Errorf("%s: exit status %d", c, ws.ExitStatus())
			}
			if hwm < 0 {
				return 0, fmt.Errorf("%s: exited without an exit stop: no peak memory", c)
			}
			return hwm, nil
		case ws.Signaled():
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fmt.Errorf("%s: killed by %v", c, ws.Signal())
		case ws.Stopped() && ws.TrapCause() == unix.PTRACE_EVENT_EXIT:
			// The mm is still there: the peak is final.
			h, err := vmHWM(pid)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", c, err)
			}
			hwm, sig = h, 0
		case ws.Stopped():
			sig = int(ws.StopSignal())
			if sig == int(unix.SIGTRAP) {
				sig = 0
			}
		}
	}
}

// vmHWM reads a process's peak resident set size, in bytes.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, fmt.Errorf("read the peak memory of process %d: %w", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmHWM %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// series is what one row of the table measured.
type series struct {
	wall []time.Duration
	rss  []int64 // bytes; empty when not measured (in-process figures)
}

// measureSet measures a list of commands that count as one thing (the
// playbook's commands a person types one after the other): runs times,
// wall time summed and peak memory the largest of them, interleaved with
// the other sets so that drift hits all alike.
type measureSet struct {
	name string
	cmds []cmdSpec
	s    series
}

// measureAll runs every set runs times, round robin: each round times
// every set, then measures every set's memory.
func measureAll(ctx context.Context, cfg *config, runs int, sets ...*measureSet) error {
	for _, m := range sets {
		for _, c := range m.cmds {
			if _, err := c.check(ctx, cfg); err != nil {
				return err
			}
		}
	}
	for range runs {
		for _, m := range sets {
			var sum time.Duration
			for _, c := range m.cmds {
				d, err := c.timed(ctx, cfg)
				if err != nil {
					return err
				}
				sum += d
			}
			m.s.wall = append(m.s.wall, sum)
		}
		for _, m := range sets {
			var most int64
			for _, c := range m.cmds {
				h, err := c.peak(ctx, cfg)
				if err != nil {
					return err
				}
				most = max(most, h)
			}
			m.s.rss = append(m.s.rss, most)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// quantile of sorted values by nearest rank: q=0.5 is the median of an
// odd count.
func quantile[T int64 | time.Duration](xs []T, q float64) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s)-1) + 0.5)
	return s[min(max(i, 0), len(s)-1)]
}

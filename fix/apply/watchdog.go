package apply

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// ArmWatchdog returns an Arm function that starts `EXE fix --watchdog
// JOURNAL` outside the person's session: as a systemd transient unit where
// systemd runs the host (it survives the SSH session and its cgroup), and
// otherwise as a detached process in a session of its own (a hang-up of the
// terminal or a SIGKILL of asym does not reach it). exe defaults to this
// program (or $ASYM_EXE). ASYM_WATCHDOG=detached forces the second way.
func ArmWatchdog(exe string) func(j *Journal) error {
	return func(j *Journal) error {
		if exe == "" {
			exe = os.Getenv("ASYM_EXE") // tests: the built binary, not the test binary
		}
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return fmt.Errorf("find asym's own binary: %w", err)
			}
		}
		args := []string{"fix", "--watchdog", j.path}
		how := ""
		if useSystemd(j) {
			unit := "asym-revert-" + j.ID + "-" + strconv.FormatInt(time.Now().Unix(), 10)
			run, _ := exec.LookPath("systemd-run")
			out, err := exec.Command(run, append([]string{"--unit", unit, "--collect", "--quiet", "--", exe}, args...)...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("systemd-run: %v: %s", err, out)
			}
			how = "systemd transient unit " + unit + " (systemctl status " + unit + ")"
		} else {
			cmd := exec.Command(exe, args...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // its own session: no SIGHUP from ours
			cmd.Dir = "/"
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("start the watchdog: %w", err)
			}
			how = "process " + strconv.Itoa(cmd.Process.Pid) + " in its own session"
			cmd.Process.Release()
		}
		_, err := update(j.path, func(jj *Journal) error {
			jj.Watchdog = how
			jj.logf("revert armed: %s", how)
			return nil
		})
		return err
	}
}

// useSystemd: systemd runs this host, systemd-run exists, and asym runs in
// the namespace systemd's units run in (a unit would otherwise revert
// another namespace; the watchdog's inode check would refuse, and the fix
// would never revert).
func useSystemd(j *Journal) bool {
	if os.Getenv("ASYM_WATCHDOG") == "detached" {
		return false
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false
	}
	if _, err := exec.LookPath("systemd-run"); err != nil {
		return false
	}
	var self, init syscall.Stat_t
	if syscall.Stat("/proc/self/ns/net", &self) != nil || syscall.Stat("/proc/1/ns/net", &init) != nil {
		return false
	}
	return self.Ino == init.Ino
}

// Watchdog is the body of `asym fix --watchdog JOURNAL`: it says it is
// running, waits for the deadline (leaving early when the fix is confirmed
// or rolled back), and reverts what is still pending then.
func Watchdog(path string) error {
	j, err := update(path, func(j *Journal) error {
		j.Armed = true
		j.logf("watchdog %d running; reverts at %s", os.Getpid(), j.Deadline.UTC().Format(time.RFC3339))
		return nil
	})
	if err != nil {
		return err
	}
	for {
		if !j.Pending() {
			return nil
		}
		left := time.Until(j.Deadline)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, 500*time.Millisecond))
		if j, err = Load(path); err != nil {
			return err // the journal was removed: nothing to do
		}
	}
	_, err = update(path, func(j *Journal) error {
		if !j.Pending() {
			return nil
		}
		t, err := Open(j.Target)
		if err != nil {
			j.State = StateReverted
			j.logf("deadline passed, but: %v", err)
			return nil
		}
		defer t.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		errs := revert(ctx, t, j)
		j.State = StateReverted
		j.logf("deadline passed without confirmation: reverted")
		if len(errs) > 0 {
			j.logf("revert problems: %v", errors.Join(errs...))
		}
		return nil
	})
	return err
}

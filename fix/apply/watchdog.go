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

	"golang.org/x/sys/unix"

	"asym/probes"
)

// ArmWatchdog returns an Arm function that starts `EXE fix --watchdog
// JOURNAL --watchdog-ns NSFILE` outside the person's session: as a systemd
// transient unit where systemd runs the host (it survives the SSH session
// and its cgroup), and otherwise as a detached process in a session of its
// own (a hang-up of the terminal or a SIGKILL of asym does not reach it).
// exe defaults to this program (or $ASYM_EXE). ASYM_WATCHDOG=detached
// forces the second way.
//
// NSFILE is the target's namespace as this asym holds it open: the
// detached watchdog inherits the file as its descriptor 3; the systemd
// unit, which inherits nothing, opens it through /proc/PID/fd of this asym,
// which waits until the watchdog reports running. Either way the watchdog
// checks it is the namespace of the journal, and holds it until the
// revert.
func ArmWatchdog(exe string) func(j *Journal, t *probes.Target) (string, error) {
	return func(j *Journal, t *probes.Target) (string, error) {
		if exe == "" {
			exe = os.Getenv("ASYM_EXE") // tests: the built binary, not the test binary
		}
		if exe == "" {
			var err error
			if exe, err = os.Executable(); err != nil {
				return "", fmt.Errorf("find asym's own binary: %w", err)
			}
		}
		if useSystemd() {
			return armSystemd(exe, j, t)
		}
		return armDetached(exe, j, t)
	}
}

func armSystemd(exe string, j *Journal, t *probes.Target) (string, error) {
	unit := "asym-revert-" + j.ID + "-" + strconv.FormatInt(time.Now().Unix(), 10)
	ns := fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), t.NS())
	run, _ := exec.LookPath("systemd-run")
	out, err := exec.Command(run, "--unit", unit, "--collect", "--quiet", "--", exe, "fix", "--watchdog", j.path, "--watchdog-ns", ns).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("systemd-run: %v: %s", err, out)
	}
	return "systemd transient unit " + unit + " (systemctl status " + unit + ")", nil
}

func armDetached(exe string, j *Journal, t *probes.Target) (string, error) {
	fd, err := unix.Dup(int(t.NS()))
	if err != nil {
		return "", fmt.Errorf("hand the namespace to the watchdog: %w", err)
	}
	ns := os.NewFile(uintptr(fd), "netns")
	defer ns.Close()
	cmd := exec.Command(exe, "fix", "--watchdog", j.path, "--watchdog-ns", "/proc/self/fd/3")
	cmd.ExtraFiles = []*os.File{ns}                      // its descriptor 3
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // its own session: no SIGHUP from ours
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("start the watchdog: %w", err)
	}
	go cmd.Wait() // reaped when it ends, if this asym still runs then (the view)
	return "process " + strconv.Itoa(cmd.Process.Pid) + " in its own session", nil
}

// useSystemd: systemd runs this host, systemd-run exists, and asym runs in
// the namespace systemd's units run in (a unit would otherwise revert
// another namespace; the watchdog's check would refuse, and the fix would
// never be applied).
func useSystemd() bool {
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

// errLeave ends a watchdog whose journal is no longer its business.
var errLeave = errors.New("the fix is decided")

// Watchdog is the body of `asym fix --watchdog JOURNAL --watchdog-ns
// NSFILE`. It opens the journal's lock and the namespace and keeps both
// open to the end: the namespace, checked to be the journal's, is the one
// it reverts, whatever bears its name by then; the lock works even when
// the state directory has become read-only or full. It records its own pid
// and start time (so that asym can tell when it is gone), waits for the
// deadline, leaving early when the fix is kept or undone, and then reverts
// what is still pending: the kernel first, then the record, written
// elsewhere when the journal cannot be.
func Watchdog(path, nsFile string) error {
	ctx := context.Background()
	st, err := openStore(path)
	if err != nil {
		return err
	}
	defer st.close()
	j, err := Load(path)
	if err != nil {
		return err
	}
	created := j.Created
	t, err := openRef(ctx, j.Target, nsFile)
	if err != nil {
		st.update(ctx, func(j *Journal) error {
			j.WatchdogError = fmt.Sprintf("%s is not the namespace the fix is for: %v", nsFile, err)
			j.logf("watchdog %d refused: %s", os.Getpid(), j.WatchdogError)
			return nil
		})
		return fmt.Errorf("the watchdog refused: %w", err)
	}
	defer t.Close()
	_, err = st.update(ctx, func(j *Journal) error {
		if !j.Created.Equal(created) || !j.Pending() {
			return errLeave
		}
		self := Self()
		j.Armed, j.WatchdogProcess = true, &self
		j.logf("watchdog %d running, holding %s; reverts at %s", self.PID, j.Target, j.Deadline.UTC().Format(time.RFC3339))
		return nil
	})
	if errors.Is(err, errLeave) {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		next, err := Load(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return revertOrphan(t, j)
		case err == nil:
			j = next
		}
		if !j.Created.Equal(created) || !j.Pending() {
			return nil
		}
		left := time.Until(j.Deadline)
		if left <= 0 {
			break
		}
		time.Sleep(min(left, 500*time.Millisecond))
	}
	return revertAtDeadline(st, t, j)
}

// revertOrphan reverts at once a pending fix whose journal was removed
// (asym lab removes the journals of a lab it tears down; a person may
// clear the directory): nobody can decide it any more, and a change left
// in place would be one that asym no longer reports. The journal as last
// read may predate the latest steps, so every step is undone: an undo
// finds its object exactly or leaves it, so one for a change never made
// does nothing. The outcome goes to standard error only: there is no
// journal to tie it to.
func revertOrphan(t *probes.Target, last *Journal) error {
	if !last.Pending() {
		return nil
	}
	for i := range last.Steps {
		last.Steps[i].Started = true
	}
	_, _, errs := revert(t, last)
	fmt.Fprintf(os.Stderr, "asym watchdog: the journal %s was removed while the fix on %s was %s: reverted it now\n", last.path, last.Target, last.State)
	for _, l := range last.Log {
		fmt.Fprintln(os.Stderr, "  "+l)
	}
	return errors.Join(errs...)
}

// revertAtDeadline reverts a fix nobody decided in time. last is the
// journal as last read, used when it cannot be read again.
func revertAtDeadline(st *store, t *probes.Target, last *Journal) error {
	for {
		err := st.lock(context.Background())
		if err == nil {
			break
		}
		fmt.Fprintf(os.Stderr, "asym watchdog: %v; trying again\n", err)
		time.Sleep(time.Second)
	}
	defer st.unlock()
	j, err := Load(st.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Removed between the last look and the lock: an orphan, as in the
		// loop; the lock file, made again by taking the lock, goes with it.
		st.removeLock()
		return revertOrphan(t, last)
	case err != nil:
		j = last
	case !j.Created.Equal(last.Created) || !j.Pending():
		return nil
	}
	_, _, errs := revert(t, j)
	j.State = StateReverted
	j.logf("deadline passed without confirmation: reverted")
	if len(errs) > 0 {
		j.State = StateRevertFailed
		j.logf("revert problems: %v", errors.Join(errs...))
	}
	if err := j.save(); err != nil {
		recordElsewhere(j, err)
		return err
	}
	return nil
}

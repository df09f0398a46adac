package peer

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"
)

// The test binary is its own fake peer: run as `env ASYM_FAKE_PEER=MODE
// peer.test collect ...` it behaves as an asym on the other host would, in
// the way MODE says. Run through a link named ssh, it behaves as ssh does
// with a remote command: it joins its arguments into one command line for
// a shell. Real processes, real pipes, real exit statuses: no mocks.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "ssh" {
		os.Exit(fakeSSH(os.Args[1:]))
	}
	if mode := os.Getenv("ASYM_FAKE_PEER"); mode != "" {
		os.Exit(fakePeer(mode, os.Args[1:]))
	}
	os.Exit(probetest.Run(m))
}

// fakeSSH runs `ssh HOST WORDS...` as sshd would on the other side: the
// words joined with spaces, given to a shell (in $ASYM_FAKE_SSH_DIR, where a
// test may put files that an unquoted glob would match).
func fakeSSH(args []string) int {
	if len(args) < 2 {
		fmt.Fprintln(os.Stderr, "fake ssh: usage: ssh HOST COMMAND...")
		return 255
	}
	cmd := exec.Command("/bin/sh", "-c", strings.Join(args[1:], " "))
	cmd.Dir = os.Getenv("ASYM_FAKE_SSH_DIR")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "fake ssh:", err)
		return 255
	}
	return 0
}

// fakePeer is the peer's asym. args are what follows the executable.
func fakePeer(mode string, args []string) int {
	if len(args) == 1 && args[0] == "--version" {
		if mode == "old" {
			fmt.Println("asym 0.0.1")
			return 0
		}
		fmt.Println("asym fake-1")
		return 0
	}
	switch mode {
	case "old": // an asym from before collect (and trace), word for word
		fmt.Fprintf(os.Stderr, "asym: unknown command %q: use check, explain or version, or give a flow (asym help shows how)\n", args[0])
		return 2
	case "format99":
		fmt.Println(`{"asym_collect":99,"version":"9.9.9","evidence":{"flow":"a newer shape"}}`)
		return 0
	case "garbage": // a login script that talks
		fmt.Print("Welcome to db1\x1b[2J\x1b]0;pwned\x07\nlast login: yesterday\n")
		return 0
	case "silent":
		return 0
	case "nosudo":
		fmt.Fprintln(os.Stderr, "sudo: a terminal is required to read the password; either use the -S option to read from standard input or configure an askpass helper")
		fmt.Fprintln(os.Stderr, "sudo: a password is required")
		return 1
	case "sudo-notfound": // sudo's own words when the executable is missing: no_asym, not no_sudo
		fmt.Fprintf(os.Stderr, "sudo: %s: command not found\n", os.Args[0])
		return 1
	case "fail": // the peer's asym fails, with hostile bytes in its message
		fmt.Fprintf(os.Stderr, "%s: open /proc/net/nf_conntrack: No such file or directory\n", os.Args[0])
		fmt.Fprintln(os.Stderr, "asym: reading conntrack: \x1b]0;pwned\x07 \u202egnp.exe permission denied")
		return 2
	case "huge":
		b := make([]byte, 1<<20)
		for i := 0; i < 40; i++ {
			if _, err := os.Stdout.Write(b); err != nil {
				return 1
			}
		}
		return 0
	case "sleep", "lingering":
		// A grandchild that holds stdout open, as ssh's ControlMaster or a
		// daemon started by a wrapper would.
		child := exec.Command(os.Args[0])
		child.Env = append(os.Environ(), "ASYM_FAKE_PEER=sleepchild")
		child.Stdout, child.Stderr = os.Stdout, os.Stderr
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pids := fmt.Sprintf("%d\n%d\n", os.Getpid(), child.Process.Pid)
		if err := os.WriteFile(os.Getenv("ASYM_FAKE_PIDS"), []byte(pids), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if mode == "lingering" {
			return fakeCollect(args)
		}
		time.Sleep(60 * time.Second)
		return 0
	case "sleepchild":
		time.Sleep(60 * time.Second)
		return 0
	case "escape", "escape-noenv":
		// What `setsid sleep 600 &` does: a child in a session and process
		// group of its own, detached from every pipe; with escape-noenv it
		// also drops its environment, as sudo's env_reset would.
		child := exec.Command(os.Args[0])
		child.Env = []string{"ASYM_FAKE_PEER=sleepchild"}
		if mode == "escape" {
			child.Env = append(os.Environ(), "ASYM_FAKE_PEER=sleepchild")
		}
		child.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := child.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		pids := fmt.Sprintf("%d\n%d\n", os.Getpid(), child.Process.Pid)
		if err := os.WriteFile(os.Getenv("ASYM_FAKE_PIDS"), []byte(pids), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		time.Sleep(60 * time.Second)
		return 0
	case "hostile":
		return fakeCollect(args)
	case "valid", "wrongflow":
		return fakeCollect(args)
	case "trace", "trace-findings":
		return fakeTrace(mode, args)
	}
	fmt.Fprintf(os.Stderr, "fake peer: unknown mode %q\n", mode)
	return 3
}

// fakeCollect checks the command line as asym's collect would read it and
// prints a collection for the flow it names.
func fakeCollect(args []string) int {
	if len(args) < 4 || args[0] != "collect" || args[1] != "--json" || args[2] != "--timeout" {
		fmt.Fprintf(os.Stderr, "asym: fake peer: unexpected arguments %q\n", args)
		return 2
	}
	i := 0
	for i < len(args) && args[i] != "--" {
		i++
	}
	if i == len(args) {
		fmt.Fprintf(os.Stderr, "asym: fake peer: no -- in %q\n", args)
		return 2
	}
	f, err := flow.Parse(args[i+1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "asym: %v\n", err)
		return 2
	}
	if os.Getenv("ASYM_FAKE_PEER") == "wrongflow" {
		f = f.Reverse()
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	// Noise on stderr, as a real run has: Result.Stderr keeps it, cleaned.
	fmt.Fprintf(os.Stderr, "note: \x1b[31mred\x1b[0m\nnetns=%d\n", st.Ino)
	c := evidence.Collection{Format: evidence.CollectFormat, Version: "fake-1", Time: time.Now(), Evidence: evidence.Evidence{Flow: f}}
	if os.Getenv("ASYM_FAKE_PEER") == "hostile" {
		c = hostileCollection(f)
	}
	if err := json.NewEncoder(os.Stdout).Encode(c); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// fakeTrace is asym trace on the peer: with --observe-ids it says it
// listens and waits for its standard input to end, as the real one does,
// then prints a trace of the flow whose reverse says when it listened.
func fakeTrace(mode string, args []string) int {
	if len(args) < 4 || args[0] != "trace" || args[1] != "--json" {
		fmt.Fprintf(os.Stderr, "asym: fake peer: unexpected arguments %q\n", args)
		return 2
	}
	i := slices.Index(args, "--")
	if i < 0 {
		fmt.Fprintf(os.Stderr, "asym: fake peer: no -- in %q\n", args)
		return 2
	}
	f, err := flow.Parse(args[i+1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "asym: %v\n", err)
		return 2
	}
	tr := evidence.Trace{Format: evidence.TraceFormat, Version: "fake-1", Flow: f, Role: evidence.RoleServer,
		Forward: evidence.TracePath{Direction: evidence.TraceRequest, Tuple: f}, Reverse: evidence.TracePath{Direction: evidence.TraceReply, Tuple: f.Reverse()}}
	if slices.Contains(args[:i], "--observe-ids") {
		fmt.Fprintln(os.Stderr, evidence.TraceObserving)
		start := time.Now()
		io.Copy(io.Discard, os.Stdin)
		tr.Reverse.Notes = []string{fmt.Sprintf("listened %s", time.Since(start).Round(100*time.Millisecond))}
	}
	if err := json.NewEncoder(os.Stdout).Encode(tr); err != nil {
		return 2
	}
	if mode == "trace-findings" {
		return 1 // asym trace's status with findings: the trace is still read
	}
	return 0
}

// self is the test binary, the fake peer's executable.
func self(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("find the test binary: %v", err)
	}
	return exe
}

// readPids reads the pids a sleeping fake wrote.
func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("the fake peer wrote no pids: %v", err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("pid file %q: %v", b, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

// gone waits up to d for pid to be gone (or a zombie: its parent was killed
// and init reaps it in its own time).
func gone(pid int, d time.Duration) bool {
	for end := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		// stat is "pid (comm) S ...": the state follows the last ')'.
		if i := strings.LastIndexByte(string(b), ')'); i > 0 && strings.HasPrefix(string(b[i+1:]), " Z") {
			return true
		}
		if time.Now().After(end) {
			return false
		}
	}
}

// hostileText holds what a peer must not get onto a terminal: an escape
// that clears the screen, an OSC that sets the title, C1 controls, a bidi
// override and an isolate.
const hostileText = "db1\x1b[2J\x1b]0;pwned\x07\u009b31m\u0085\u202egnp.exe\u2066x"

// hostileCollection is a valid collection whose every text field a report
// shows holds hostileText.
func hostileCollection(f flow.Flow) evidence.Collection {
	h := &evidence.HostView{Hostname: hostileText, Kernel: hostileText, Target: hostileText}
	h.Report = evidence.Report{Probe: evidence.ProbeHost, Title: hostileText, Command: hostileText, Lines: []string{hostileText}, Reason: hostileText, Status: evidence.StatusOK}
	return evidence.Collection{Format: evidence.CollectFormat, Version: hostileText, Time: time.Now(), Evidence: evidence.Evidence{Flow: f, Host: h}}
}

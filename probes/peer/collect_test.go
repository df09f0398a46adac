package peer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"
)

var flow4 = mustFlow("tcp 192.0.2.10:40000 198.51.100.20:8080")

func mustFlow(s string) flow.Flow {
	f, err := flow.ParseString(s)
	if err != nil {
		panic(err)
	}
	return f
}

// fake returns options that run the test binary as a peer in mode.
func fake(t *testing.T, mode string) Options {
	return Options{
		Prefix:       []string{"env", "ASYM_FAKE_PEER=" + mode},
		Exe:          self(t),
		Flow:         flow4,
		Timeout:      20 * time.Second,
		LocalVersion: "0.2.0",
	}
}

// harmless fails when text that came from the peer still holds raw
// control characters or bidi overrides.
func harmless(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || (r >= '\u202a' && r <= '\u202e') {
			t.Errorf("%s holds the raw control %U: %q", what, r, s)
		}
	}
}

func TestCollectValid(t *testing.T) {
	o := fake(t, "valid")
	res := Collect(context.Background(), o)
	if res.Failure != nil {
		t.Fatalf("Failure = %+v, want none (stderr %q)", res.Failure, res.Stderr)
	}
	c := res.Collection
	if c.Format != evidence.CollectFormat || c.Version != "fake-1" || c.Evidence.Flow != flow4 || c.Time.IsZero() {
		t.Errorf("Collection = %+v, want format %d, version fake-1, flow %s and a time", c, evidence.CollectFormat, flow4)
	}
	if strings.Join(res.Command, "\x00") != strings.Join(Args(o), "\x00") {
		t.Errorf("Command = %q, want Args = %q", res.Command, Args(o))
	}
	// Stderr is kept on success too, and made harmless.
	if !strings.Contains(strings.Join(res.Stderr, "\n"), `note: \x1b[31mred\x1b[0m`) {
		t.Errorf("Stderr = %q, want the peer's note with its escapes shown as \\x1b", res.Stderr)
	}
	for _, l := range res.Stderr {
		harmless(t, "Stderr", l)
	}
	if res.Elapsed <= 0 || res.Elapsed > 10*time.Second {
		t.Errorf("Elapsed = %v", res.Elapsed)
	}
}

func TestCollectFailures(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    func(*testing.T) Options
		kind evidence.PeerFailureKind
		code int
		want []string // in the Reason
	}{
		{"format 99", func(t *testing.T) Options { return fake(t, "format99") }, evidence.PeerIncompatible, 0,
			[]string{"asym 9.9.9", "format 99", "asym 0.2.0", "format 1", "install the same asym release on both hosts"}},
		{"asym before collect", func(t *testing.T) Options { return fake(t, "old") }, evidence.PeerIncompatible, 2,
			[]string{"asym 0.0.1", "does not know asym collect", "asym 0.2.0", "install the same asym release on both hosts"}},
		{"not json", func(t *testing.T) Options { return fake(t, "garbage") }, evidence.PeerFailed, 0,
			[]string{"not asym collect output", "Welcome to db1", `\x1b[2J`, "login script"}},
		{"prints nothing", func(t *testing.T) Options { return fake(t, "silent") }, evidence.PeerFailed, 0,
			[]string{"printed nothing", "env ASYM_FAKE_PEER=silent true"}},
		{"sudo wants a password", func(t *testing.T) Options { return fake(t, "nosudo") }, evidence.PeerNoSudo, 1,
			[]string{"sudo: a password is required", "NOPASSWD"}},
		{"sudo finds no asym", func(t *testing.T) Options { return fake(t, "sudo-notfound") }, evidence.PeerNoAsym, 1,
			[]string{"command not found", "install the same asym release", "asym 0.2.0"}},
		{"asym fails", func(t *testing.T) Options { return fake(t, "fail") }, evidence.PeerFailed, 2,
			[]string{"exited with status 2", `\x1b]0;pwned\x07`, `\u202e`}},
		{"output too large", func(t *testing.T) Options { return fake(t, "huge") }, evidence.PeerFailed, -1,
			[]string{"exceeds 32 MiB"}},
		{"evidence for another flow", func(t *testing.T) Options { return fake(t, "wrongflow") }, evidence.PeerFailed, 0,
			[]string{"instead of " + flow4.String()}},
		{"no asym on the peer", func(t *testing.T) Options {
			o := fake(t, "valid")
			o.Prefix, o.Exe = []string{"env"}, "/nonexistent/asym"
			return o
		}, evidence.PeerNoAsym, 127, []string{`"/nonexistent/asym"`, "No such file or directory"}},
		{"prefix not installed here", func(t *testing.T) Options {
			o := fake(t, "valid")
			o.Prefix = []string{"asym-no-such-command-xyz", "db1"}
			return o
		}, evidence.PeerFailed, -1, []string{`the peer command "asym-no-such-command-xyz" is not installed here: check --peer`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := Collect(context.Background(), tc.o(t))
			f := res.Failure
			if f == nil || res.Collection != nil {
				t.Fatalf("Failure = nil, Collection = %+v; want a %s failure", res.Collection, tc.kind)
			}
			if f.Kind != tc.kind || f.ExitCode != tc.code {
				t.Errorf("Failure = %+v, want kind %s, exit code %d (stderr %q)", f, tc.kind, tc.code, res.Stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(f.Reason, w) {
					t.Errorf("Reason = %q, want it to contain %q", f.Reason, w)
				}
			}
			harmless(t, "Reason", f.Reason)
			for _, l := range res.Stderr {
				harmless(t, "Stderr", l)
			}
		})
	}
}

// TestCollectTimeout: a peer that hangs is killed with everything it
// started, and Collect returns soon after the timeout.
func TestCollectTimeout(t *testing.T) {
	o := fake(t, "sleep")
	pidFile := filepath.Join(t.TempDir(), "pids")
	o.Prefix = append(o.Prefix, "ASYM_FAKE_PIDS="+pidFile)
	o.Timeout = time.Second
	start := time.Now()
	res := Collect(context.Background(), o)
	took := time.Since(start)
	pids := readPids(t, pidFile)
	t.Cleanup(func() { killAll(pids) })
	if res.Failure == nil || res.Failure.Kind != evidence.PeerTimeout || res.Failure.ExitCode != -1 {
		t.Fatalf("Failure = %+v, want kind %s with exit code -1", res.Failure, evidence.PeerTimeout)
	}
	if !strings.Contains(res.Failure.Reason, "within 1s") {
		t.Errorf("Reason = %q, want it to say the bound (1s)", res.Failure.Reason)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("Collect took %v with a 1s timeout, want about 1s: the grandchild holding stdout was not killed", took)
	}
	for _, pid := range pids {
		if !gone(pid, 2*time.Second) {
			t.Errorf("process %d of the peer is still running after the timeout", pid)
		}
	}
}

// TestCollectCancel: cancelling the context stops the peer at once.
func TestCollectCancel(t *testing.T) {
	o := fake(t, "sleep")
	pidFile := filepath.Join(t.TempDir(), "pids")
	o.Prefix = append(o.Prefix, "ASYM_FAKE_PIDS="+pidFile)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	res := Collect(ctx, o)
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Collect took %v after a cancel at 300ms", took)
	}
	pids := readPids(t, pidFile)
	t.Cleanup(func() { killAll(pids) })
	if res.Failure == nil || res.Failure.Kind != evidence.PeerFailed || !strings.Contains(res.Failure.Reason, "cancelled") {
		t.Fatalf("Failure = %+v, want a failure that says it was cancelled", res.Failure)
	}
	for _, pid := range pids {
		if !gone(pid, 2*time.Second) {
			t.Errorf("process %d of the peer is still running after the cancel", pid)
		}
	}
}

// TestCollectLingeringGrandchild: a peer that succeeds but leaves something
// holding its stdout is a success, within WaitDelay, not a hang.
func TestCollectLingeringGrandchild(t *testing.T) {
	o := fake(t, "lingering")
	pidFile := filepath.Join(t.TempDir(), "pids")
	o.Prefix = append(o.Prefix, "ASYM_FAKE_PIDS="+pidFile)
	start := time.Now()
	res := Collect(context.Background(), o)
	took := time.Since(start)
	t.Cleanup(func() { killAll(readPids(t, pidFile)) })
	if res.Failure != nil {
		t.Fatalf("Failure = %+v, want a collection", res.Failure)
	}
	if res.Collection.Evidence.Flow != flow4 {
		t.Errorf("flow = %s, want %s", res.Collection.Evidence.Flow, flow4)
	}
	if took > waitDelay+3*time.Second {
		t.Errorf("Collect took %v, want at most about WaitDelay (%v)", took, waitDelay)
	}
}

// killAll ends the fake's processes if a failed test left them.
func killAll(pids []int) {
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// TestCollectThroughSSHQuoting runs the peer through a fake ssh that, as
// sshd does, hands the joined words to a shell, in a directory holding a
// file that the IPv6 endpoint matches as a glob: unquoted, the shell would
// replace the endpoint with the file's name.
func TestCollectThroughSSHQuoting(t *testing.T) {
	dir := t.TempDir()
	ssh := filepath.Join(dir, "ssh")
	if err := os.Symlink(self(t), ssh); err != nil {
		t.Fatal(err)
	}
	globDir := t.TempDir()
	// [2001:db8::1]:40000 matches any one of 2 0 1 : d b 8, then :40000.
	if err := os.WriteFile(filepath.Join(globDir, "2:40000"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ASYM_FAKE_SSH_DIR", globDir)
	f6 := mustFlow("tcp [2001:db8::1]:40000 [2001:db8::2]:80")
	o := Options{Prefix: []string{ssh, "db1", "env", "ASYM_FAKE_PEER=valid"}, Exe: self(t), Flow: f6, Watch: 2 * time.Second, Timeout: 20 * time.Second}
	res := Collect(context.Background(), o)
	if res.Failure != nil {
		t.Fatalf("Failure = %+v (stderr %q), want a collection for %s", res.Failure, res.Stderr, f6)
	}
	if res.Collection.Evidence.Flow != f6 {
		t.Errorf("the peer collected %s, want %s", res.Collection.Evidence.Flow, f6)
	}
}

// TestCollectRealSSH: ssh's own failures are "unreachable", with its words.
// Only where ssh is installed; nothing here needs a server.
func TestCollectRealSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("ssh is not installed here; TestCollectThroughSSHQuoting covers ssh with a fake")
	}
	for _, tc := range []struct {
		prefix []string
		want   string
	}{
		// Port 1 on loopback: nothing listens there, refused at once.
		{[]string{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "-p", "1", "127.0.0.1", "sudo"}, "Connection refused"},
		// .invalid never resolves (RFC 2606).
		{[]string{"ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=2", "asym-nonexistent.invalid"}, "asym-nonexistent.invalid"},
	} {
		o := Options{Prefix: tc.prefix, Flow: flow4, Timeout: 15 * time.Second}
		res := Collect(context.Background(), o)
		if res.Failure == nil || res.Failure.Kind != evidence.PeerUnreachable || res.Failure.ExitCode != 255 {
			t.Errorf("%q: Failure = %+v, want kind %s with exit code 255 (stderr %q)", tc.prefix, res.Failure, evidence.PeerUnreachable, res.Stderr)
			continue
		}
		if !strings.Contains(res.Failure.Reason, tc.want) || !strings.Contains(res.Failure.Reason, "true by hand") {
			t.Errorf("%q: Reason = %q, want ssh's words (%q) and the command to try by hand", tc.prefix, res.Failure.Reason, tc.want)
		}
	}
}

// TestCollectInNamespace runs the fake peer through `ip netns exec` in a
// throwaway namespace, and checks it really ran there.
func TestCollectInNamespace(t *testing.T) {
	ns := probetest.NewNS(t)
	o := fake(t, "valid")
	o.Prefix = []string{"ip", "netns", "exec", ns.Name, "env", "ASYM_FAKE_PEER=valid"}
	res := Collect(context.Background(), o)
	if res.Failure != nil {
		t.Fatalf("Failure = %+v (stderr %q), want a collection", res.Failure, res.Stderr)
	}
	if res.Collection.Evidence.Flow != flow4 {
		t.Errorf("the peer collected %s, want %s", res.Collection.Evidence.Flow, flow4)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+ns.Name, &st); err != nil {
		t.Fatal(err)
	}
	want := "netns=" + strconv.FormatUint(st.Ino, 10)
	if !strings.Contains(strings.Join(res.Stderr, "\n"), want) {
		t.Errorf("Stderr = %q, want %q: the peer did not run in %s", res.Stderr, want, ns.Name)
	}

	// A namespace that does not exist: ip says so and exits 255.
	o.Prefix = []string{"ip", "netns", "exec", ns.Name + "-missing", "env", "ASYM_FAKE_PEER=valid"}
	res = Collect(context.Background(), o)
	if res.Failure == nil || res.Failure.Kind != evidence.PeerUnreachable || !strings.Contains(res.Failure.Reason, ns.Name+"-missing") {
		t.Errorf("missing namespace: Failure = %+v, want %s naming the namespace", res.Failure, evidence.PeerUnreachable)
	}
}

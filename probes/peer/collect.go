package peer

import (
	"asym/evidence"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

const (
	maxOutput      = 32 << 20 // a full collection is a few hundred KiB even on big hosts
	maxStderr      = 4 << 10
	maxStderrLines = 20
	// waitDelay bounds how long Wait waits for the pipes after the process
	// ended or was killed: a grandchild (ssh's ControlMaster, a daemon a
	// wrapper left behind) may hold them open forever.
	waitDelay      = 2 * time.Second
	versionTimeout = 5 * time.Second
)

// Collect runs the peer and reads its collection. It never panics or hangs:
// the run is bounded by o.Timeout and ctx, and every way it can go wrong
// ends up as a Failure.
func Collect(ctx context.Context, o Options) evidence.PeerResult {
	start := time.Now()
	res := evidence.PeerResult{Prefix: o.Prefix, Command: Args(o)}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout + o.Watch
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	r := run(rctx, res.Command, nil, nil)
	res.Stderr = r.stderr
	j := judge{o: o, r: r, name: res.Command[0], sub: "collect"}
	if res.Failure = j.outcome(ctx, rctx, timeout); res.Failure == nil {
		res.Collection, res.Failure = j.decode()
	}
	res.Elapsed = time.Since(start)
	return res
}

// outcome is what a process did.
type outcome struct {
	startErr error // it never ran
	waitErr  error
	code     int // -1 unless it exited by itself
	stdout   []byte
	tooLarge bool
	stderr   []string
}

// run runs argv in its own session, without a terminal, and kills
// everything it started when ctx ends (see group). stdin is nil
// (/dev/null: the peer must not read the person's keystrokes) or a pipe
// asym writes itself; onLine, when set, sees each line of stderr as it
// comes, cleaned.
func run(ctx context.Context, argv []string, stdin io.Reader, onLine func(string)) outcome {
	out := &capped{max: maxOutput}
	errs := &tail{max: maxStderr, onLine: onLine}
	o := outcome{code: -1}
	cmd, g := command(ctx, argv, stdin, out, errs)
	o.startErr = cmd.Start()
	if o.startErr != nil && cmd.SysProcAttr.UseCgroupFD {
		// A kernel without clone3's CLONE_INTO_CGROUP (before 5.7): start
		// it again, tracked by the scan alone.
		g.release()
		cmd, g = command(ctx, argv, stdin, out, errs)
		g.withoutCgroup(cmd)
		o.startErr = cmd.Start()
	}
	defer g.release()
	if o.startErr == nil {
		g.started(cmd.Process.Pid)
		o.waitErr = cmd.Wait()
		o.code = cmd.ProcessState.ExitCode()
	}
	o.stdout, o.tooLarge, o.stderr = out.b.Bytes(), out.over, errs.lines()
	return o
}

// command prepares argv: its own session, no terminal, stdin as given,
// and killed with everything it started when ctx ends.
func command(ctx context.Context, argv []string, stdin io.Reader, out *capped, errs *tail) (*exec.Cmd, *group) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = stdin
	cmd.Stdout, cmd.Stderr = out, errs
	// Without a controlling terminal ssh and sudo cannot open /dev/tty to ask
	// for a password or a host key, which would write over the TUI and wait
	// forever; they fail instead, and the failure is classified below.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	g := newGroup(cmd)
	cmd.Cancel = func() error {
		g.kill()
		return nil
	}
	cmd.WaitDelay = waitDelay
	return cmd, g
}

// judge turns an outcome into a collection or a failure.
type judge struct {
	o    Options
	r    outcome
	name string // the command that ran (argv[0])
	sub  string // the asym subcommand asked for: collect, trace
}

// outcome says why the run gave nothing to decode, nil when it did: a
// run that exited by itself with status 0 is judged by its output, even
// when the deadline passed while asym was reading it.
func (j judge) outcome(ctx, rctx context.Context, timeout time.Duration) *evidence.PeerFailure {
	r := j.r
	finished := r.startErr == nil && r.code == 0 && (r.waitErr == nil || errors.Is(r.waitErr, exec.ErrWaitDelay))
	switch {
	case finished:
	case rctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
		return j.fail(evidence.PeerFailed, "asym stopped the peer command before it finished, because it was cancelled")
	case rctx.Err() != nil:
		return j.fail(evidence.PeerTimeout, "the peer did not answer within %s, so asym stopped it%s: run %s by hand to see where it waits",
			timeout, j.said(), j.tryCommand())
	}
	return j.failure(rctx)
}

func (j judge) fail(kind evidence.PeerFailureKind, format string, args ...any) *evidence.PeerFailure {
	return &evidence.PeerFailure{Kind: kind, Reason: clean(fmt.Sprintf(format, args...)), ExitCode: j.r.code}
}

// failure classifies a run that ended: nil when its output is there to
// decode.
func (j judge) failure(ctx context.Context) *evidence.PeerFailure {
	r := j.r
	switch {
	case errors.Is(r.startErr, exec.ErrNotFound), errors.Is(r.startErr, fs.ErrNotExist):
		return j.fail(evidence.PeerFailed, "the peer command %q is not installed here: check --peer", j.name)
	case r.startErr != nil:
		return j.fail(evidence.PeerFailed, "the peer command %q could not start (%v): check --peer", j.name, r.startErr)
	case r.tooLarge:
		return j.fail(evidence.PeerFailed, "the peer's output exceeds %d MiB, so asym stopped reading it: run %s by hand to see what it prints", maxOutput>>20, j.tryCommand())
	case j.stderrHas(`unknown command "` + j.sub + `"`):
		v := peerVersion(ctx, j.o)
		if v == "" {
			v = "an older asym"
		}
		return j.fail(evidence.PeerIncompatible, "the peer runs %s, which does not know asym %s, and this is %s: install the same asym release on both hosts", v, j.sub, j.local())
	case j.noSudo():
		return j.fail(evidence.PeerNoSudo, "sudo on the peer did not run asym%s: asym runs the peer command without a terminal, so sudo cannot ask for a password; allow asym without a password there (NOPASSWD in sudoers), or reach the peer as a user who may run it", j.said())
	case r.code == 255:
		// ssh's own failures (connection, DNS, authentication, host key),
		// and ip netns exec's for a namespace that does not exist.
		return j.fail(evidence.PeerUnreachable, "the peer could not be reached%s: run %s by hand to see why", j.said(), j.tryCommand())
	case j.noAsym():
		return j.fail(evidence.PeerNoAsym, "the peer cannot run %q%s: install the same asym release there as here (%s), in a directory on the PATH the peer command uses (sudo uses its secure_path)", j.exe(), j.said(), j.local())
	case r.code != 0:
		if r.code < 0 {
			return j.fail(evidence.PeerFailed, "the peer command was killed by a signal (%v)%s: run %s by hand to see why", r.waitErr, j.said(), j.tryCommand())
		}
		return j.fail(evidence.PeerFailed, "the peer command exited with status %d%s: run %s by hand to see why", r.code, j.said(), j.tryCommand())
	case r.waitErr != nil && !errors.Is(r.waitErr, exec.ErrWaitDelay):
		// ErrWaitDelay: it exited 0 but something it started kept the
		// pipes open; its output is complete, so it is not a failure.
		return j.fail(evidence.PeerFailed, "reading the peer's output failed (%v)%s", r.waitErr, j.said())
	}
	return nil
}

func (j judge) decode() (*evidence.Collection, *evidence.PeerFailure) {
	out := bytes.TrimSpace(j.r.stdout)
	if len(out) == 0 {
		return nil, j.fail(evidence.PeerFailed, "the peer command printed nothing%s: run %s by hand to see why", j.said(), j.tryCommand())
	}
	// The format first, alone: a newer peer's evidence may not decode into
	// this asym's types, and that is an incompatibility, not garbage.
	var head struct {
		Format  *int   `json:"asym_collect"`
		Version string `json:"version"`
	}
	if err := json.Unmarshal(out, &head); err != nil || head.Format == nil {
		return nil, j.fail(evidence.PeerFailed, "the peer printed something that is not asym collect output: %q: check that nothing on the peer (a login script, a wrapper) prints to standard output", clip(string(out), 100))
	}
	if *head.Format != evidence.CollectFormat {
		v := "an asym of another release"
		if head.Version != "" {
			v = "asym " + clip(head.Version, 40)
		}
		return nil, j.fail(evidence.PeerIncompatible, "the peer runs %s, which writes collect format %d, and this is %s, which reads format %d: install the same asym release on both hosts",
			v, *head.Format, j.local(), evidence.CollectFormat)
	}
	clean, err := cleanJSON(out)
	if err != nil {
		return nil, j.fail(evidence.PeerFailed, "the peer's collect output does not decode (%v): install the same asym release on both hosts", err)
	}
	var c evidence.Collection
	if err := json.Unmarshal(clean, &c); err != nil {
		return nil, j.fail(evidence.PeerFailed, "the peer's collect output does not decode (%v): install the same asym release on both hosts", err)
	}
	if c.Evidence.Flow != j.o.Flow {
		return nil, j.fail(evidence.PeerFailed, "the peer collected evidence for %s instead of %s: its asym does not read the flow as this one does; install the same asym release on both hosts", c.Evidence.Flow, j.o.Flow)
	}
	return &c, nil
}

// cleanJSON makes every string of the peer's JSON, keys included,
// harmless to show (evidence.Clean: C0 and C1 controls and bidi overrides
// become visible escapes) before it is decoded: the peer is untrusted, and
// its text reaches the terminal, the text and Markdown reports, the notes
// and the JSON report by many ways. Cleaning it here, once, covers all of
// them. Numbers are kept as written.
func cleanJSON(b []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(cleanValue(v))
}

func cleanValue(v any) any {
	switch v := v.(type) {
	case string:
		return clean(v)
	case []any:
		for i := range v {
			v[i] = cleanValue(v[i])
		}
		return v
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[clean(k)] = cleanValue(e)
		}
		return out
	}
	return v
}

// said is the peer's last line of stderr, as a parenthesis for a sentence.
func (j judge) said() string {
	if len(j.r.stderr) == 0 {
		return ""
	}
	return " (" + clip(j.r.stderr[len(j.r.stderr)-1], 200) + ")"
}

// tryCommand is a command the person can run to see what the prefix does:
// the prefix with `true` after it.
func (j judge) tryCommand() string {
	return evidence.Command(append(append([]string(nil), j.o.Prefix...), "true")...)
}

func (j judge) exe() string {
	if j.o.Exe == "" {
		return "asym"
	}
	return j.o.Exe
}

func (j judge) local() string {
	if j.o.LocalVersion == "" {
		return "this asym"
	}
	return "asym " + j.o.LocalVersion
}

func (j judge) stderrHas(s string) bool {
	for _, l := range j.r.stderr {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// noSudo recognises sudo's refusals (sudo's messages: "a terminal is
// required to read the password", "a password is required", "user is not in
// the sudoers file").
func (j judge) noSudo() bool {
	for _, l := range j.r.stderr {
		if !strings.Contains(l, "sudo:") {
			continue
		}
		for _, s := range []string{"password", "terminal is required", "not in the sudoers", "not allowed to execute"} {
			if strings.Contains(l, s) {
				return true
			}
		}
	}
	return false
}

// noAsym recognises "command not found" from a shell (127), "cannot
// execute" (126), and the messages of env, sudo, ip netns exec and Go
// programs about the executable itself, whatever quotes they put around it.
// The peer's own asym errors ("asym: ...: No such file or directory") must
// not match, so the executable has to be right before the message.
func (j judge) noAsym() bool {
	if j.r.code == 127 || j.r.code == 126 {
		return true
	}
	exe := clean(j.exe())
	for _, l := range j.r.stderr {
		l = strings.NewReplacer(`"`, "", "'", "", "‘", "", "’", "").Replace(l)
		for _, s := range []string{": command not found", ": No such file or directory", " failed: No such file or directory", ": executable file not found"} {
			if strings.Contains(l, exe+s) {
				return true
			}
		}
	}
	return false
}

// peerVersion asks the peer's asym for its version, briefly; "" when it
// cannot tell.
func peerVersion(ctx context.Context, o Options) string {
	ctx, cancel := context.WithTimeout(ctx, versionTimeout)
	defer cancel()
	exe := o.Exe
	if exe == "" {
		exe = "asym"
	}
	r := run(ctx, evidence.RemoteArgv(o.Prefix, []string{exe, "--version"}), nil, nil)
	line, _, _ := strings.Cut(string(r.stdout), "\n")
	line = strings.TrimSpace(line)
	if r.startErr != nil || r.code != 0 || !strings.HasPrefix(line, "asym ") {
		return ""
	}
	return clip(clean(line), 60)
}

// capped keeps stdout up to max bytes; past that its error makes exec close
// the pipe, so a runaway peer dies of SIGPIPE instead of filling memory.
type capped struct {
	b    bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.b.Len()+len(p) > c.max {
		c.over = true
		return 0, fmt.Errorf("the peer's output exceeds %d bytes", c.max)
	}
	return c.b.Write(p)
}

// tail keeps the last max bytes of stderr: the end says why it failed.
// onLine, when set, is handed each complete line as it arrives, cleaned.
type tail struct {
	b       []byte
	max     int
	lost    bool
	onLine  func(string)
	partial []byte
}

func (t *tail) Write(p []byte) (int, error) {
	if t.onLine != nil {
		t.partial = append(t.partial, p...)
		for {
			i := bytes.IndexByte(t.partial, '\n')
			if i < 0 {
				break
			}
			t.onLine(clean(strings.TrimSpace(string(t.partial[:i]))))
			t.partial = t.partial[i+1:]
		}
		if len(t.partial) > maxStderr {
			t.partial = t.partial[:0]
		}
	}
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
		t.lost = true
	}
	return len(p), nil
}

// lines returns the last non-empty lines, cleaned: the peer is untrusted,
// and its bytes end up in a terminal.
func (t *tail) lines() []string {
	s := string(t.b)
	if t.lost {
		_, s, _ = strings.Cut(s, "\n") // the first line was cut
	}
	var ls []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			ls = append(ls, clean(l))
		}
	}
	if len(ls) > maxStderrLines {
		ls = ls[len(ls)-maxStderrLines:]
	}
	return ls
}

// clean makes text from the peer harmless to show (probes.Clean).
func clean(s string) string { return evidence.Clean(s) }

// clip shortens s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

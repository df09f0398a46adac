package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"asym/lab"

	"golang.org/x/sys/unix"
)

// The terminal view is measured in a real pseudo-terminal of 100x30 with
// TERM=xterm-256color, running the real binary on the lab's host of
// two-nics-strict: start to the first full frame (the key help on the last
// line has been written), then the bytes it writes per second, idle on the
// steps, with the live view open on the idle flow, and with the lab's
// failing flow tried once a second. Nobody answers the terminal's queries.
const (
	tuiRows, tuiCols = 30, 100
	// The last line of the first frame: "enter next step … q quit".
	tuiFirstKey, tuiLastKey = "enternextstep", "qquit"
)

// ptySession is one run of the view in a fresh terminal.
type ptySession struct {
	master, slave *os.File
	start         time.Time

	mu     sync.Mutex
	out    []byte
	frame  time.Time // when the first full frame had been written
	frameN int       // bytes written until then
	done   chan struct{}
	framed chan struct{}
}

func openPTY() (*ptySession, error) {
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, fmt.Errorf("unlock the pseudo-terminal: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("name the pseudo-terminal: %w", err)
	}
	slave, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, fmt.Errorf("open the terminal side: %w", err)
	}
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: tuiRows, Col: tuiCols}); err != nil {
		master.Close()
		slave.Close()
		return nil, fmt.Errorf("size the terminal: %w", err)
	}
	return &ptySession{master: master, slave: slave, done: make(chan struct{}), framed: make(chan struct{})}, nil
}

// setup gives the command the terminal as its controlling terminal.
func (p *ptySession) setup(cmd *exec.Cmd) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = p.slave, p.slave, p.slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
}

// read collects what the program writes until the terminal closes.
func (p *ptySession) read() {
	defer close(p.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := p.master.Read(buf)
		now := time.Now()
		if n > 0 {
			p.mu.Lock()
			p.out = append(p.out, buf[:n]...)
			if p.frame.IsZero() {
				text := visible(p.out)
				if i := strings.Index(text, tuiFirstKey); i >= 0 && strings.Contains(text[i:], tuiLastKey) {
					p.frame, p.frameN = now, len(p.out)
					close(p.framed)
				}
			}
			p.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

func (p *ptySession) written() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.out)
}

func (p *ptySession) send(s string) error {
	_, err := p.master.Write([]byte(s))
	return err
}

func (p *ptySession) close() {
	p.slave.Close()
	p.master.Close()
	<-p.done
}

// visible strips terminal control sequences and whitespace: what is left
// is the text the screen shows, in the order it was written.
func visible(b []byte) string {
	var out bytes.Buffer
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case c == 0x1b && i+1 < len(b) && b[i+1] == '[': // CSI … final byte
			i += 2
			for i < len(b) && (b[i] < 0x40 || b[i] > 0x7e) {
				i++
			}
		case c == 0x1b && i+1 < len(b) && (b[i+1] == ']' || b[i+1] == 'P' || b[i+1] == '_'): // OSC, DCS, APC … BEL or ST
			i += 2
			for i < len(b) && b[i] != 0x07 && !(b[i] == 0x1b && i+1 < len(b) && b[i+1] == '\\') {
				i++
			}
			if i < len(b) && b[i] == 0x1b {
				i++
			}
		case c == 0x1b: // two-byte escape
			i++
		case c <= ' ' || c == 0x7f:
		default:
			out.WriteByte(c)
		}
	}
	return out.String()
}

func benchTUI(ctx context.Context, cfg *config, res *results) error {
	const name = "tui"
	sc, ok := lab.Find("two-nics-strict")
	if !ok {
		return errors.New("the lab has no scenario two-nics-strict")
	}
	b := make([]byte, 4)
	rand.Read(b)
	progress("%s: building lab scenario two-nics-strict", name)
	env, err := sc.Up(ctx, nsPrefix+hex.EncodeToString(b)+"-")
	if err != nil {
		return err
	}
	defer func() {
		progress("%s: removing the lab (%s)", name, strings.Join(env.Namespaces, ", "))
		if err := env.Down(); err != nil {
			res.note(name, "cleanup failed: %v", err)
		}
	}()
	home := filepath.Join(cfg.tmp, "tui-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	c := env.Checks[0]
	spec := cmdSpec{
		argv: append([]string{cfg.asym, "--netns", c.Target, "--notes", filepath.Join(home, "notes.md")}, strings.Fields(c.Flow)...),
		// Its own home: the view remembers flows in $XDG_STATE_HOME.
		env: []string{"TERM=xterm-256color", "HOME=" + home, "XDG_STATE_HOME=" + filepath.Join(home, "state")},
	}

	progress("%s: start to first full frame, %d runs", name, cfg.runs)
	var first series
	var firstBytes int
	for i := -1; i < cfg.runs; i++ { // one warm-up run
		d, n, err := tuiFirstFrame(ctx, cfg, spec)
		if err != nil {
			return err
		}
		if i >= 0 {
			first.wall = append(first.wall, d)
			firstBytes = n
		}
	}

	progress("%s: live view for %s on the idle flow, then %s with the flow failing once a second (peak memory traced)", name, cfg.liveFor, cfg.liveFor)
	lv, hwm, err := tuiLive(ctx, cfg, spec, func() { go drain(env.Traffic(ctx, time.Second)) })
	if err != nil {
		return err
	}
	first.rss = []int64{hwm}
	res.add(&row{scenario: name, what: fmt.Sprintf("asym terminal view on lab two-nics-strict: start to first full frame, %dx%d (peak RSS: the whole session with the live view)", tuiCols, tuiRows), s: first})
	res.note(name, "first full frame: %s bytes written to the terminal (TERM=xterm-256color, %dx%d)", comma(int64(firstBytes)), tuiCols, tuiRows)
	res.note(name, "idle on the steps view (no key, 3 s): %.0f bytes/s to the terminal", lv.idle)
	res.note(name, "opening the live view (l): %s bytes in its first second", comma(int64(lv.open)))
	res.note(name, "live view, idle flow, %s: %.0f bytes/s to the terminal (%.2f kbit/s)", cfg.liveFor, lv.liveIdle, lv.liveIdle*8/1000)
	res.note(name, "live view, the lab's flow failing once a second (counters change every second), %s after a 2 s settle: %.0f bytes/s (%.2f kbit/s)", cfg.liveFor, lv.liveBusy, lv.liveBusy*8/1000)
	return nil
}

func drain(ch <-chan error) {
	for range ch {
	}
}

// tuiFirstFrame starts the view, waits for its first full frame, and quits.
func tuiFirstFrame(ctx context.Context, cfg *config, spec cmdSpec) (time.Duration, int, error) {
	p, err := openPTY()
	if err != nil {
		return 0, 0, err
	}
	defer p.close()
	spec.setup = p.setup
	cmd := spec.command(ctx, cfg)
	go p.read()
	p.start = time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, fmt.Errorf("start %s: %w", spec, err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill() // in case q was not enough; "already finished" otherwise
	select {
	case <-p.framed:
	case <-time.After(10 * time.Second):
		return 0, 0, fmt.Errorf("the view showed no full frame within 10 s; it wrote %q", tail(p))
	case <-ctx.Done():
		return 0, 0, ctx.Err()
	}
	p.mu.Lock()
	d, n := p.frame.Sub(p.start), p.frameN
	p.mu.Unlock()
	if err := quitView(p, cmd); err != nil {
		return 0, 0, err
	}
	return d, n, nil
}

// quitView sends q and waits for the program to end.
func quitView(p *ptySession, cmd *exec.Cmd) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for _, k := range []string{"q", "\x1b", "q"} {
		p.send(k)
		select {
		case err := <-exited:
			if err != nil {
				return fmt.Errorf("the view ended with %v after q", err)
			}
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	return errors.New("the view did not end after q, esc, q")
}

// liveRates are bytes per second written to the terminal.
type liveRates struct {
	idle, liveIdle, liveBusy float64
	open                     int // bytes in the first second after l
}

// tuiLive runs one traced session: idle on the steps view, then the live
// view on the idle flow, then with traffic (started by busy); it returns
// the rates and the peak memory of the whole session.
func tuiLive(ctx context.Context, cfg *config, spec cmdSpec, busy func()) (lv liveRates, hwm int64, err error) {
	p, err := openPTY()
	if err != nil {
		return lv, 0, err
	}
	defer p.close()
	spec.setup = p.setup
	go p.read()
	type result struct {
		hwm int64
		err error
	}
	ended := make(chan result, 1)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		h, err := spec.peak(runCtx, cfg)
		ended <- result{h, err}
	}()
	fail := func(err error) (liveRates, int64, error) {
		cancel()
		<-ended
		return lv, 0, err
	}
	select {
	case <-p.framed:
	case r := <-ended:
		return lv, 0, fmt.Errorf("the view ended before its first frame: %v; it wrote %q", r.err, tail(p))
	case <-time.After(10 * time.Second):
		return fail(fmt.Errorf("the view showed no full frame within 10 s; it wrote %q", tail(p)))
	}
	rate := func(d time.Duration) (float64, error) {
		n0, t0 := p.written(), time.Now()
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		return float64(p.written()-n0) / time.Since(t0).Seconds(), nil
	}
	time.Sleep(500 * time.Millisecond)
	if lv.idle, err = rate(3 * time.Second); err != nil {
		return fail(err)
	}
	n0 := p.written()
	if err := p.send("l"); err != nil {
		return fail(err)
	}
	time.Sleep(time.Second)
	lv.open = p.written() - n0
	if lv.open == 0 {
		return fail(errors.New("nothing was drawn after l: the live view did not open"))
	}
	if lv.liveIdle, err = rate(cfg.liveFor); err != nil {
		return fail(err)
	}
	busy()
	time.Sleep(2 * time.Second)
	if lv.liveBusy, err = rate(cfg.liveFor); err != nil {
		return fail(err)
	}
	for _, k := range []string{"q", "\x1b", "q"} {
		p.send(k)
		select {
		case r := <-ended:
			if r.err != nil {
				return lv, 0, r.err
			}
			return lv, r.hwm, nil
		case <-time.After(2 * time.Second):
		}
	}
	return fail(errors.New("the view did not end after q, esc, q"))
}

func tail(p *ptySession) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.out
	if len(b) > 300 {
		b = b[len(b)-300:]
	}
	return string(b)
}

package lab

// The failing flow as real traffic: an echo listener in the server's
// namespace and a client socket with the flow's fixed source port in the
// client's namespace. Both sockets are made on a thread that entered the
// namespace; a socket keeps its namespace for life, so the thread can then go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// flow is a parsed "tcp SRC:PORT DST:PORT".
type flow struct {
	proto    string
	src, dst netip.AddrPort
}

func (f flow) String() string { return f.proto + " " + f.src.String() + " " + f.dst.String() }

func parseFlow(s string) (flow, error) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return flow{}, fmt.Errorf("flow %q: want \"tcp SRC:PORT DST:PORT\"", s)
	}
	if f[0] != "tcp" {
		return flow{}, fmt.Errorf("flow %q: the lab only generates tcp traffic", s)
	}
	src, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return flow{}, fmt.Errorf("flow %q: source: %w", s, err)
	}
	dst, err := netip.ParseAddrPort(f[2])
	if err != nil {
		return flow{}, fmt.Errorf("flow %q: destination: %w", s, err)
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return flow{}, fmt.Errorf("flow %q: the lab is IPv4 only", s)
	}
	return flow{proto: f[0], src: src, dst: dst}, nil
}

// reuseAddr lets the fixed source port be bound again at once; the RST close
// (SO_LINGER 0) already avoids TIME_WAIT, this covers the listener too.
func reuseAddr(_, _ string, rc syscall.RawConn) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// listen starts the echo responder on the flow's destination (or on
// listenOn, the address a gateway translates it to) in the server's
// namespace.
func (e *Env) listen() error {
	at := e.flow.dst
	if e.listenOn.IsValid() {
		at = e.listenOn
	}
	return e.listenAt(e.server, at)
}

// listenAt starts an echo responder on at in a role's namespace: the
// scenario's own, or one more for a flow that works next to the failing
// one (another port of the same server). Down stops them all.
func (e *Env) listenAt(role string, at netip.AddrPort) error {
	var ln net.Listener
	err := e.do(role, func() error {
		lc := net.ListenConfig{Control: reuseAddr}
		l, err := lc.Listen(context.Background(), "tcp4", at.String())
		ln = l
		return err
	})
	if err != nil {
		return fmt.Errorf("listen on %s in namespace %s%s: %w", at, e.Prefix, role, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		ln.Close()
		return errors.New("the lab was taken down while starting the listener")
	}
	e.lns = append(e.lns, ln)
	e.wg.Add(1)
	go e.serve(ln)
	return nil
}

func (e *Env) serve(ln net.Listener) {
	defer e.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || e.life.Err() != nil {
				return
			}
			// EMFILE and the like: back off instead of spinning.
			select {
			case <-e.life.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		e.mu.Lock()
		if e.down {
			e.mu.Unlock()
			c.Close()
			return
		}
		e.conns[c] = struct{}{}
		e.wg.Add(1)
		e.mu.Unlock()
		go e.echo(c)
	}
}

// answerSize is how many bytes the server answers each request with.
func (e *Env) answerSize() int { return max(e.Scenario.Answer, 1) }

// echo answers the 1-byte request with answerSize copies of it, then waits
// for the client to go away (it closes with RST) so the server never holds
// the 4-tuple in TIME_WAIT.
func (e *Env) echo(c net.Conn) {
	defer e.wg.Done()
	defer func() {
		c.Close()
		e.mu.Lock()
		delete(e.conns, c)
		e.mu.Unlock()
	}()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return
	}
	// One write: the kernel sends a large answer as full-sized segments.
	if _, err := c.Write(bytes.Repeat(b, e.answerSize())); err != nil {
		return
	}
	io.Copy(io.Discard, c)
}

// Try makes one attempt of the primary failing flow with real traffic and
// returns nil if it worked end to end within timeout (TCP: connect from the
// flow's fixed source port, send one byte, read the whole answer: the byte
// echoed, or the scenario's Answer bytes of it), or an error saying what
// happened. The client closes with RST (SO_LINGER 0) so the next attempt can
// reuse the port. Attempts are serialised: they share the source port.
func (e *Env) Try(ctx context.Context, timeout time.Duration) error {
	return e.try(ctx, e.flow, timeout)
}

// try makes one attempt of f, whose destination must be the listener's
// (or the address a gateway translates to it).
func (e *Env) try(ctx context.Context, f flow, timeout time.Duration) error {
	return e.tryWith(ctx, f, timeout, dialer{anySource: e.anySource})
}

// tryMSS is try with the client's SYN advertising mss (0: the kernel's
// choice), as a router clamping the MSS would rewrite it.
func (e *Env) tryMSS(ctx context.Context, f flow, timeout time.Duration, mss int) error {
	return e.tryWith(ctx, f, timeout, dialer{mss: mss, anySource: e.anySource})
}

// dialer says how an attempt's client socket is made.
type dialer struct {
	mss       int  // the MSS the SYN advertises; 0: the kernel's choice
	anySource bool // bind only the source port: the kernel picks the address
}

func (e *Env) tryWith(ctx context.Context, f flow, timeout time.Duration, d dialer) error {
	e.tryMu.Lock()
	defer e.tryMu.Unlock()
	if e.life.Err() != nil {
		return errors.New("the lab is down: no traffic can be tried")
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stop := context.AfterFunc(e.life, cancel) // Down interrupts an attempt
	defer stop()
	var res error
	if err := e.do(e.client, func() error {
		res = attempt(ctx, f, timeout, e.answerSize(), d)
		return nil
	}); err != nil {
		return err
	}
	return res
}

// attempt runs on a thread inside the client's namespace: the socket is
// created here and keeps that namespace.
func attempt(ctx context.Context, f flow, timeout time.Duration, answer int, how dialer) error {
	local := net.TCPAddrFromAddrPort(f.src)
	if how.anySource {
		// The wildcard address with the fixed port: connect() asks the
		// route for the source, as an application that never binds does.
		local = &net.TCPAddr{Port: int(f.src.Port())}
	}
	d := net.Dialer{LocalAddr: local, Control: reuseAddr}
	if mss := how.mss; mss > 0 {
		d.Control = func(network, address string, rc syscall.RawConn) error {
			if err := reuseAddr(network, address, rc); err != nil {
				return err
			}
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_MAXSEG, mss)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	c, err := d.DialContext(ctx, "tcp4", f.dst.String())
	if err != nil {
		return describeDial(ctx, f, timeout, err)
	}
	tc := c.(*net.TCPConn)
	tc.SetLinger(0) // close with RST: no TIME_WAIT on the fixed port
	defer tc.Close()
	if dl, ok := ctx.Deadline(); ok {
		tc.SetDeadline(dl)
	}
	if _, err := tc.Write([]byte{'a'}); err != nil {
		return fmt.Errorf("%s: connected, but sending the echo byte failed: %w", f, err)
	}
	b := make([]byte, answer)
	n, err := io.ReadFull(tc, b)
	if err != nil {
		switch {
		case answer > 1 && errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("%s: connected, but only %d of the %d bytes of the answer came back within %s", f, n, answer, timeout)
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("%s: connected, but the echo did not come back within %s", f, timeout)
		}
		if answer > 1 {
			return fmt.Errorf("%s: connected, but reading the answer failed after %d bytes: %w", f, n, err)
		}
		return fmt.Errorf("%s: connected, but reading the echo failed: %w", f, err)
	}
	if i := bytes.IndexFunc(b, func(r rune) bool { return r != 'a' }); i >= 0 {
		return fmt.Errorf("%s: connected, but byte %d of the answer came back as %q instead of \"a\"", f, i, b[i])
	}
	return nil
}

// describeDial turns a connect error into a sentence about the flow.
func describeDial(ctx context.Context, f flow, timeout time.Duration, err error) error {
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%s: connect timed out after %s (no SYN-ACK came back)", f, timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: connect was cancelled: %w", f, ctx.Err())
	case errors.Is(err, unix.ECONNREFUSED):
		return fmt.Errorf("%s: connect was refused (the server answered with RST)", f)
	case errors.Is(err, unix.EHOSTUNREACH):
		return fmt.Errorf("%s: connect failed: host unreachable (ICMP unreachable or no ARP answer)", f)
	case errors.Is(err, unix.ENETUNREACH):
		return fmt.Errorf("%s: connect failed: network unreachable (no route in the client)", f)
	case errors.Is(err, unix.ETIMEDOUT):
		return fmt.Errorf("%s: connect timed out: the kernel gave up after its SYN retries", f)
	case errors.Is(err, unix.EADDRINUSE), errors.Is(err, unix.EADDRNOTAVAIL):
		return fmt.Errorf("%s: the source %s cannot be bound: %w", f, f.src, err)
	}
	return fmt.Errorf("%s: connect failed: %w", f, err)
}

// Traffic keeps trying the flow every interval until ctx ends (or Down),
// and reports each attempt's result (nil = worked) on the returned channel.
// The channel is buffered and a result is dropped when it is full, so a
// slow reader never holds up the traffic; it is closed when traffic stops.
// Each attempt gets the interval, at least a second, as its timeout.
func (e *Env) Traffic(ctx context.Context, every time.Duration) <-chan error {
	if every <= 0 {
		every = time.Second
	}
	ch := make(chan error, 64)
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		close(ch)
		return ch
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer close(ch)
		t := time.NewTicker(every)
		defer t.Stop()
		// Each attempt gets at least a second: a busy machine (parallel
		// namespace tests on two cores) can take longer than a short interval
		// to enter the namespace and connect, and a healthy flow must not
		// look broken for that.
		timeout := max(every, time.Second)
		for {
			err := e.Try(ctx, timeout)
			if expired(ctx) || e.life.Err() != nil {
				return // the last attempt was cut short: not a result
			}
			select {
			case ch <- err:
			default:
			}
			select {
			case <-ctx.Done():
				return
			case <-e.life.Done():
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

// expired says whether ctx is done or past its deadline. The socket deadline
// a dial derives from ctx can fire an instant before ctx's own timer marks
// it done, so ctx.Err() alone would take a cut-short attempt for a failure.
func expired(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

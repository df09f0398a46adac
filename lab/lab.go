// Package lab builds real broken networks in throwaway network namespaces:
// the cases of the articles asym's playbook is built from, reproduced with
// veth pairs, bridges, policy routing, sysctls and nftables, plus the failing
// TCP flow as real traffic. Tests use it to check that asym's probes and
// analyzers find what is really wrong; a person can use it to try asym.
//
// Everything lives in namespaces whose names start with a prefix that starts
// with "asym-"; nothing links to the host's own namespace, only documentation
// addresses (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24) are used, and
// Down (or Cleanup for leftovers of a crashed run) removes it all. It uses
// netlink and nftables sockets only: a fresh machine has no ip, nft, ping or
// tcpdump to shell out to, and nothing here goes through a shell.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"asym/lab/namespace"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Check is one thing asym must conclude about a scenario.
type Check struct {
	Target string   // namespace asym inspects (full name)
	Flow   string   // failing flow as typed: "tcp 203.0.113.10:40000 198.51.100.11:8080"
	Expect []string // finding ids asym must report for this target from the kernel's state, sorted; empty = nothing to see there
	// Live lists, sorted, the finding ids asym must report with --watch
	// while the flow is tried, when packets prove more than the kernel's
	// state shows (an MTU black hole lives on a link between hosts: only
	// the sender's packets show it). Nil: the same as Expect.
	Live []string `json:",omitempty"`
}

// Fails says whether the scenario's flow fails: this check expects a
// finding, from the kernel's state or from the flow's packets.
func (c Check) Fails() bool { return len(c.Expect) > 0 || len(c.Live) > 0 }

// Scenario is one broken (or, for contrast, healthy) network.
type Scenario struct {
	Name    string // e.g. "two-nics-strict"
	Story   string // one line: the story
	Wrong   string // one line: what is wrong
	Fixable bool   // whether a host-local policy-routing/sysctl fix heals it
	// FixWatch says the fix lacks a fact only the flow's own frames give
	// (the gateway of a link no route names): asym fix --watch learns it
	// while the flow is retried.
	FixWatch bool
	// Answer is how many bytes the server answers each attempt's 1-byte
	// request with; 0 is a 1-byte echo. A large answer makes the server
	// send full-sized segments, which is what a path MTU problem needs.
	Answer int

	build func(*builder) error
}

// Scenarios lists every scenario, in a stable order.
func Scenarios() []Scenario { return slices.Clone(catalog) }

// Find returns the scenario with this name.
func Find(name string) (Scenario, bool) {
	for _, s := range catalog {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}

// Names lists the scenario names, for flags and error messages.
func Names() []string {
	var n []string
	for _, s := range catalog {
		n = append(n, s.Name)
	}
	return n
}

// longestRole is the longest role name a scenario uses ("fabric", "client",
// "server"); prefix+role must stay under 32 characters, the limit tools
// such as ip-netns live with comfortably.
const longestRole = 6

// Env is a scenario that is up.
type Env struct {
	Scenario   Scenario
	Prefix     string   // namespace name prefix used, e.g. "asym-lab-"
	Checks     []Check  // Checks[0] is the primary (the namespace to open asym on)
	Namespaces []string // every namespace it created, full names
	Client     string   // namespace the failing flow's client socket lives in
	Server     string   // namespace the listener (echo responder) lives in

	flow   flow   // the primary failing flow, parsed
	client string // role that opens the connection
	server string // role that listens
	// listenOn is where the server listens when that is not the flow's
	// destination: the private address a gateway DNATs the flow to. Zero:
	// the flow's destination.
	listenOn netip.AddrPort
	// anySource makes the client bind only the flow's source port and let
	// the kernel pick the source address, as most applications do: the
	// route's preferred source then decides (route-src-hint).
	anySource bool

	handles map[string]netns.NsHandle // role -> namespace handle
	nlMu    sync.Mutex
	nlh     map[string]*netlink.Handle // role -> netlink handle inside it

	tryMu sync.Mutex // one attempt at a time: the source port is fixed

	life context.Context // ends at Down
	stop context.CancelFunc

	mu      sync.Mutex // guards down, conns, listeners and wg.Add
	down    bool
	downErr error
	conns   map[net.Conn]struct{}
	lns     []net.Listener
	wg      sync.WaitGroup
}

// Up builds the scenario; every namespace name starts with prefix (which must
// start with "asym-"). On any error it removes what it made.
func (s Scenario) Up(ctx context.Context, prefix string) (*Env, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if s.build == nil {
		return nil, fmt.Errorf("scenario %q cannot be built: take it from lab.Scenarios or lab.Find", s.Name)
	}
	e := &Env{
		Scenario: s,
		Prefix:   prefix,
		handles:  map[string]netns.NsHandle{},
		nlh:      map[string]*netlink.Handle{},
		conns:    map[net.Conn]struct{}{},
	}
	e.life, e.stop = context.WithCancel(context.Background())
	b := &builder{env: e, ctx: ctx}
	err := s.build(b)
	if err == nil && len(e.Checks) == 0 {
		err = errors.New("the scenario defines no checks")
	}
	if err == nil {
		e.flow, err = parseFlow(e.Checks[0].Flow)
		e.Client, e.Server = e.NS(e.client), e.NS(e.server)
	}
	if err == nil {
		err = e.listen()
	}
	if err != nil {
		if derr := e.Down(); derr != nil {
			err = fmt.Errorf("%w (and removing what was built failed too: %v)", err, derr)
		}
		return nil, fmt.Errorf("build scenario %s: %w", s.Name, err)
	}
	return e, nil
}

// NS returns the full namespace name of a role ("host", "gw", "fw1" ...),
// or "" when this scenario has no such role.
func (e *Env) NS(role string) string {
	if _, ok := e.handles[role]; !ok {
		return ""
	}
	return e.Prefix + role
}

// Ends returns the namespaces of the flow's two ends: the client that opens
// it and the server that answers (for asym check --peer).
func (e *Env) Ends() (client, server string) { return e.NS(e.client), e.NS(e.server) }

// Do runs fn on a thread inside a role's namespace: for sysctls and
// /proc/thread-self/net, which follow the thread's namespace (notes §6).
// The thread is never returned to the Go scheduler.
func (e *Env) Do(role string, fn func() error) error {
	return e.do(role, fn)
}

func (e *Env) do(role string, fn func() error) error {
	if e.life.Err() != nil {
		return fmt.Errorf("namespace %s%s: the lab is down", e.Prefix, role)
	}
	h, ok := e.handles[role]
	if !ok {
		return fmt.Errorf("namespace %s%s is not part of this environment", e.Prefix, role)
	}
	return namespace.Do(h, fn)
}

// named returns a role's namespace as the namespace package takes it.
func (e *Env) named(role string) (namespace.NS, error) {
	h, ok := e.handles[role]
	if !ok {
		return namespace.NS{}, fmt.Errorf("namespace %s%s was not created", e.Prefix, role)
	}
	return namespace.NS{Name: e.Prefix + role, Handle: h}, nil
}

// netlink returns a netlink handle opened inside a role's namespace, kept
// until Down.
func (e *Env) netlink(role string) (*netlink.Handle, error) {
	e.nlMu.Lock()
	defer e.nlMu.Unlock()
	if h, ok := e.nlh[role]; ok {
		return h, nil
	}
	if e.life.Err() != nil {
		return nil, fmt.Errorf("namespace %s%s: the lab is down", e.Prefix, role)
	}
	ns, ok := e.handles[role]
	if !ok {
		return nil, fmt.Errorf("namespace %s%s is not part of this environment", e.Prefix, role)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink in namespace %s%s: %w", e.Prefix, role, err)
	}
	e.nlh[role] = h
	return h, nil
}

// Down removes everything of this env: it stops traffic, closes the
// listener and its connections, and deletes the namespaces (the kernel then
// destroys their interfaces, routes and rulesets). Safe to call twice.
func (e *Env) Down() error {
	e.mu.Lock()
	if e.down {
		e.mu.Unlock()
		return e.downErr
	}
	e.down = true
	e.stop()
	for _, l := range e.lns {
		l.Close()
	}
	for c := range e.conns {
		c.Close()
	}
	e.mu.Unlock()
	e.wg.Wait()

	var errs []error
	e.nlMu.Lock()
	for _, h := range e.nlh {
		h.Close()
	}
	e.nlh = map[string]*netlink.Handle{}
	e.nlMu.Unlock()
	for _, h := range e.handles {
		h.Close()
	}
	for _, name := range e.Namespaces {
		if err := namespace.Remove(name); err != nil {
			errs = append(errs, err)
		}
	}
	e.mu.Lock()
	e.downErr = errors.Join(errs...)
	e.mu.Unlock()
	return e.downErr
}

// Cleanup removes every namespace whose name starts with prefix: leftovers
// of earlier runs that did not reach Down. prefix must start with "asym-",
// so it can never touch a namespace this package did not make.
func Cleanup(prefix string) error {
	if err := checkPrefix(prefix); err != nil {
		return err
	}
	names, err := namespace.List(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		if err := namespace.Remove(name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Leftovers lists the namespaces whose names start with prefix.
func Leftovers(prefix string) ([]string, error) {
	return namespace.List(prefix)
}

// checkPrefix keeps every name this package touches inside "asym-" and
// short enough for prefix+role.
func checkPrefix(prefix string) error {
	if !strings.HasPrefix(prefix, "asym-") {
		return fmt.Errorf("namespace prefix %q must start with \"asym-\"", prefix)
	}
	if strings.ContainsAny(prefix, "/ \t\n") {
		return fmt.Errorf("namespace prefix %q must not contain '/' or spaces", prefix)
	}
	if len(prefix)+longestRole >= 32 {
		return fmt.Errorf("namespace prefix %q is too long: prefix plus role must stay under 32 characters", prefix)
	}
	return nil
}

package watch

// The packet counters of the ct-invalid and reverse-path rules
// firewall.Probe finds: the ruleset is listed once (and again now and
// then), and every interval only the chains that hold those rules are read.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/firewall"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

const (
	// rediscoverEvery is how often the ruleset is listed again to find
	// rules added since; a vanished rule or chain (a reload renumbers
	// handles) triggers it sooner, but not more than once per retryAfter.
	rediscoverEvery = 30 * time.Second
	retryAfter      = 5 * time.Second
)

// ruleWatch follows the counters of the watched rules.
type ruleWatch struct {
	ns     Namespace
	f      flow.Flow // the rules on its way are watched
	fd     int       // a duplicate of the namespace fd, for the nftables socket; -1 when none
	conn   *nftables.Conn
	chains []ruleChain
	listed time.Time // last firewall.Probe
	stale  bool      // a watched rule or chain is gone: list again

	mu     sync.Mutex // guards conn against interrupt
	closed bool
}

// ruleChain is a chain that holds watched rules.
type ruleChain struct {
	family       nftables.TableFamily
	table, chain string
	keys         map[uint64]string // rule handle -> counter key (FirewallRule.CounterKey)
}

func newRuleWatch(ns Namespace, f flow.Flow) *ruleWatch { return &ruleWatch{ns: ns, f: f, fd: -1} }

// read adds the watched rules' packet counters to into. Listing the
// ruleset again happens at most every rediscoverEvery, or retryAfter
// after a watched rule vanished.
func (w *ruleWatch) read(ctx context.Context, into map[string]uint64) error {
	var derr error
	if w.due() {
		derr = w.discover(ctx)
	}
	if len(w.chains) == 0 || ctx.Err() != nil {
		return derr
	}
	c, err := w.open()
	if err != nil {
		return err
	}
	for _, ch := range w.chains {
		if ctx.Err() != nil {
			return nil
		}
		if err := w.readChain(c, ch, into); err != nil {
			return err
		}
	}
	return derr
}

// due says whether the ruleset should be listed again.
func (w *ruleWatch) due() bool {
	since := time.Since(w.listed)
	return w.listed.IsZero() || since >= rediscoverEvery || (w.stale && since >= retryAfter)
}

// discover walks the flow through the ruleset with firewall.Probe and
// keeps the nftables rules on its way that have a counter: what the
// analyzers look up in a sample. Only the chains the flow can reach are
// read, on a large ruleset too.
func (w *ruleWatch) discover(ctx context.Context) error {
	v := firewall.Probe(ctx, w.ns, w.f)
	w.listed, w.stale = time.Now(), false
	w.chains = watchedChains(v.Rules)
	if v.OK() {
		return nil
	}
	w.stale = true // try again after retryAfter, not rediscoverEvery
	if len(v.Rules) == 0 {
		return errors.New(v.Reason)
	}
	return nil
}

// watchedChains groups the nftables rules that have a counter by chain.
// iptables-legacy rules are left out: reading their counters means running
// iptables-legacy-save, too heavy to repeat every interval.
func watchedChains(rules []evidence.FirewallRule) []ruleChain {
	var chains []ruleChain
	at := map[string]int{}
	for _, r := range rules {
		fam, known := firewall.FamilyByName(r.Family)
		if r.Source == evidence.SourceIptablesLegacy || !r.HasCounter || !known {
			continue
		}
		i, ok := at[r.Where()]
		if !ok {
			i = len(chains)
			at[r.Where()] = i
			chains = append(chains, ruleChain{family: fam, table: r.Table, chain: r.Chain, keys: map[uint64]string{}})
		}
		chains[i].keys[r.Handle] = r.CounterKey()
	}
	return chains
}

// readChain reads one chain's watched rules into into. A chain or rule
// that is gone (a reload) makes the ruleset be listed again soon.
func (w *ruleWatch) readChain(c *nftables.Conn, ch ruleChain, into map[string]uint64) error {
	counts, err := firewall.ChainCounters(c, ch.family, ch.table, ch.chain, func(h uint64) bool {
		_, ok := ch.keys[h]
		return ok
	})
	if errors.Is(err, unix.ENOENT) {
		w.stale = true
		return nil
	}
	if err != nil {
		return err
	}
	for _, rc := range counts {
		if rc.Counted {
			into[ch.keys[rc.Handle]] = rc.Packets
		}
	}
	if len(counts) < len(ch.keys) {
		w.stale = true // handles change when a ruleset is reloaded
	}
	return nil
}

// open makes the lasting nftables socket, once.
func (w *ruleWatch) open() (*nftables.Conn, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil, context.Canceled
	}
	if w.conn != nil {
		return w.conn, nil
	}
	if !w.ns.IsHost() && w.fd < 0 {
		// A duplicate, as the firewall probe uses: the library dials again
		// with it if the lasting socket was closed, and it must never be a
		// number the caller's Close has freed for something else. Kept
		// across failed dials, so that retries do not leak descriptors.
		fd, err := unix.FcntlInt(uintptr(w.ns.NS()), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("duplicate the namespace descriptor of %s: %w", w.ns, err)
		}
		w.fd = fd
	}
	c, err := firewall.DialLasting(w.fd)
	if err != nil {
		return nil, err
	}
	w.conn = c
	return c, nil
}

// interrupt closes the nftables socket under a read that the kernel does
// not answer; it runs when the watch's context ends.
func (w *ruleWatch) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.conn != nil {
		w.conn.CloseLasting()
	}
}

// close releases what open made, once the sampler has returned.
func (w *ruleWatch) close() {
	w.interrupt()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

package probes

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/ctentry"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// ProbeConntrack looks the flow up in the conntrack table of the target
// namespace and reads conntrack's statistics.
//
// It never dumps the whole table (a busy host holds a million entries): it
// asks the kernel for the flow's tuple, and for the reverse tuple if that
// finds nothing. The kernel's lookup (ctnetlink_get_conntrack →
// nf_conntrack_find_get) hashes a tuple against both directions of every
// entry, and it treats CTA_TUPLE_ORIG and CTA_TUPLE_REPLY alike when only one
// is given. So the first query already finds an entry whose reply tuple is
// the flow (created by the other side), and a separate "as reply" query would
// ask the same thing again. The reverse query adds what only NAT causes: the
// flow as seen after the far end was rewritten is neither tuple, but its
// reverse is one.
//
// Lookups are in conntrack zone 0, the default: an entry a ruleset put in
// another zone (ct zone set) is not found, exactly as `conntrack -L`
// without --zone would not show it.
//
// A flow without a port (people rarely know the client's ephemeral one)
// or an ICMP flow has no full tuple to ask for. Its entries come from
// dumps the kernel filters itself by the known parts (conntrack_dump.go):
// one entry per connection that matches, at most ctDumpCap read, each
// checked again here; on a kernel older than 5.8, which would ignore the
// filter and send the whole table, nothing is asked.
//
// also are other forms of the flow (as NAT rules of this host translate
// it): each is looked up the same way, after the flow itself, so that a
// gateway finds the entry of a flow it translated whichever form was
// typed.
func ProbeConntrack(ctx context.Context, t *Target, f flow.Flow, also ...flow.Flow) *evidence.ConntrackView {
	v := &evidence.ConntrackView{Entries: []evidence.ConntrackEntry{}}
	var start time.Time
	v.Report, start = evidence.Begin("conntrack", "Conntrack entry and statistics")
	defer v.Finish(start)
	v.Command = t.Cmd(ctCommandWords(f)...)
	if err := ctx.Err(); err != nil {
		v.Fail(err) // out of time before starting: ask the kernel nothing
		return v
	}

	release := kernelRelease()
	rounds, why := ctPlan(f, also, release)
	v.Looked = why == ""

	// Netlink calls block in the kernel; run them aside so that a stuck
	// answer cannot hold the caller past its deadline.
	done := make(chan ctResult, 1)
	go func() { done <- ctRun(ctx, int(t.NS()), rounds) }()
	var r ctResult
	select {
	case r = <-done:
	case <-ctx.Done():
		v.Fail(ctx.Err())
		return v
	}
	if r.err != nil {
		if ctx.Err() != nil {
			// The socket was closed under the query because time ran out.
			r.err = ctx.Err()
		}
		v.Fail(r.err)
		return v
	}

	t.gotConntrack.Add(int64(r.received))
	if why != "" {
		v.Add("%s", why)
	}
	if v.Looked && !ctExact(f) {
		v.Add("the flow has no %s: the kernel sent the entries that match the rest of it (a dump it filters itself, as Linux 5.8 and later can): %d found", ctMissing(f), len(r.found))
	}
	if r.unasked > 0 {
		v.Add("time ran out for the filtered dumps (each walks the whole table in the kernel): %d of %d lookups not done", r.unasked, len(rounds))
	}
	if r.unasked > 0 || r.more {
		// An absence not looked for everywhere proves nothing.
		v.Looked = len(r.found) > 0
	}
	for _, m := range r.found {
		e, note := ctentry.Flatten(m.as, m.query, m.flow)
		if m.form != f {
			note = strings.TrimSpace(note + " (found as the flow translated by NAT: " + m.form.String() + ")")
		}
		v.Entries = append(v.Entries, e)
		v.Add("%s", e.Text)
		if note != "" {
			v.Add("%s", note)
		}
	}
	switch {
	case r.more && f.Is6():
		// The kernel filtered by port only (ctFilterOf.flags): other hosts'
		// connections to the port filled the budget too.
		v.Add("more entries match: give the source port to see this flow's own (asym reads at most %d entries of a filtered dump, and for IPv6 the kernel filters by port, not by address)", ctDumpCap)
	case r.more:
		v.Add("more entries match: give the source port to see this flow's own (asym reads at most %d entries of a filtered dump)", ctDumpCap)
	}
	if v.Looked && len(v.Entries) == 0 {
		v.Add("no conntrack entry for the flow (neither direction)")
	}
	v.Stats = ctSum(r.stats)
	v.Count, v.Max = r.global.Entries, r.global.MaxEntries
	s := v.Stats
	v.Add("conntrack -S (summed over %d CPUs): found=%d invalid=%d ignore=%d insert=%d insert_failed=%d drop=%d early_drop=%d error=%d search_restart=%d",
		s.CPUs, s.Found, s.Invalid, s.Ignore, s.Insert, s.InsertFailed, s.Drop, s.EarlyDrop, s.Error, s.SearchRestart)
	v.Add("entries %d of %d", v.Count, v.Max)
	if v.Count == 0 && len(v.Entries) == 0 {
		v.Add("the table is empty: this namespace may not be tracking connections at all (a namespace tracks none until its ruleset uses conntrack: an nft ct expression, NAT, or an iptables state/conntrack match)")
	}
	return v
}

// ctQueryOf is one exact lookup: a tuple to ask for, and the form of the
// flow it stands for (the flow itself, or the flow as NAT translates it).
type ctQueryOf struct {
	form, query flow.Flow
}

// ctRound is one step of the lookup: an exact lookup, or the filtered
// dumps of one form. ctRun stops after the first round that finds an
// entry.
type ctRound struct {
	get   *ctQueryOf
	dumps []ctFilterOf
}

// ctMatch is one entry a lookup found.
type ctMatch struct {
	form flow.Flow // the form of the flow the lookup stood for
	// as is the form as ctentry.Flatten compares it with the entry: the
	// form itself after an exact lookup; after a dump, the entry's own
	// tuple in the form's direction, ports included.
	as    flow.Flow
	query flow.Flow // the tuple that was asked for
	flow  conntrack.Flow
}

type ctResult struct {
	found    []ctMatch
	received int  // entries the kernel sent (all of a dump's, matching or not)
	more     bool // a filtered dump had more entries than asym reads
	unasked  int  // rounds not asked (or cut short) when the dumps' time ran out
	stats    []conntrack.Stats
	global   conntrack.StatsGlobal
	err      error
}

// ctPlan decides what to ask the kernel for the flow and its other forms,
// or says as a sentence why nothing can be asked.
func ctPlan(f flow.Flow, also []flow.Flow, release string) ([]ctRound, string) {
	filtering := ctFilterKernel(release)
	if !ctExact(f) && !filtering {
		if f.Proto == flow.ICMP || f.Proto == flow.ICMPv6 {
			// An ICMP tuple is (type, code, echo id); the id is chosen by the
			// pinging program and a flow does not carry it.
			return nil, fmt.Sprintf("unavailable: this kernel (%s) cannot filter conntrack dumps (5.8+), and conntrack keys %s entries by echo id, type and code, which the flow does not carry: run the command above to list the entries between the two addresses", release, f.Proto)
		}
		return nil, fmt.Sprintf("unavailable: this kernel (%s) cannot filter conntrack dumps (5.8+): give the %s to look up the flow's entry", release, ctMissing(f))
	}
	var rounds []ctRound
	for _, form := range append([]flow.Flow{f}, also...) {
		switch {
		case ctExact(form):
			rounds = append(rounds, ctRound{get: &ctQueryOf{form, form}}, ctRound{get: &ctQueryOf{form, form.Reverse()}})
		case filtering:
			rounds = append(rounds, ctRound{dumps: ctFiltersOf(form)[0]})
		}
	}
	// The reply tuples last, and for the typed flow only: every dump walks
	// the whole table in the kernel (0.4–0.8 µs an entry here), and a form NAT
	// rules give is found by its original tuple where the typed flow is
	// found only by its reply tuple.
	if !ctExact(f) {
		rounds = append(rounds, ctRound{dumps: ctFiltersOf(f)[1]})
	}
	return rounds, ""
}

// ctMissing names what the flow lacks for an exact lookup.
func ctMissing(f flow.Flow) string {
	switch {
	case !ctentry.HasPorts(f.Proto):
		return f.Proto.String() + " echo id"
	case f.Src.Port() == 0 && f.Dst.Port() == 0:
		return "source and destination ports"
	case f.Src.Port() == 0:
		return "source port"
	}
	return "destination port"
}

// ctDumpShare is the part of the probe's time the filtered dumps may take
// (each walks the whole table in the kernel: a second on a table of a few
// million entries). When it runs out, the dump socket is closed and the
// probe still reads the statistics and shows what was found.
var ctDumpShare = 0.75

// ctRun does the netlink work: the rounds in order until one finds an
// entry (or a dump reads its fill), then statistics. It closes its sockets
// when ctx ends, which unblocks a pending receive; the dump socket closes
// earlier, when the dumps' share of the time is spent.
func ctRun(ctx context.Context, nsFD int, rounds []ctRound) (r ctResult) {
	c, err := conntrack.Dial(&netlink.Config{NetNS: nsFD})
	if err != nil {
		r.err = fmt.Errorf("open a conntrack netlink socket: %w", err)
		return r
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		if stop() {
			c.Close()
		}
	}()
	var d *ctDumper
	if slices.ContainsFunc(rounds, func(rd ctRound) bool { return len(rd.dumps) > 0 }) {
		if d, err = dialCtDumper(nsFD); err != nil {
			r.err = err
			return r
		}
		dctx, cancel := ctDumpContext(ctx)
		defer cancel()
		stopDumps := context.AfterFunc(dctx, func() { d.Close() })
		defer func() {
			if stopDumps() {
				d.Close()
			}
		}()
		if r.err = ctAskAll(dctx, c, d, rounds, &r); r.err != nil && dctx.Err() != nil && ctx.Err() == nil {
			r.err = nil // out of the dumps' time: keep what was found (r.unasked says what was not)
		}
	} else {
		r.err = ctAskAll(ctx, c, nil, rounds, &r)
	}
	if r.err != nil {
		return r
	}
	if r.stats, err = c.Stats(); err != nil {
		r.err = fmt.Errorf("read conntrack statistics: %w", err)
		return r
	}
	if r.global, err = c.StatsGlobal(); err != nil {
		r.err = fmt.Errorf("read the conntrack table size: %w", err)
	}
	return r
}

// ctDumpContext ends when the dumps' share of ctx's time is spent.
func ctDumpContext(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	share := time.Duration(float64(time.Until(deadline)) * ctDumpShare)
	return context.WithTimeout(ctx, share)
}

// ctAskAll runs the rounds until one finds an entry or a dump reads its
// fill. A round not started because ctx ended is counted in r.unasked,
// the one it ended in too.
func ctAskAll(ctx context.Context, c *conntrack.Conn, d *ctDumper, rounds []ctRound, r *ctResult) error {
	seen := map[ctEntryKey]bool{}
	for i, rd := range rounds {
		var err error
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case rd.get != nil:
			err = ctGet(c, *rd.get, r)
		default:
			err = ctDumps(d, rd.dumps, seen, r)
		}
		if err != nil {
			r.unasked = len(rounds) - i
			return err
		}
		if r.more {
			d.Close() // stop reading: closing the socket ends the dump in the kernel
			return nil
		}
		if len(r.found) > 0 {
			return nil
		}
	}
	return nil
}

// ctGet is one exact lookup.
func ctGet(c *conntrack.Conn, q ctQueryOf, r *ctResult) error {
	got, err := c.Get(ctQuery(q.query))
	if errors.Is(err, unix.ENOENT) {
		return nil // no such entry: an answer, not a failure
	}
	if err != nil {
		return fmt.Errorf("look up the conntrack entry for %s: %w", q.query, err)
	}
	r.received++
	r.found = append(r.found, ctMatch{form: q.form, as: q.form, query: q.query, flow: got})
	return nil
}

// ctDumps runs one round of filtered dumps and keeps the entries each
// filter matches; an entry two of them return is kept once. Two filters
// that ask the kernel the same (an IPv6 form and its reverse without
// ports: the kernel compares neither addresses nor ports then) share one
// dump.
func ctDumps(d *ctDumper, dumps []ctFilterOf, seen map[ctEntryKey]bool, r *ctResult) error {
	before := d.received
	defer func() { r.received, r.more = r.received+d.received-before, d.more }()
	answers := map[string][]conntrack.Flow{}
	for _, q := range dumps {
		req, err := q.request()
		if err != nil {
			return fmt.Errorf("encode the filtered conntrack dump for %s: %w", q.tuple, err)
		}
		got, asked := answers[string(req.Data)]
		if !asked {
			if d.more {
				return nil
			}
			if got, err = d.dump(req, q.tuple); err != nil {
				return err
			}
			answers[string(req.Data)] = got
		}
		for _, fl := range got {
			if k := ctKey(fl); q.matches(fl) && !seen[k] {
				seen[k] = true
				as := q.formTuple(fl)
				r.found = append(r.found, ctMatch{form: q.form, as: as, query: as, flow: fl})
			}
		}
	}
	return nil
}

// ctQuery builds the tuple to ask for. Only TupleOrig is set: the kernel
// matches it against both directions of each entry (see ProbeConntrack).
// Zone stays 0, the default zone.
func ctQuery(f flow.Flow) conntrack.Flow {
	var q conntrack.Flow
	q.TupleOrig.IP.SourceAddress = f.Src.Addr()
	q.TupleOrig.IP.DestinationAddress = f.Dst.Addr()
	q.TupleOrig.Proto.Protocol = uint8(f.Proto)
	q.TupleOrig.Proto.SourcePort = f.Src.Port()
	q.TupleOrig.Proto.DestinationPort = f.Dst.Port()
	return q
}

// ctCommandWords is the conntrack command a person would type to see the
// entry (without the namespace prefix).
func ctCommandWords(f flow.Flow) []string {
	w := []string{"conntrack", "-L"}
	if f.Is6() {
		w = append(w, "-f", "ipv6") // conntrack -L lists IPv4 only by default
	}
	proto := f.Proto.String()
	if ctentry.ProtoName(uint8(f.Proto)) == "unknown" {
		proto = strconv.Itoa(int(f.Proto)) // conntrack -p takes a number for protocols it cannot name
	}
	w = append(w, "-p", proto, "--src", f.Src.Addr().String(), "--dst", f.Dst.Addr().String())
	if ctentry.HasPorts(f.Proto) {
		if p := f.Src.Port(); p != 0 {
			w = append(w, "--sport", strconv.Itoa(int(p)))
		}
		if p := f.Dst.Port(); p != 0 {
			w = append(w, "--dport", strconv.Itoa(int(p)))
		}
	}
	return w
}

// ctSum adds up the per-CPU statistics.
func ctSum(per []conntrack.Stats) evidence.ConntrackStats {
	s := evidence.ConntrackStats{CPUs: len(per)}
	for _, c := range per {
		s.Found += uint64(c.Found)
		s.Invalid += uint64(c.Invalid)
		s.Ignore += uint64(c.Ignore)
		s.Insert += uint64(c.Insert)
		s.InsertFailed += uint64(c.InsertFailed)
		s.Drop += uint64(c.Drop)
		s.EarlyDrop += uint64(c.EarlyDrop)
		s.Error += uint64(c.Error)
		s.SearchRestart += uint64(c.SearchRestart)
	}
	return s
}

package probes

import (
	"context"
	"errors"
	"fmt"
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
// It never dumps the table (a busy host holds a million entries): it asks
// the kernel for the flow's tuple, and for the reverse tuple if that finds
// nothing. The kernel's lookup (ctnetlink_get_conntrack →
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

	var queries []ctQueryOf
	why := ctUnlookable(f)
	if why == "" {
		v.Looked = true
		for _, form := range append([]flow.Flow{f}, also...) {
			queries = append(queries, ctQueryOf{form, form}, ctQueryOf{form, form.Reverse()})
		}
	}

	// Netlink calls block in the kernel; run them aside so that a stuck
	// answer cannot hold the caller past its deadline.
	done := make(chan ctResult, 1)
	go func() { done <- ctRun(ctx, int(t.NS()), queries) }()
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

	t.gotConntrack.Add(int64(len(r.found)))
	if why != "" {
		v.Add("%s", why)
	}
	for _, m := range r.found {
		e, note := ctentry.Flatten(m.form, m.query, m.flow)
		if m.form != f {
			note = strings.TrimSpace(note + " (found as the flow translated by NAT: " + m.form.String() + ")")
		}
		v.Entries = append(v.Entries, e)
		v.Add("%s", e.Text)
		if note != "" {
			v.Add("%s", note)
		}
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

// ctQueryOf is one lookup: a tuple to ask for, and the form of the flow it
// stands for (the flow itself, or the flow as NAT translates it).
type ctQueryOf struct {
	form, query flow.Flow
}

// ctMatch is one lookup that found an entry.
type ctMatch struct {
	form  flow.Flow // the form of the flow the query stood for
	query flow.Flow // the tuple that was asked for
	flow  conntrack.Flow
}

type ctResult struct {
	found  []ctMatch
	stats  []conntrack.Stats
	global conntrack.StatsGlobal
	err    error
}

// ctRun does the netlink work: lookups in order until one finds an entry,
// then statistics. It closes its socket when ctx ends, which unblocks a
// pending receive.
func ctRun(ctx context.Context, nsFD int, queries []ctQueryOf) (r ctResult) {
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

	for _, q := range queries {
		got, err := c.Get(ctQuery(q.query))
		if errors.Is(err, unix.ENOENT) {
			continue // no such entry: an answer, not a failure
		}
		if err != nil {
			r.err = fmt.Errorf("look up the conntrack entry for %s: %w", q.query, err)
			return r
		}
		r.found = append(r.found, ctMatch{form: q.form, query: q.query, flow: got})
		break
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

// ctUnlookable says, as a sentence, why the flow cannot be looked up by
// tuple, or "" when it can.
func ctUnlookable(f flow.Flow) string {
	switch {
	case ctentry.HasPorts(f.Proto) && (f.Src.Port() == 0 || f.Dst.Port() == 0):
		return "the flow has no ports: give SRC:PORT and DST:PORT to look up its conntrack entry"
	case f.Proto == flow.ICMP || f.Proto == flow.ICMPv6:
		// An ICMP tuple is (type, code, echo id); the id is chosen by the
		// pinging program and a flow does not carry it.
		return "conntrack keys " + f.Proto.String() + " entries by echo id, type and code, which the flow does not carry: run the command above to list the entries between the two addresses"
	}
	return ""
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

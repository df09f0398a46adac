package firewall

// One table's sets and named counters, read once when a rule needs them,
// and the rules of the kinds asym reports.

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"asym/evidence"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftErr gives the "nf_tables is missing" case its own sentence; Classify
// handles the rest (EPERM: needs root).
func nftErr(op string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		// nfnetlink answers EOPNOTSUPP for a subsystem it has no module
		// for (nfnetlink_rcv_msg after a failed request_module).
		return evidence.Unavailable("nf_tables is not available in this kernel (module nf_tables not loaded), so the nftables ruleset cannot be read (%s: %v)", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// tableKey names a table as nft and asym's output do: "inet filter".
func tableKey(tb *nftables.Table) string { return familyName(tb.Family) + " " + tb.Name }

// tableReader reads rules of one table. It reads the table's sets and
// named counters only when a rule needs them, each once.
type tableReader struct {
	c        *nftables.Conn
	tb       *nftables.Table
	sets     map[string]nftSet
	counters map[string]*expr.Counter // named counters; nil until a rule uses one
	notes    []string                 // what could not be read, as sentences
	counted  *evidence.FirewallRead   // counts the requests, when set
}

func newTableReader(c *nftables.Conn, tb *nftables.Table) *tableReader {
	return &tableReader{c: c, tb: tb, sets: map[string]nftSet{}}
}

// set is the table's setReader. A set that cannot be read is a note, and
// is asked for again by the next rule that needs it.
func (tr *tableReader) set(name string) (nftSet, bool) {
	if s, ok := tr.sets[name]; ok {
		return s, true
	}
	s, err := readSet(tr.c, tr.tb, name)
	if tr.counted != nil {
		tr.counted.Requests += 2 // the set, then its elements
		tr.counted.Sets++
	}
	if err != nil {
		tr.notes = append(tr.notes, fmt.Sprintf("could not read set %s in table %s: %v", name, tableKey(tr.tb), err))
		return nftSet{}, false
	}
	tr.sets[name] = s
	return s, true
}

// namedCounter is one of the table's named counters (`counter name "x"`).
func (tr *tableReader) namedCounter(name string) (*expr.Counter, bool) {
	if tr.counters == nil {
		tr.counters = readNamedCounters(tr.c, tr.tb)
		if tr.counted != nil {
			tr.counted.Requests++
		}
	}
	ctr, ok := tr.counters[name]
	return ctr, ok
}

// rule makes evidence of r when it matters: a ct-invalid, reverse-path
// or ICMP-error match, where it sits, and the counter that counts what it
// selected.
func (tr *tableReader) rule(c *pathChain, r *rawRule) (evidence.FirewallRule, bool) {
	sc := scanRule(tr.tb.Family, r.all(), tr.set)
	if sc.kind == "" {
		return evidence.FirewallRule{}, false
	}
	fr := evidence.FirewallRule{
		Source: sc.source, Family: familyName(tr.tb.Family), Table: tr.tb.Name, Chain: c.name,
		Hook: c.hook, Priority: c.priority, Handle: r.handle, Kind: sc.kind, Verdict: sc.verdict, Text: sc.text,
	}
	tr.count(&fr, sc)
	return fr, true
}

// count gives the rule its counter: the rule's own, or a named one, whose
// numbers then go into the text as well (nft list shows only the name).
func (tr *tableReader) count(fr *evidence.FirewallRule, sc scan) {
	if sc.counter != nil {
		fr.HasCounter, fr.Packets, fr.Bytes = true, sc.counter.Packets, sc.counter.Bytes
		return
	}
	if sc.counterName == "" {
		return
	}
	ctr, ok := tr.namedCounter(sc.counterName)
	if !ok {
		return
	}
	fr.HasCounter, fr.Packets, fr.Bytes = true, ctr.Packets, ctr.Bytes
	ref := "counter name " + strconv.Quote(sc.counterName)
	fr.Text = strings.Replace(fr.Text, ref, fmt.Sprintf("%s (packets %d bytes %d)", ref, ctr.Packets, ctr.Bytes), 1)
}

// readNamedCounters reads a table's named counters. Failure only loses the
// numbers, so it is not an error.
func readNamedCounters(c *nftables.Conn, tb *nftables.Table) map[string]*expr.Counter {
	out := map[string]*expr.Counter{}
	objs, err := c.GetNamedObjects(tb)
	if err != nil {
		return out
	}
	for _, o := range objs {
		if n, ok := o.(*nftables.NamedObj); ok && n.Type == nftables.ObjTypeCounter {
			if ctr, ok := n.Obj.(*expr.Counter); ok {
				out[n.Name] = ctr
			}
		}
	}
	return out
}

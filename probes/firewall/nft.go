package firewall

// Listing the nftables ruleset, table by table, within the caller's
// deadline.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// nftResult is one listing of the nftables ruleset.
type nftResult struct {
	tables   int
	rules    []evidence.FirewallRule
	nat      []evidence.NATRule  // the NAT rules that can translate the flow
	natOther int                 // and how many cannot
	marks    []evidence.MarkRule // the rules that set packet or connection marks
	headers  map[string]string   // groupKey -> chain header line
	notes    []string            // what could not be read, as sentences
}

// listBounded lists on its own goroutine so that a kernel that does not
// answer cannot hold the caller past its deadline. The goroutine works on a
// duplicate of the namespace descriptor: if we give up and the caller then
// closes the namespace, the abandoned goroutine must not enter whatever
// namespace (or file) reuses that descriptor number.
func listBounded(ctx context.Context, ns Namespace, f flow.Flow) (nftResult, error) {
	fd, err := unix.FcntlInt(uintptr(ns.NS()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nftResult{}, fmt.Errorf("duplicate the namespace descriptor of %s: %w", ns, err)
	}
	type result struct {
		r   nftResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer unix.Close(fd)
		r, err := list(fd, f)
		if err != nil {
			if st, _ := evidence.Classify(err); st == evidence.StatusFailed {
				// A ruleset reloaded while we walk it (firewalld does a
				// flush-and-load) makes a chain or set vanish between
				// the listing and GetRules: list once more.
				r, err = list(fd, f)
			}
		}
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-ctx.Done():
		return nftResult{}, ctx.Err()
	}
}

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

// list reads tables, chains and rules through nfnetlink inside the
// namespace fd. Only GET requests are sent: NFT_MSG_GETRULE (never
// GETRULE_RESET) and NFT_MSG_GETOBJ (never GETOBJ_RESET), so counters stay.
// The chains come in one dump for all tables, in the kernel's order (table
// by table, as the tables are listed), and are read table by table.
func list(nsfd int, f flow.Flow) (nftResult, error) {
	res := nftResult{headers: map[string]string{}}
	c, err := nftables.New(nftables.WithNetNSFd(nsfd))
	if err != nil {
		return res, nftErr("open nftables", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return res, nftErr("list nftables tables", err)
	}
	res.tables = len(tables)
	if len(tables) == 0 {
		return res, nil
	}
	chains, err := c.ListChains()
	if err != nil {
		return res, nftErr("list nftables chains", err)
	}
	byTable := map[string][]*nftables.Chain{}
	for _, ch := range chains {
		byTable[tableKey(ch.Table)] = append(byTable[tableKey(ch.Table)], ch)
	}
	for _, tb := range tables {
		if err := listTable(c, tb, byTable[tableKey(tb)], f, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// tableKey names a table as nft and asym's output do: "inet filter".
func tableKey(tb *nftables.Table) string { return familyName(tb.Family) + " " + tb.Name }

// listTable adds the rules of one table's chains that matter, and their
// chains' headers, to res.
func listTable(c *nftables.Conn, tb *nftables.Table, chains []*nftables.Chain, f flow.Flow, res *nftResult) error {
	tr := newTableReader(c, tb)
	// NFT_TABLE_F_DORMANT: the table exists but none of its chains are
	// hooked, so its rules drop nothing.
	dormant := tb.Flags&unix.NFT_TABLE_F_DORMANT != 0
	for _, ch := range chains {
		rules, err := c.GetRules(tb, ch)
		if err != nil {
			return nftErr(fmt.Sprintf("list the rules of chain %s %s", tableKey(tb), ch.Name), err)
		}
		for _, r := range rules {
			tr.nat(ch, r, f, res)
			res.marks = append(res.marks, markRulesOf(tb, ch, r)...)
			fr, ok := tr.rule(ch, r)
			if !ok {
				continue
			}
			res.rules = append(res.rules, fr)
			if key := groupKey(fr); res.headers[key] == "" {
				res.headers[key] = nftChainHeader(fr, chainPolicy(ch), ch.Device, dormant)
			}
		}
	}
	res.notes = append(res.notes, tr.notes...)
	return nil
}

// tableReader reads rules of one table. It reads the table's sets and
// named counters only when a rule needs them, each once.
type tableReader struct {
	c        *nftables.Conn
	tb       *nftables.Table
	sets     map[string]nftSet
	counters map[string]*expr.Counter // named counters; nil until a rule uses one
	notes    []string                 // what could not be read, as sentences
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
	}
	ctr, ok := tr.counters[name]
	return ctr, ok
}

// rule makes evidence of r when it matters: a ct-invalid or reverse-path
// match, where it sits, and the counter that counts what it selected.
func (tr *tableReader) rule(ch *nftables.Chain, r *nftables.Rule) (evidence.FirewallRule, bool) {
	sc := scanRule(tr.tb.Family, r.Exprs, tr.set)
	if sc.kind == "" {
		return evidence.FirewallRule{}, false
	}
	fr := evidence.FirewallRule{
		Source: sc.source, Family: familyName(tr.tb.Family), Table: tr.tb.Name, Chain: ch.Name,
		Handle: r.Handle, Kind: sc.kind, Verdict: sc.verdict, Text: sc.text,
	}
	if ch.Hooknum != nil {
		fr.Hook = hookName(tr.tb.Family, uint32(*ch.Hooknum))
	}
	if ch.Priority != nil {
		fr.Priority = int(*ch.Priority)
	}
	tr.count(&fr, sc)
	return fr, true
}

// nat adds r to the NAT rules of res when it translates the flow, or
// counts it among the others.
func (tr *tableReader) nat(ch *nftables.Chain, r *nftables.Rule, f flow.Flow, res *nftResult) {
	nr, ok := natRule(tr.tb.Family, r.Exprs)
	if !ok {
		return
	}
	if !natConcerns(nr, f) {
		res.natOther++
		return
	}
	nr.Source, nr.Family, nr.Table, nr.Chain, nr.Handle = evidence.SourceNftables, familyName(tr.tb.Family), tr.tb.Name, ch.Name, r.Handle
	if ch.Hooknum != nil {
		nr.Hook = hookName(tr.tb.Family, uint32(*ch.Hooknum))
	}
	if ch.Priority != nil {
		nr.Priority = int(*ch.Priority)
	}
	res.nat = append(res.nat, nr)
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

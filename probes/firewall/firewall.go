package probes

import (
	"asym/evidence"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	fwKindCtInvalid = "ct_invalid"
	fwKindRPFilter  = "fib_rpfilter"
	fwSourceNft     = "nftables"
	fwSourceXt      = "iptables-nft"
	fwSourceLegacy  = "iptables-legacy"
)

// ProbeFirewall lists the nftables ruleset of the target namespace (and, when
// present, its iptables-legacy tables) and reports every rule matching
// `ct state invalid` or doing a fib reverse-path check, with its counters.
// It only reads: listing rules does not reset their counters, and it never
// runs iptables-legacy -L/-S, which would create tables.
func ProbeFirewall(ctx context.Context, t *Target) *evidence.FirewallView {
	rep, start := evidence.Begin("firewall", "Firewall: ct state invalid and reverse-path rules")
	v := &evidence.FirewallView{Report: rep}
	defer v.Finish(start)
	v.Command = t.Cmd("nft", "list", "ruleset")
	if err := ctx.Err(); err != nil {
		v.Fail(err)
		return v
	}

	nft, nftErr := listNftBounded(ctx, t)
	if ctx.Err() != nil {
		v.Fail(ctx.Err())
		return v
	}
	if nftErr == nil {
		v.Tables = nft.tables
		v.Rules = nft.rules
		v.Lines = append(v.Lines, renderFirewallLines(nft.rules, nft.headers)...)
		v.Lines = append(v.Lines, nft.notes...)
		if len(nft.rules) == 0 {
			v.Lines = append(v.Lines, fwNoRulesLine(nft.tables))
		}
	}
	// Legacy tables are looked at even when nftables cannot be read: a
	// kernel without nf_tables may well filter with x_tables. The status
	// still says nftables was not readable.
	if err := probeLegacy(ctx, v, t); err != nil {
		v.Fail(err)
		return v
	}
	v.Fail(nftErr)
	return v
}

// fwNoRulesLine says that nftables holds nothing of interest.
func fwNoRulesLine(tables int) string {
	switch tables {
	case 0:
		return "no nftables tables: nothing here filters with nftables"
	case 1:
		return "no ct state invalid or fib reverse-path rules in 1 nftables table"
	}
	return fmt.Sprintf("no ct state invalid or fib reverse-path rules in %d nftables tables", tables)
}

// fwNftResult is one listing of the nftables ruleset.
type fwNftResult struct {
	tables  int
	rules   []evidence.FirewallRule
	headers map[string]string // fwGroupKey -> chain header line
	notes   []string          // what could not be read, as sentences
}

// listNftBounded lists on its own goroutine so that a kernel that does not
// answer cannot hold the caller past its deadline. The goroutine works on a
// duplicate of the namespace descriptor: if we give up and the caller then
// closes the Target, the abandoned goroutine must not enter whatever
// namespace (or file) reuses that descriptor number.
func listNftBounded(ctx context.Context, t *Target) (fwNftResult, error) {
	fd, err := unix.FcntlInt(uintptr(t.NS()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return fwNftResult{}, fmt.Errorf("duplicate the namespace descriptor of %s: %w", t, err)
	}
	type result struct {
		r   fwNftResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer unix.Close(fd)
		r, err := listNft(fd)
		if err != nil {
			if st, _ := evidence.Classify(err); st == evidence.StatusFailed {
				// A ruleset reloaded while we walk it (firewalld does a
				// flush-and-load) makes a chain or set vanish between
				// the listing and GetRules: list once more.
				r, err = listNft(fd)
			}
		}
		done <- result{r, err}
	}()
	select {
	case res := <-done:
		return res.r, res.err
	case <-ctx.Done():
		return fwNftResult{}, ctx.Err()
	}
}

// fwNftErr gives the "nf_tables is missing" case its own sentence; Classify
// handles the rest (EPERM: needs root).
func fwNftErr(op string, err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT) {
		// nfnetlink answers EOPNOTSUPP for a subsystem it has no module
		// for (nfnetlink_rcv_msg after a failed request_module).
		return evidence.Unavailable("nf_tables is not available in this kernel (module nf_tables not loaded), so the nftables ruleset cannot be read (%s: %v)", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// listNft reads tables, chains and rules through nfnetlink inside the
// namespace fd. Only GET requests are sent: NFT_MSG_GETRULE (never
// GETRULE_RESET) and NFT_MSG_GETOBJ (never GETOBJ_RESET), so counters stay.
func listNft(nsfd int) (fwNftResult, error) {
	res := fwNftResult{headers: map[string]string{}}
	c, err := nftables.New(nftables.WithNetNSFd(nsfd))
	if err != nil {
		return res, fwNftErr("open nftables", err)
	}
	tables, err := c.ListTables()
	if err != nil {
		return res, fwNftErr("list nftables tables", err)
	}
	res.tables = len(tables)
	if len(tables) == 0 {
		return res, nil
	}
	dormant := map[string]bool{}
	for _, tb := range tables {
		// NFT_TABLE_F_DORMANT: the table exists but none of its chains
		// are hooked, so its rules drop nothing.
		if tb.Flags&unix.NFT_TABLE_F_DORMANT != 0 {
			dormant[fwFamilyName(tb.Family)+" "+tb.Name] = true
		}
	}
	chains, err := c.ListChains()
	if err != nil {
		return res, fwNftErr("list nftables chains", err)
	}

	sets := map[string]fwSet{}
	counters := map[string]map[string]*expr.Counter{}
	for _, ch := range chains {
		tb := ch.Table
		fam := fwFamilyName(tb.Family)
		rules, err := c.GetRules(tb, ch)
		if err != nil {
			return res, fwNftErr(fmt.Sprintf("list the rules of chain %s %s %s", fam, tb.Name, ch.Name), err)
		}
		lookup := func(name string) (fwSet, bool) {
			key := fam + " " + tb.Name + " " + name
			if s, ok := sets[key]; ok {
				return s, true
			}
			s, err := readFwSet(c, tb, name)
			if err != nil {
				res.notes = append(res.notes, fmt.Sprintf("could not read set %s in table %s %s: %v", name, fam, tb.Name, err))
				return fwSet{}, false
			}
			sets[key] = s
			return s, true
		}
		for _, r := range rules {
			sc := scanFirewallRule(tb.Family, r.Exprs, lookup)
			if sc.kind == "" {
				continue
			}
			fr := evidence.FirewallRule{
				Source: sc.source, Family: fam, Table: tb.Name, Chain: ch.Name,
				Handle: r.Handle, Kind: evidence.FirewallRuleKind(sc.kind), Verdict: sc.verdict, Text: sc.text,
			}
			if ch.Hooknum != nil {
				fr.Hook = fwHookName(tb.Family, uint32(*ch.Hooknum))
			}
			if ch.Priority != nil {
				fr.Priority = int(*ch.Priority)
			}
			if sc.counter != nil {
				fr.HasCounter, fr.Packets, fr.Bytes = true, sc.counter.Packets, sc.counter.Bytes
			} else if sc.counterName != "" {
				tk := fam + " " + tb.Name
				if counters[tk] == nil {
					counters[tk] = readFwCounters(c, tb)
				}
				if ctr, ok := counters[tk][sc.counterName]; ok {
					fr.HasCounter, fr.Packets, fr.Bytes = true, ctr.Packets, ctr.Bytes
					ref := "counter name " + strconv.Quote(sc.counterName)
					fr.Text = strings.Replace(fr.Text, ref, fmt.Sprintf("%s (packets %d bytes %d)", ref, ctr.Packets, ctr.Bytes), 1)
				}
			}
			res.rules = append(res.rules, fr)
			key := fwGroupKey(fr)
			if _, ok := res.headers[key]; !ok {
				policy := ""
				if ch.Policy != nil {
					policy = fwPolicyName(*ch.Policy)
				}
				res.headers[key] = fwNftChainHeader(fr, policy, ch.Device, dormant[fam+" "+tb.Name])
			}
		}
	}
	return res, nil
}

// readFwSet fetches a set's elements, for `ct state { … }` and
// `ct state vmap { … }` rules (firewalld ≥ 1.0 writes
// `ct state vmap { invalid : drop, established : accept, related : accept }`).
func readFwSet(c *nftables.Conn, tb *nftables.Table, name string) (fwSet, error) {
	s, err := c.GetSetByName(tb, name)
	if err != nil {
		return fwSet{}, err
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return fwSet{}, err
	}
	fs := fwSet{anonymous: s.Anonymous || strings.HasPrefix(name, "__")}
	for _, e := range els {
		if e.IntervalEnd {
			continue
		}
		fe := fwSetElem{key: e.Key, counter: e.Counter}
		if len(e.Val) > 0 {
			fe.verdict = fwDecodeVerdictData(e.Val)
		}
		fs.elems = append(fs.elems, fe)
	}
	return fs, nil
}

// fwDecodeVerdictData decodes a verdict map element's data. google/nftables
// v0.3.0 leaves it as the raw NFTA_DATA_VERDICT payload (SetElement.Val,
// VerdictData stays nil): nested NFTA_VERDICT_CODE (big-endian s32) and,
// for jump/goto, NFTA_VERDICT_CHAIN.
func fwDecodeVerdictData(b []byte) string {
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ""
	}
	var code int32
	var chain string
	seen := false
	for ad.Next() {
		switch ad.Type() {
		case unix.NFTA_VERDICT_CODE:
			if v := ad.Bytes(); len(v) == 4 {
				code, seen = int32(binaryutil.BigEndian.Uint32(v)), true
			}
		case unix.NFTA_VERDICT_CHAIN:
			chain = ad.String()
		}
	}
	if ad.Err() != nil || !seen {
		return ""
	}
	return fwVerdict(expr.VerdictKind(code), chain)
}

// readFwCounters reads a table's named counters (for `counter name "x"`).
// Failure only loses the numbers, so it is not an error.
func readFwCounters(c *nftables.Conn, tb *nftables.Table) map[string]*expr.Counter {
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

// fwSet is what the rule scanner needs to know about a set a rule looks up.
type fwSet struct {
	anonymous bool
	elems     []fwSetElem
}

type fwSetElem struct {
	key     []byte
	verdict string        // verdict maps only
	counter *expr.Counter // sets with per-element counters only
}

// fwScan is what scanFirewallRule made of a rule's expressions.
type fwScan struct {
	kind, source string
	verdict      string
	counter      *expr.Counter // counts only what the recognised match selected
	counterName  string        // a named counter that does the same
	text         string
}

// fwCtInvalid is the ct state value of a packet conntrack could not place
// (NF_CT_STATE_INVALID_BIT). ct state is one bit of a bitmask, so a
// packet's state register holds exactly this value when it is invalid.
const fwCtInvalid = expr.CtStateBitINVALID

var fwNative = binaryutil.NativeEndian

// scanFirewallRule recognises a ct-invalid or reverse-path rule and renders
// it nft-style. It is pure: the only outside knowledge, set contents, comes
// through set (which may be nil).
//
// A ct state match is recognised by evaluating it for an invalid packet
// rather than by pattern: the state register then holds 1, so
// `ct state invalid,new` (Bitwise 9, Cmp != 0) and `ct state != established`
// (Bitwise 2, Cmp == 0) both match it, `ct state established,related` does not.
// A counter is attributed to the match only when it comes after it: a counter
// placed before counts every packet the rule sees.
func scanFirewallRule(fam nftables.TableFamily, exprs []expr.Any, set func(name string) (fwSet, bool)) fwScan {
	var sc fwScan
	var toks []string
	push := func(tok string) {
		if tok == "…" && len(toks) > 0 && toks[len(toks)-1] == "…" {
			return
		}
		if len(toks) > 0 {
			prev := toks[len(toks)-1]
			switch {
			// nft hides the protocol dependency it adds itself:
			// `tcp dport 22` is meta l4proto tcp + th dport.
			case strings.HasPrefix(prev, "meta l4proto ") && strings.HasPrefix(tok, "th "):
				toks[len(toks)-1] = strings.TrimPrefix(prev, "meta l4proto ") + strings.TrimPrefix(tok, "th")
				return
			case prev == "meta nfproto ipv4" && strings.HasPrefix(tok, "ip "),
				prev == "meta nfproto ipv6" && strings.HasPrefix(tok, "ip6 "):
				toks[len(toks)-1] = tok
				return
			}
		}
		toks = append(toks, tok)
	}
	found := func(kind, source string) {
		if sc.kind == "" {
			sc.kind, sc.source = kind, source
		}
	}
	for i := 0; i < len(exprs); i++ {
		switch e := exprs[i].(type) {
		case *expr.Ct:
			if e.SourceRegister || e.Key != expr.CtKeySTATE {
				push("…")
				continue
			}
			m := fwCtState(exprs[i+1:], e.Register, set)
			i += m.used
			push(m.text)
			if m.matches {
				found(fwKindCtInvalid, fwSourceNft)
				if m.verdict != "" {
					sc.verdict = m.verdict
				}
				if m.counter != nil && sc.counter == nil {
					sc.counter = m.counter
				}
			}
		case *expr.Fib:
			used, text, rpf := fwFib(exprs[i+1:], e)
			i += used
			push(text)
			if rpf {
				found(fwKindRPFilter, fwSourceNft)
			}
		case *expr.Match:
			text, kind := fwXtMatch(e)
			push(text)
			if kind != "" {
				found(kind, fwSourceXt)
			}
		case *expr.Meta:
			if used, text := fwMetaCond(exprs[i+1:], e); used > 0 {
				i += used
				push(text)
			} else {
				push("…")
			}
		case *expr.Payload:
			if used, text := fwPayloadCond(fam, exprs[i+1:], e); used > 0 {
				i += used
				push(text)
			} else {
				push("…")
			}
		case *expr.Counter:
			push(fmt.Sprintf("counter packets %d bytes %d", e.Packets, e.Bytes))
			if sc.kind != "" && sc.counter == nil && sc.counterName == "" {
				sc.counter = e
			}
		case *expr.Objref:
			if e.Type != unix.NFT_OBJECT_COUNTER {
				push("…")
				continue
			}
			push("counter name " + strconv.Quote(e.Name))
			if sc.kind != "" && sc.counter == nil && sc.counterName == "" {
				sc.counterName = e.Name
			}
		case *expr.Log:
			push("log")
		case *expr.Verdict:
			if v := fwVerdict(e.Kind, e.Chain); v != "" {
				push(v)
				sc.verdict = v
			}
		case *expr.Reject:
			push("reject")
			sc.verdict = "reject"
		case *expr.Target:
			switch e.Name {
			case "REJECT":
				push("reject")
				sc.verdict = "reject"
			case "LOG", "NFLOG":
				push("log")
			default:
				push("xt target " + strconv.Quote(e.Name))
			}
		default:
			push("…")
		}
	}
	if sc.kind == "" {
		return fwScan{}
	}
	sc.text = strings.Join(toks, " ")
	return sc
}

// fwCtMatch is one `ct state …` condition.
type fwCtMatch struct {
	used    int // expressions consumed after the Ct load
	text    string
	matches bool // an invalid packet satisfies it
	verdict string
	counter *expr.Counter
}

// fwCtState reads what follows a `ct state` load into reg.
func fwCtState(rest []expr.Any, reg uint32, set func(string) (fwSet, bool)) fwCtMatch {
	if len(rest) >= 2 {
		bw, ok1 := rest[0].(*expr.Bitwise)
		cmp, ok2 := rest[1].(*expr.Cmp)
		if ok1 && ok2 && bw.SourceRegister == reg && len(bw.Mask) == 4 && cmp.Register == bw.DestRegister &&
			len(cmp.Data) == 4 && (cmp.Op == expr.CmpOpEq || cmp.Op == expr.CmpOpNeq) {
			mask, xor, val := fwNative.Uint32(bw.Mask), uint32(0), fwNative.Uint32(cmp.Data)
			if len(bw.Xor) == 4 {
				xor = fwNative.Uint32(bw.Xor)
			}
			m := fwCtMatch{used: 2, matches: ((fwCtInvalid&mask)^xor == val) == (cmp.Op == expr.CmpOpEq)}
			switch {
			case xor == 0 && val == 0 && cmp.Op == expr.CmpOpNeq:
				m.text = "ct state " + fwCtStateNames(mask)
			case xor == 0 && val == 0:
				m.text = "ct state != " + fwCtStateNames(mask)
			default:
				m.text = fmt.Sprintf("ct state & 0x%x ^ 0x%x %s 0x%x", mask, xor, fwCmpOp(cmp.Op), val)
			}
			return m
		}
	}
	if len(rest) >= 1 {
		switch n := rest[0].(type) {
		case *expr.Cmp:
			if n.Register == reg && len(n.Data) == 4 && (n.Op == expr.CmpOpEq || n.Op == expr.CmpOpNeq) {
				val := fwNative.Uint32(n.Data)
				return fwCtMatch{used: 1, matches: (val == fwCtInvalid) == (n.Op == expr.CmpOpEq),
					text: "ct state " + fwCmpOp(n.Op) + " " + fwCtStateNames(val)}
			}
		case *expr.Lookup:
			if n.SourceRegister == reg {
				return fwCtLookup(n, set)
			}
		}
	}
	return fwCtMatch{text: "ct state …"}
}

// fwCtLookup handles `ct state { … }` and `ct state vmap { … }`.
func fwCtLookup(l *expr.Lookup, set func(string) (fwSet, bool)) fwCtMatch {
	vmap := l.IsDestRegSet && l.DestRegister == unix.NFT_REG_VERDICT
	if l.IsDestRegSet && !vmap {
		return fwCtMatch{used: 1, text: "ct state map …"} // a data map: not a condition
	}
	prefix := "ct state "
	if vmap {
		prefix += "vmap "
	} else if l.Invert {
		prefix += "!= "
	}
	var s fwSet
	ok := false
	if set != nil {
		s, ok = set(l.SetName)
	}
	if !ok {
		return fwCtMatch{used: 1, text: prefix + "@" + l.SetName}
	}
	elems := slices.Clone(s.elems)
	slices.SortFunc(elems, func(a, b fwSetElem) int { return cmp.Compare(fwKey32(a.key), fwKey32(b.key)) })
	m := fwCtMatch{used: 1}
	var parts []string
	hit := false
	for _, e := range elems {
		k := fwKey32(e.key)
		p := fwCtStateNames(k)
		if vmap {
			p += " : " + e.verdict
		}
		parts = append(parts, p)
		if k == fwCtInvalid {
			hit = true
			m.verdict, m.counter = e.verdict, e.counter
		}
	}
	if s.anonymous {
		m.text = prefix + "{ " + strings.Join(parts, ", ") + " }"
	} else {
		m.text = prefix + "@" + l.SetName
	}
	if vmap {
		m.matches = hit && m.verdict != ""
	} else {
		m.matches = hit != l.Invert
		m.verdict = ""
	}
	if !m.matches {
		m.verdict, m.counter = "", nil
	}
	return m
}

func fwKey32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return fwNative.Uint32(b)
}

// fwCtStateNames renders a ct state bitmask the way nft does. xt_conntrack
// uses the same bits, plus snat and dnat.
func fwCtStateNames(mask uint32) string {
	names := []struct {
		bit  uint32
		name string
	}{
		{expr.CtStateBitINVALID, "invalid"}, {expr.CtStateBitESTABLISHED, "established"},
		{expr.CtStateBitRELATED, "related"}, {expr.CtStateBitNEW, "new"},
		{expr.CtStateBitUNTRACKED, "untracked"}, {1 << 8, "snat"}, {1 << 9, "dnat"},
	}
	var out []string
	for _, n := range names {
		if mask&n.bit != 0 {
			out = append(out, n.name)
			mask &^= n.bit
		}
	}
	if mask != 0 || len(out) == 0 {
		out = append(out, fmt.Sprintf("0x%x", mask))
	}
	return strings.Join(out, ",")
}

func fwCmpOp(op expr.CmpOp) string {
	switch op {
	case expr.CmpOpEq:
		return "=="
	case expr.CmpOpNeq:
		return "!="
	case expr.CmpOpLt:
		return "<"
	case expr.CmpOpLte:
		return "<="
	case expr.CmpOpGt:
		return ">"
	case expr.CmpOpGte:
		return ">="
	}
	return "?"
}

// fwFib reads `fib … oif missing` and friends. A reverse-path check looks
// up the packet's source (saddr, reply direction) and asks for the output
// interface: `missing` (NFTA_FIB_F_PRESENT + Cmp == 0, 1-byte register) or
// `0` (Cmp == 0 on the 4-byte ifindex) means "no route back". With iif it
// is strict (the route back must leave through the input interface), as
// firewalld and the nft wiki write it; without iif it is loose. mark
// (firewalld: `fib saddr . mark . iif oif missing`) only selects policy
// routing by fwmark.
func fwFib(rest []expr.Any, f *expr.Fib) (used int, text string, rpf bool) {
	var keys []string
	for _, k := range []struct {
		on   bool
		name string
	}{{f.FlagSADDR, "saddr"}, {f.FlagDADDR, "daddr"}, {f.FlagMARK, "mark"}, {f.FlagIIF, "iif"}, {f.FlagOIF, "oif"}} {
		if k.on {
			keys = append(keys, k.name)
		}
	}
	result := "…"
	switch {
	case f.ResultOIF:
		result = "oif"
	case f.ResultOIFNAME:
		result = "oifname"
	case f.ResultADDRTYPE:
		result = "type"
	}
	text = "fib " + strings.Join(keys, " . ") + " " + result
	if len(rest) == 0 {
		return 0, text + " …", false
	}
	cmp, ok := rest[0].(*expr.Cmp)
	if !ok || cmp.Register != f.Register || len(cmp.Data) == 0 {
		return 0, text + " …", false
	}
	zero := !slices.ContainsFunc(cmp.Data, func(b byte) bool { return b != 0 })
	missing := cmp.Op == expr.CmpOpEq && zero
	switch {
	case f.FlagPRESENT && missing:
		text += " missing"
	case f.FlagPRESENT && cmp.Op == expr.CmpOpNeq && zero:
		text += " exists"
	case missing:
		text += " 0"
	case cmp.Op == expr.CmpOpNeq && zero:
		text += " != 0"
	default:
		text += " …"
	}
	return 1, text, missing && f.ResultOIF && f.FlagSADDR && !f.FlagDADDR
}

// fwXtMatch reads an x_tables match carried by nft_compat, as iptables-nft
// writes it. It returns the kind when the match selects invalid packets or
// fails reverse-path filtering.
func fwXtMatch(m *expr.Match) (text, kind string) {
	switch m.Name {
	case "conntrack":
		var base *xt.ConntrackMtinfoBase
		var mask uint32
		switch i := m.Info.(type) {
		case *xt.ConntrackMtinfo1:
			base, mask = &i.ConntrackMtinfoBase, uint32(i.StateMask)
		case *xt.ConntrackMtinfo2:
			base, mask = &i.ConntrackMtinfoBase, uint32(i.StateMask)
		case *xt.ConntrackMtinfo3:
			base, mask = &i.ConntrackMtinfoBase, uint32(i.StateMask)
		}
		if base == nil || base.MatchFlags&uint16(xt.ConntrackState) == 0 {
			return `xt match "conntrack"`, ""
		}
		inv := base.InvertFlags&uint16(xt.ConntrackState) != 0
		text = "ct state "
		if inv {
			text += "!= "
		}
		text += fwCtStateNames(mask)
		// Anything besides the state (and the -m state alias flag) is a
		// further condition we do not spell out.
		if base.MatchFlags&^uint16(xt.ConntrackState|xt.ConntrackStateAlias) != 0 {
			text += " …"
		}
		if (mask&fwCtInvalid != 0) != inv {
			kind = fwKindCtInvalid
		}
		return text, kind
	case "state":
		// xt_state_info is one host-endian u32 statemask; google/nftables
		// has no type for it, so it arrives as raw bytes (padded to 8).
		// XT_STATE_INVALID is bit 0. `! --state` is stored as the
		// complemented mask, there is no invert flag.
		u, ok := m.Info.(*xt.Unknown)
		if !ok || len(*u) < 4 {
			return `xt match "state"`, ""
		}
		mask := fwNative.Uint32((*u)[:4])
		if mask&fwCtInvalid != 0 {
			kind = fwKindCtInvalid
		}
		return "ct state " + fwCtStateNames(mask), kind
	case "rpfilter":
		// xt_rpfilter_info is one u8 of flags: LOOSE 1, VALID_MARK 2,
		// ACCEPT_LOCAL 4, INVERT 8. `-m rpfilter --invert -j DROP` is the
		// iptables reverse-path drop (firewalld's iptables backend).
		// Rendered as nft's own translation of it.
		u, ok := m.Info.(*xt.Unknown)
		if !ok || len(*u) < 1 {
			return `xt match "rpfilter"`, ""
		}
		flags := (*u)[0]
		keys := "saddr . "
		if flags&2 != 0 {
			keys += "mark . "
		}
		if flags&1 == 0 {
			keys += "iif "
		}
		text = "fib " + keys + "oif "
		if flags&8 != 0 {
			return text + "0", fwKindRPFilter
		}
		return text + "!= 0", ""
	case "comment":
		if c, ok := m.Info.(*xt.Comment); ok {
			return "comment " + strconv.Quote(string(*c)), ""
		}
	}
	return "xt match " + strconv.Quote(m.Name), ""
}

// fwMetaCond renders a meta load compared with a constant.
func fwMetaCond(rest []expr.Any, m *expr.Meta) (int, string) {
	if m.SourceRegister || len(rest) == 0 {
		return 0, ""
	}
	cmp, ok := rest[0].(*expr.Cmp)
	if !ok || cmp.Register != m.Register || len(cmp.Data) == 0 {
		return 0, ""
	}
	op := ""
	if cmp.Op != expr.CmpOpEq {
		op = fwCmpOp(cmp.Op) + " "
	}
	d := cmp.Data
	switch m.Key {
	case expr.MetaKeyNFPROTO:
		switch d[0] {
		case unix.NFPROTO_IPV4:
			return 1, "meta nfproto " + op + "ipv4"
		case unix.NFPROTO_IPV6:
			return 1, "meta nfproto " + op + "ipv6"
		}
		return 1, fmt.Sprintf("meta nfproto %s%d", op, d[0])
	case expr.MetaKeyL4PROTO:
		return 1, "meta l4proto " + op + evidence.ProtoName(d[0])
	case expr.MetaKeyIIFNAME, expr.MetaKeyOIFNAME:
		word := "iifname "
		if m.Key == expr.MetaKeyOIFNAME {
			word = "oifname "
		}
		// A name without its NUL is a prefix match (iptables -i eth+).
		name, _, exact := bytes.Cut(d, []byte{0})
		s := string(name)
		if !exact {
			s += "*"
		}
		return 1, word + op + strconv.Quote(s)
	case expr.MetaKeyIIF, expr.MetaKeyOIF:
		if len(d) == 4 {
			word := "iif "
			if m.Key == expr.MetaKeyOIF {
				word = "oif "
			}
			return 1, fmt.Sprintf("%s%s%d", word, op, fwNative.Uint32(d))
		}
	case expr.MetaKeyMARK:
		if len(d) == 4 {
			return 1, fmt.Sprintf("meta mark %s0x%08x", op, fwNative.Uint32(d))
		}
	}
	return 0, ""
}

// fwPayloadCond renders address and port comparisons, the conditions that
// commonly narrow a ct-invalid or rpfilter rule. nft compiles a prefix on a
// byte boundary as a shorter load (`ip saddr 192.0.2.0/24` is a 3-byte
// payload), iptables-nft as a 4-byte load and a Bitwise mask.
func fwPayloadCond(fam nftables.TableFamily, rest []expr.Any, p *expr.Payload) (int, string) {
	if p.OperationType != expr.PayloadLoad || len(rest) == 0 {
		return 0, ""
	}
	used, reg := 0, p.DestRegister
	var mask []byte
	if bw, ok := rest[0].(*expr.Bitwise); ok && bw.SourceRegister == reg && len(rest) > 1 {
		mask, reg, used = bw.Mask, bw.DestRegister, 1
	}
	cmp, ok := rest[used].(*expr.Cmp)
	if !ok || cmp.Register != reg || (cmp.Op != expr.CmpOpEq && cmp.Op != expr.CmpOpNeq) {
		return 0, ""
	}
	used++
	op := ""
	if cmp.Op == expr.CmpOpNeq {
		op = "!= "
	}
	switch p.Base {
	case expr.PayloadBaseNetworkHeader:
		var word string
		var full int
		switch {
		case fam != nftables.TableFamilyIPv6 && (p.Offset == 12 || p.Offset == 16) && p.Len <= 4:
			word, full = map[uint32]string{12: "ip saddr ", 16: "ip daddr "}[p.Offset], 4
		case fam != nftables.TableFamilyIPv4 && (p.Offset == 8 || p.Offset == 24) && p.Len <= 16:
			word, full = map[uint32]string{8: "ip6 saddr ", 24: "ip6 daddr "}[p.Offset], 16
		default:
			return 0, ""
		}
		addr := make([]byte, full)
		copy(addr, cmp.Data)
		plen := int(p.Len) * 8
		if mask != nil {
			plen = 0
			for _, b := range mask {
				plen += bits.OnesCount8(b)
			}
		}
		a, _ := netip.AddrFromSlice(addr)
		s := a.String()
		if plen < full*8 {
			s = netip.PrefixFrom(a, plen).String()
		}
		return used, word + op + s
	case expr.PayloadBaseTransportHeader:
		if p.Len == 2 && (p.Offset == 0 || p.Offset == 2) && len(cmp.Data) == 2 && mask == nil {
			word := map[uint32]string{0: "th sport ", 2: "th dport "}[p.Offset]
			return used, word + op + strconv.Itoa(int(binaryutil.BigEndian.Uint16(cmp.Data)))
		}
	}
	return 0, ""
}

// fwVerdict renders a verdict as nft does; "" for continue/break.
func fwVerdict(k expr.VerdictKind, chain string) string {
	switch k {
	case expr.VerdictDrop:
		return "drop"
	case expr.VerdictAccept:
		return "accept"
	case expr.VerdictReturn:
		return "return"
	case expr.VerdictJump:
		return "jump " + chain
	case expr.VerdictGoto:
		return "goto " + chain
	case expr.VerdictQueue:
		return "queue"
	case expr.VerdictStolen:
		return "stolen"
	}
	return ""
}

func fwFamilyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	case nftables.TableFamilyARP:
		return "arp"
	case nftables.TableFamilyNetdev:
		return "netdev"
	case nftables.TableFamilyBridge:
		return "bridge"
	}
	return "family-" + strconv.Itoa(int(f))
}

// fwHookName names a hook number; the numbering depends on the family.
func fwHookName(f nftables.TableFamily, h uint32) string {
	var names []string
	switch f {
	case nftables.TableFamilyNetdev:
		names = []string{"ingress", "egress"} // NF_NETDEV_*
	case nftables.TableFamilyARP:
		names = []string{"input", "output", "forward"} // NF_ARP_*
	default:
		names = []string{"prerouting", "input", "forward", "output", "postrouting", "ingress"} // NF_INET_*
	}
	if int(h) < len(names) {
		return names[h]
	}
	return "hook-" + strconv.Itoa(int(h))
}

func fwPolicyName(p nftables.ChainPolicy) string {
	switch p {
	case nftables.ChainPolicyAccept:
		return "accept"
	case nftables.ChainPolicyDrop:
		return "drop"
	}
	return strconv.Itoa(int(p))
}

// fwGroupKey groups rules by chain for the output lines; iptables-legacy
// and iptables-nft may both have an "ip filter INPUT".
func fwGroupKey(r evidence.FirewallRule) string { return r.Source + " " + r.Where() }

// fwNftChainHeader renders the line that introduces a chain's rules.
func fwNftChainHeader(r evidence.FirewallRule, policy, device string, dormant bool) string {
	h := "table " + r.Family + " " + r.Table
	if dormant {
		h += " (dormant: not applied)"
	}
	h += "  chain " + r.Chain
	if r.Hook == "" {
		return h
	}
	var attrs []string
	a := "hook " + r.Hook
	if device != "" {
		a += " device " + strconv.Quote(device)
	}
	attrs = append(attrs, a+" priority "+strconv.Itoa(r.Priority))
	if policy != "" {
		attrs = append(attrs, "policy "+policy)
	}
	return h + " (" + strings.Join(attrs, "; ") + ")"
}

// renderFirewallLines renders the rules grouped by chain, each chain under
// its header (a default one when headers lacks it).
func renderFirewallLines(rules []evidence.FirewallRule, headers map[string]string) []string {
	var out []string
	last := ""
	for _, r := range rules {
		key := fwGroupKey(r)
		if key != last || len(out) == 0 {
			h, ok := headers[key]
			if !ok {
				if r.Source == fwSourceLegacy {
					h = fwLegacyChainHeader(r, "")
				} else {
					h = fwNftChainHeader(r, "", "", false)
				}
			}
			out = append(out, h)
			last = key
		}
		if r.Source == fwSourceLegacy {
			out = append(out, fmt.Sprintf("  %s  # rule %d", r.Text, r.Handle))
		} else {
			out = append(out, fmt.Sprintf("  %s  # handle %d", r.Text, r.Handle))
		}
	}
	return out
}

// fwLegacyTool is the command family of an x_tables family.
func fwLegacyTool(family string) string {
	if family == "ip6" {
		return "ip6tables-legacy"
	}
	return "iptables-legacy"
}

func fwLegacyChainHeader(r evidence.FirewallRule, policy string) string {
	h := fwLegacyTool(r.Family) + " table " + r.Table + "  chain " + r.Chain
	if policy != "" && policy != "-" {
		h += " (policy " + policy + ")"
	}
	return h
}

// probeLegacy looks for iptables-legacy tables. x_tables rules are
// invisible to nf_tables; the only side-effect-free ways to see them are
// the table list in /proc and iptables-legacy-save (which dumps only
// tables that exist, whereas iptables-legacy -L/-S creates the filter
// table when it is missing).
func probeLegacy(ctx context.Context, v *evidence.FirewallView, t *Target) error {
	const v4, v6 = "thread-self/net/ip_tables_names", "thread-self/net/ip6_tables_names"
	procs, err := t.ReadProc(ctx, v4, v6)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.Add("could not read the iptables-legacy table list (/proc/net/ip_tables_names): %v", err)
		return nil
	}
	for _, fam := range []struct{ family, path string }{{"ip", v4}, {"ip6", v6}} {
		names := strings.Fields(procs[fam.path])
		if len(names) == 0 {
			continue
		}
		slices.Sort(names)
		qualified := make([]string, len(names))
		for i, n := range names {
			qualified[i] = fam.family + " " + n
		}
		v.LegacyTables = append(v.LegacyTables, qualified...)
		tool := fwLegacyTool(fam.family)
		save := tool + "-save"
		path, err := exec.LookPath(save)
		if err != nil {
			v.Add("%s tables exist (%s) but cannot be read without %s, which is not installed; asym does not run %s -L because that creates tables",
				tool, strings.Join(names, ", "), save, tool)
			continue
		}
		out, err := fwRunInNS(ctx, t, path, "-c")
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v.Add("%s tables exist (%s) but %s failed: %v", tool, strings.Join(names, ", "), save, err)
			continue
		}
		rules, headers := parseLegacySave(fam.family, out)
		v.Add("# %s", t.Cmd(save, "-c"))
		v.Rules = append(v.Rules, rules...)
		v.Lines = append(v.Lines, renderFirewallLines(rules, headers)...)
		if len(rules) == 0 {
			v.Add("no ct state invalid or rpfilter rules in %s tables %s", tool, strings.Join(names, ", "))
		}
	}
	return nil
}

// fwRunInNS runs a program inside the target namespace and returns its
// output. A child inherits the namespace of the thread that forks it, so it
// is started from the thread InNS moved into the namespace; the argument
// list goes straight to execve, no shell.
func fwRunInNS(ctx context.Context, t *Target, path string, args ...string) (string, error) {
	var out string
	err := t.InNS(ctx, func() error {
		cmd := exec.CommandContext(ctx, path, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return fmt.Errorf("%w: %s", err, msg)
			}
			return err
		}
		out = stdout.String()
		return nil
	})
	if err != nil {
		// On a timeout the forked thread may still be writing out.
		return "", err
	}
	return out, nil
}

// parseLegacySave reads `iptables-save -c` output (also `iptables -S -c`
// style lines with "-c PKTS BYTES") and returns the rules matching conntrack
// state INVALID (-m conntrack --ctstate, -m state --state) or doing an
// inverted rpfilter check, plus a header line per chain.
func parseLegacySave(family, text string) ([]evidence.FirewallRule, map[string]string) {
	var rules []evidence.FirewallRule
	headers := map[string]string{}
	table := ""
	policies := map[string]string{}
	userChains := map[string]bool{}
	count := map[string]uint64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || line == "COMMIT":
			continue
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			clear(policies)
			clear(userChains)
			continue
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 {
				policies[f[0]] = f[1]
				if f[1] == "-" {
					userChains[f[0]] = true
				}
			}
			continue
		}
		r, ok := fwParseLegacyRule(line, userChains)
		if !ok {
			continue
		}
		key := table + " " + r.Chain
		count[key]++
		if r.Kind == "" {
			continue
		}
		r.Source, r.Family, r.Table, r.Handle = fwSourceLegacy, family, table, count[key]
		r.Hook, r.Priority = fwLegacyHook(table, r.Chain)
		rules = append(rules, r)
		headers[fwGroupKey(r)] = fwLegacyChainHeader(r, policies[r.Chain])
	}
	return rules, headers
}

// fwParseLegacyRule parses one "[p:b] -A CHAIN …" line. ok is false for
// lines that are not rules; Kind is "" for rules of no interest.
func fwParseLegacyRule(line string, userChains map[string]bool) (r evidence.FirewallRule, ok bool) {
	text := line
	if strings.HasPrefix(line, "[") {
		end := strings.IndexByte(line, ']')
		if end < 0 {
			return r, false
		}
		p, b, found := strings.Cut(line[1:end], ":")
		pn, err1 := strconv.ParseUint(p, 10, 64)
		bn, err2 := strconv.ParseUint(b, 10, 64)
		if found && err1 == nil && err2 == nil {
			r.HasCounter, r.Packets, r.Bytes = true, pn, bn
		}
		line = strings.TrimSpace(line[end+1:])
	}
	args := fwSplitArgs(line)
	if len(args) < 2 || args[0] != "-A" {
		return r, false
	}
	r.Chain = args[1]
	invalid, rpf, rpfInvert := false, false, false
	for i := 2; i < len(args); i++ {
		a := args[i]
		neg := args[i-1] == "!"
		switch {
		case (a == "--ctstate" || a == "--state") && i+1 < len(args):
			has := slices.Contains(strings.Split(args[i+1], ","), "INVALID")
			if has != neg {
				invalid = true
			}
			i++
		case a == "-m" && i+1 < len(args) && args[i+1] == "rpfilter":
			rpf = true
			i++
		case a == "--invert" && rpf:
			rpfInvert = true
		case a == "-c" && i+2 < len(args):
			pn, err1 := strconv.ParseUint(args[i+1], 10, 64)
			bn, err2 := strconv.ParseUint(args[i+2], 10, 64)
			if err1 == nil && err2 == nil {
				r.HasCounter, r.Packets, r.Bytes = true, pn, bn
			}
			i += 2
		case (a == "-j" || a == "-g") && i+1 < len(args):
			r.Verdict = fwLegacyVerdict(a, args[i+1], userChains)
			i++
		}
	}
	switch {
	case invalid:
		r.Kind = fwKindCtInvalid
	case rpf && rpfInvert:
		r.Kind = fwKindRPFilter
	}
	r.Text = text
	return r, true
}

func fwLegacyVerdict(flag, target string, userChains map[string]bool) string {
	if flag == "-g" {
		return "goto " + target
	}
	switch target {
	case "DROP":
		return "drop"
	case "REJECT":
		return "reject"
	case "ACCEPT":
		return "accept"
	case "RETURN":
		return "return"
	}
	if userChains[target] {
		return "jump " + target
	}
	return "" // an extension target such as LOG or MARK: the rule goes on
}

// fwLegacyHook maps a built-in chain to its hook and the priority its
// table registers with (NF_IP_PRI_*); user chains have neither.
func fwLegacyHook(table, chain string) (string, int) {
	hook := map[string]string{"PREROUTING": "prerouting", "INPUT": "input", "FORWARD": "forward",
		"OUTPUT": "output", "POSTROUTING": "postrouting"}[chain]
	if hook == "" {
		return "", 0
	}
	switch table {
	case "raw":
		return hook, -300
	case "mangle":
		return hook, -150
	case "security":
		return hook, 50
	case "nat":
		if hook == "prerouting" || hook == "output" {
			return hook, -100
		}
		return hook, 100
	}
	return hook, 0
}

// fwSplitArgs splits an iptables-save rule into words: iptables-save quotes
// words holding spaces with double quotes and escapes quotes inside them.
func fwSplitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quoted && c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case c == '"':
			quoted, inWord = !quoted, true
		case !quoted && (c == ' ' || c == '\t'):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out
}

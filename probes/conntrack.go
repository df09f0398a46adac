package probes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"asym/evidence"
	"asym/flow"

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
func ProbeConntrack(ctx context.Context, t *Target, f flow.Flow) *evidence.ConntrackView {
	v := &evidence.ConntrackView{Entries: []evidence.ConntrackEntry{}}
	var start time.Time
	v.Report, start = evidence.Begin("conntrack", "Conntrack entry and statistics")
	defer v.Finish(start)
	v.Command = t.Cmd(ctCommandWords(f)...)
	if err := ctx.Err(); err != nil {
		v.Fail(err) // out of time before starting: ask the kernel nothing
		return v
	}

	var queries []flow.Flow
	why := ctUnlookable(f)
	if why == "" {
		v.Looked = true
		queries = []flow.Flow{f, f.Reverse()}
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
		e, note := ctEntry(f, m.query, m.flow)
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

// ctMatch is one lookup that found an entry.
type ctMatch struct {
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
func ctRun(ctx context.Context, nsFD int, queries []flow.Flow) (r ctResult) {
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
		got, err := c.Get(ctQuery(q))
		if errors.Is(err, unix.ENOENT) {
			continue // no such entry: an answer, not a failure
		}
		if err != nil {
			r.err = fmt.Errorf("look up the conntrack entry for %s: %w", q, err)
			return r
		}
		r.found = append(r.found, ctMatch{query: q, flow: got})
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

// Protocols whose conntrack tuple carries ports (nf_conntrack_proto_*.c).
const (
	ctProtoDCCP    = 33
	ctProtoGRE     = 47
	ctProtoSCTP    = 132
	ctProtoUDPLite = 136
)

func ctHasPorts(p flow.Proto) bool {
	switch p {
	case flow.TCP, flow.UDP, ctProtoDCCP, ctProtoSCTP, ctProtoUDPLite:
		return true
	}
	return false
}

// ctUnlookable says, as a sentence, why the flow cannot be looked up by
// tuple, or "" when it can.
func ctUnlookable(f flow.Flow) string {
	switch {
	case ctHasPorts(f.Proto) && (f.Src.Port() == 0 || f.Dst.Port() == 0):
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
	if ctProtoName(uint8(f.Proto)) == "unknown" {
		proto = strconv.Itoa(int(f.Proto)) // conntrack -p takes a number for protocols it cannot name
	}
	w = append(w, "-p", proto, "--src", f.Src.Addr().String(), "--dst", f.Dst.Addr().String())
	if ctHasPorts(f.Proto) {
		if p := f.Src.Port(); p != 0 {
			w = append(w, "--sport", strconv.Itoa(int(p)))
		}
		if p := f.Dst.Port(); p != 0 {
			w = append(w, "--dport", strconv.Itoa(int(p)))
		}
	}
	return w
}

// ctEntry flattens a kernel entry and decides in which direction the flow
// travels in it. The note, when not empty, explains a match through NAT.
func ctEntry(f flow.Flow, query flow.Flow, c conntrack.Flow) (evidence.ConntrackEntry, string) {
	e := evidence.ConntrackEntry{
		Proto:        c.TupleOrig.Proto.Protocol,
		OrigSrc:      ctAddrPort(c.TupleOrig.IP.SourceAddress, c.TupleOrig.Proto.SourcePort),
		OrigDst:      ctAddrPort(c.TupleOrig.IP.DestinationAddress, c.TupleOrig.Proto.DestinationPort),
		ReplySrc:     ctAddrPort(c.TupleReply.IP.SourceAddress, c.TupleReply.Proto.SourcePort),
		ReplyDst:     ctAddrPort(c.TupleReply.IP.DestinationAddress, c.TupleReply.Proto.DestinationPort),
		Unreplied:    !c.Status.SeenReply(),
		Assured:      c.Status.Assured(),
		SrcNAT:       c.Status.SrcNAT(),
		DstNAT:       c.Status.DstNAT(),
		Timeout:      c.Timeout,
		Mark:         c.Mark,
		Zone:         c.Zone,
		PacketsOrig:  c.CountersOrig.Packets,
		PacketsReply: c.CountersReply.Packets,
		Text:         ctText(c),
	}
	if c.ProtoInfo.TCP != nil {
		e.TCPState = ctTCPState(c.ProtoInfo.TCP.State)
	}
	orig := [2]netip.AddrPort{e.OrigSrc, e.OrigDst}
	reply := [2]netip.AddrPort{e.ReplySrc, e.ReplyDst}
	fwd := [2]netip.AddrPort{ctAddrPort(f.Src.Addr(), f.Src.Port()), ctAddrPort(f.Dst.Addr(), f.Dst.Port())}
	rev := [2]netip.AddrPort{fwd[1], fwd[0]}
	switch {
	case fwd == orig:
		e.MatchedAs = "original"
	case fwd == reply:
		e.MatchedAs = "reply"
	case rev == reply:
		// The flow goes the original way, but the far end was rewritten:
		// the flow was given as seen after NAT.
		e.MatchedAs = "original"
		return e, fmt.Sprintf("matched through the reverse tuple: the flow travels in the entry's original direction, as it looks after NAT (%s)", ctNATWord(e))
	case rev == orig:
		e.MatchedAs = "reply"
		return e, fmt.Sprintf("matched through the reverse tuple: the flow travels in the entry's reply direction, as it looks before NAT (%s)", ctNATWord(e))
	default:
		// The kernel answered a tuple we asked for; it cannot be neither.
		// Say which query it was rather than guess.
		if query == f {
			e.MatchedAs = "original"
		} else {
			e.MatchedAs = "reply"
		}
	}
	return e, ""
}

func ctNATWord(e evidence.ConntrackEntry) string {
	switch {
	case e.SrcNAT && e.DstNAT:
		return "source and destination NAT"
	case e.SrcNAT:
		return "source NAT"
	case e.DstNAT:
		return "destination NAT"
	}
	return "the entry's tuples differ"
}

// ctAddrPort keeps IPv4 addresses 4 bytes long so that tuples compare equal
// whatever form the kernel or the person used.
func ctAddrPort(a netip.Addr, port uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Unmap(), port)
}

// ctTCPStates are conntrack's TCP states by number (enum tcp_conntrack,
// include/uapi/linux/netfilter/nf_conntrack_tcp.h), named as conntrack -L names them.
var ctTCPStates = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}

func ctTCPState(s uint8) string {
	if int(s) < len(ctTCPStates) {
		return ctTCPStates[s]
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// ctProtoName names a protocol as libnetfilter_conntrack does in conntrack -L.
func ctProtoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	case unix.IPPROTO_ICMP:
		return "icmp"
	case unix.IPPROTO_ICMPV6:
		return "icmpv6"
	case ctProtoSCTP:
		return "sctp"
	case ctProtoDCCP:
		return "dccp"
	case ctProtoUDPLite:
		return "udplite"
	case ctProtoGRE:
		return "gre"
	}
	return "unknown"
}

// ctText renders an entry the way `conntrack -L` prints it
// (libnetfilter_conntrack src/conntrack/snprintf_default.c), so that a
// person can compare it with what they know.
func ctText(c conntrack.Flow) string {
	var b strings.Builder
	p := c.TupleOrig.Proto.Protocol
	fmt.Fprintf(&b, "%-8s %d %d ", ctProtoName(p), p, c.Timeout)
	if c.ProtoInfo.TCP != nil {
		b.WriteString(ctTCPState(c.ProtoInfo.TCP.State) + " ")
	}
	ctTupleText(&b, c.TupleOrig)
	ctCounterText(&b, c.CountersOrig)
	if !c.Status.SeenReply() {
		b.WriteString("[UNREPLIED] ")
	}
	ctTupleText(&b, c.TupleReply)
	ctCounterText(&b, c.CountersReply)
	if c.Status.Assured() {
		b.WriteString("[ASSURED] ")
	}
	if c.Status.Offload() {
		b.WriteString("[OFFLOAD] ")
	}
	fmt.Fprintf(&b, "mark=%d ", c.Mark)
	if c.Zone != 0 {
		// The kernel sends a zone only when it is not the default one.
		fmt.Fprintf(&b, "zone=%d ", c.Zone)
	}
	// A get holds its own reference while the kernel fills the answer, so
	// use= reads one more than in a dump (conntrack -G shows the same).
	fmt.Fprintf(&b, "use=%d", c.Use)
	return b.String()
}

func ctTupleText(b *strings.Builder, t conntrack.Tuple) {
	fmt.Fprintf(b, "src=%s dst=%s ", t.IP.SourceAddress.Unmap(), t.IP.DestinationAddress.Unmap())
	switch t.Proto.Protocol {
	case unix.IPPROTO_ICMP, unix.IPPROTO_ICMPV6:
		fmt.Fprintf(b, "type=%d code=%d id=%d ", t.Proto.ICMPType, t.Proto.ICMPCode, t.Proto.ICMPID)
	case unix.IPPROTO_TCP, unix.IPPROTO_UDP, ctProtoSCTP, ctProtoDCCP, ctProtoUDPLite:
		fmt.Fprintf(b, "sport=%d dport=%d ", t.Proto.SourcePort, t.Proto.DestinationPort)
	}
}

// ctCounterText prints packet and byte counters the way conntrack does when
// accounting is on; with nf_conntrack_acct=0 the kernel sends none and the
// values stay 0.
func ctCounterText(b *strings.Builder, c conntrack.Counter) {
	if c.Packets != 0 || c.Bytes != 0 {
		fmt.Fprintf(b, "packets=%d bytes=%d ", c.Packets, c.Bytes)
	}
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

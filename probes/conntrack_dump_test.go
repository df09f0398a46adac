package probes

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// ctEntry is one conntrack entry to create: its original tuple and, when
// NAT rewrote it, a reply tuple that is not the original's reverse.
type ctEntry struct {
	orig  string // "tcp 192.0.2.10:41000 192.0.2.20:8080"
	reply string // "" for the original reversed
	icmp  uint16 // an ICMP echo id, for ICMP entries
}

// ctCreate creates the entries in ns through ctnetlink, as conntrackd
// would: no packet needed, NAT'd tuples as given.
func ctCreate(t *testing.T, ns probetest.NS, entries ...ctEntry) {
	t.Helper()
	c, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(ns.Handle)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, e := range entries {
		orig := ctTupleOf(t, parseFlow(t, e.orig), e.icmp, false)
		reply := ctTupleOf(t, parseFlow(t, e.orig).Reverse(), e.icmp, true)
		if e.reply != "" {
			reply = ctTupleOf(t, parseFlow(t, e.reply), e.icmp, true)
		}
		fl := conntrack.Flow{TupleOrig: orig, TupleReply: reply, Timeout: 600}
		if err := c.Create(fl); err != nil {
			t.Fatalf("create the conntrack entry %s: %v", e.orig, err)
		}
	}
}

// ctTupleOf is a tuple from a flow as asym parses it; reply makes it an
// ICMP echo reply (type 0 or 129) when the flow is ICMP.
func ctTupleOf(t *testing.T, f flow.Flow, id uint16, reply bool) conntrack.Tuple {
	t.Helper()
	tu := conntrack.Tuple{IP: conntrack.IPTuple{SourceAddress: f.Src.Addr(), DestinationAddress: f.Dst.Addr()},
		Proto: conntrack.ProtoTuple{Protocol: uint8(f.Proto), SourcePort: f.Src.Port(), DestinationPort: f.Dst.Port()}}
	switch f.Proto {
	case flow.ICMP:
		tu.Proto = conntrack.ProtoTuple{Protocol: unix.IPPROTO_ICMP, ICMPID: id, ICMPType: map[bool]uint8{false: 8, true: 0}[reply]}
	case flow.ICMPv6:
		tu.Proto = conntrack.ProtoTuple{Protocol: unix.IPPROTO_ICMPV6, ICMPID: id, ICMPType: map[bool]uint8{false: 128, true: 129}[reply]}
	}
	return tu
}

// ctOrigs are the entries' original tuples as "src dst", sorted.
func ctOrigs(v *evidence.ConntrackView) []string {
	var out []string
	for _, e := range v.Entries {
		out = append(out, e.OrigSrc.String()+" "+e.OrigDst.String())
	}
	slices.Sort(out)
	return out
}

// ctReceived is how many conntrack entries the kernel sent the probes of
// tg since the last call.
func ctReceived(tg *Target, last *int64) int64 {
	_, _, n := tg.Received()
	d := n - *last
	*last = n
	return d
}

// TestConntrackDumpFiltered looks up flows given without a source port
// (and ICMP ones) among entries created through ctnetlink: several client
// connections to one server port, entries that differ in one field only,
// an entry the server side created, a NAT'd one found by its reply tuple,
// and a thousand unrelated ones the kernel must not send.
func TestConntrackDumpFiltered(t *testing.T) {
	l := newCtLab(t)
	var entries []ctEntry
	for i := range 5 { // five connections of the flow, one per client port
		entries = append(entries, ctEntry{orig: "tcp 192.0.2.10:" + strconv.Itoa(41000+i) + " 192.0.2.20:8080"})
	}
	entries = append(entries,
		ctEntry{orig: "tcp 192.0.2.10:41100 192.0.2.20:9090"}, // another server port
		ctEntry{orig: "tcp 192.0.2.11:41000 192.0.2.20:8080"}, // another client
		ctEntry{orig: "tcp 192.0.2.10:41000 192.0.2.21:8080"}, // another server
		ctEntry{orig: "udp 192.0.2.10:41000 192.0.2.20:8080"}, // another protocol
		ctEntry{orig: "udp 192.0.2.20:8080 192.0.2.10:41200"}, // UDP from the server's side: the flow is its reply
		ctEntry{orig: "icmp 192.0.2.10 192.0.2.20", icmp: 77}, // a ping
		ctEntry{orig: "icmp 192.0.2.10 192.0.2.21", icmp: 78}, // a ping elsewhere
		ctEntry{orig: "tcp 192.0.2.12:43000 198.51.100.80:80", // DNAT'd to the server: the server's form is the reply tuple
			reply: "tcp 192.0.2.20:8080 192.0.2.12:43000"},
	)
	const unrelated = 1000
	for i := range unrelated {
		entries = append(entries, ctEntry{orig: "udp 198.18." + strconv.Itoa(i/250) + "." + strconv.Itoa(1+i%250) + ":5000 203.0.113.53:53"})
	}
	ctCreate(t, l.a, entries...)

	var last int64
	for _, tc := range []struct {
		name, flow string
		want       []string // original tuples of the entries found
		matched    string   // MatchedAs of every entry
		received   int64    // entries the kernel sent
	}{
		{"five client ports", "tcp 192.0.2.10 192.0.2.20:8080",
			[]string{"192.0.2.10:41000 192.0.2.20:8080", "192.0.2.10:41001 192.0.2.20:8080", "192.0.2.10:41002 192.0.2.20:8080", "192.0.2.10:41003 192.0.2.20:8080", "192.0.2.10:41004 192.0.2.20:8080"},
			"original", 5},
		{"the same from the server's side", "tcp 192.0.2.20:8080 192.0.2.10",
			[]string{"192.0.2.10:41000 192.0.2.20:8080", "192.0.2.10:41001 192.0.2.20:8080", "192.0.2.10:41002 192.0.2.20:8080", "192.0.2.10:41003 192.0.2.20:8080", "192.0.2.10:41004 192.0.2.20:8080"},
			"reply", 5},
		{"an entry the other side created", "udp 192.0.2.10 192.0.2.20:8080",
			[]string{"192.0.2.10:41000 192.0.2.20:8080", "192.0.2.20:8080 192.0.2.10:41200"}, "", 2},
		{"no port at all", "tcp 192.0.2.11 192.0.2.20",
			[]string{"192.0.2.11:41000 192.0.2.20:8080"}, "original", 1},
		{"found by the reply tuple (after DNAT)", "tcp 192.0.2.12 192.0.2.20:8080",
			[]string{"192.0.2.12:43000 198.51.100.80:80"}, "original", 1},
		{"before DNAT", "tcp 192.0.2.12 198.51.100.80:80",
			[]string{"192.0.2.12:43000 198.51.100.80:80"}, "original", 1},
		{"icmp", "icmp 192.0.2.10 192.0.2.20",
			[]string{"192.0.2.10:0 192.0.2.20:0"}, "original", 1},
		{"nothing there", "tcp 192.0.2.10 192.0.2.20:7070", nil, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := parseFlow(t, tc.flow)
			v := ctProbe(t, l.ta, f)
			if !v.Looked {
				t.Fatalf("Looked = false: %q", v.Lines)
			}
			if got := ctOrigs(v); !slices.Equal(got, tc.want) {
				t.Errorf("entries %q\nwant    %q", got, tc.want)
			}
			for _, e := range v.Entries {
				if tc.matched != "" && e.MatchedAs != tc.matched {
					t.Errorf("%s: MatchedAs %q, want %q", e.Text, e.MatchedAs, tc.matched)
				}
			}
			if got := ctReceived(l.ta, &last); got != tc.received {
				t.Errorf("the kernel sent %d entries, want %d: the dump is not filtered by the kernel (the table holds %d)", got, tc.received, unrelated+len(entries))
			}
			if !hasLine(v.Lines, "a dump it filters itself") {
				t.Errorf("lines %q: want the filtered dump said", v.Lines)
			}
			if hasLine(v.Lines, "more entries match") {
				t.Errorf("lines %q: a handful of entries said to be more than the cap", v.Lines)
			}
			if len(tc.want) == 0 && !hasLine(v.Lines, "no conntrack entry for the flow") {
				t.Errorf("lines %q: want the absence said", v.Lines)
			}
		})
	}

	// Which way the flow goes in each entry the other side created: the
	// server's UDP entry carries the flow as its reply.
	v := ctProbe(t, l.ta, parseFlow(t, "udp 192.0.2.10 192.0.2.20:8080"))
	for _, e := range v.Entries {
		want := map[bool]string{true: "original", false: "reply"}[e.OrigSrc.Addr() == netip.MustParseAddr(ctClientAddr)]
		if e.MatchedAs != want {
			t.Errorf("%s: MatchedAs %q, want %q", e.Text, e.MatchedAs, want)
		}
	}
}

// TestConntrackDumpIPv6 is the same lookup for an IPv6 flow. The kernel
// cannot filter IPv6 addresses (TestConntrackKernelIPv6Filter): it sends
// the entries with the flow's protocol and port, and asym keeps those
// between the flow's addresses.
func TestConntrackDumpIPv6(t *testing.T) {
	l := newCtLab(t)
	ctCreate(t, l.a,
		ctEntry{orig: "tcp [2001:db8::10]:41000 [2001:db8::20]:8080"},
		ctEntry{orig: "tcp [2001:db8::10]:41001 [2001:db8::20]:8080"},
		ctEntry{orig: "tcp [2001:db8::11]:41000 [2001:db8::20]:8080"},
		ctEntry{orig: "tcp [2001:db8::10]:41000 [2001:db8::21]:8080"},
		ctEntry{orig: "tcp [2001:db8::30]:41000 [2001:db8::40]:8080"},
		ctEntry{orig: "tcp [2001:db8::10]:41000 [2001:db8::20]:9090"},
		ctEntry{orig: "udp [2001:db8::10]:41000 [2001:db8::20]:8080"},
		ctEntry{orig: "icmpv6 2001:db8::10 2001:db8::20", icmp: 5},
		ctEntry{orig: "icmpv6 2001:db8::10 2001:db8::21", icmp: 6},
		ctEntry{orig: "tcp 192.0.2.10:41000 192.0.2.20:8080"},
	)
	var last int64
	v := ctProbe(t, l.ta, parseFlow(t, "tcp 2001:db8::10 [2001:db8::20]:8080"))
	want := []string{"[2001:db8::10]:41000 [2001:db8::20]:8080", "[2001:db8::10]:41001 [2001:db8::20]:8080"}
	if got := ctOrigs(v); !slices.Equal(got, want) {
		t.Errorf("entries %q, want %q", got, want)
	}
	// The five IPv6 TCP entries to port 8080: not the other port, protocol
	// or family.
	if got := ctReceived(l.ta, &last); got != 5 {
		t.Errorf("the kernel sent %d entries, want the 5 IPv6 tcp entries to port 8080", got)
	}
	v = ctProbe(t, l.ta, parseFlow(t, "icmp 2001:db8::10 2001:db8::20"))
	if got := ctOrigs(v); !slices.Equal(got, []string{"[2001:db8::10]:0 [2001:db8::20]:0"}) || v.Entries[0].Proto != unix.IPPROTO_ICMPV6 {
		t.Errorf("icmpv6 entries %q", got)
	}
	if got := ctReceived(l.ta, &last); got != 2 {
		t.Errorf("the kernel sent %d entries, want the 2 icmpv6 ones (once: the flow and its reverse ask the same)", got)
	}
}

// TestConntrackKernelIPv6Filter pins why asym does not ask the kernel to
// filter IPv6 addresses: ctnetlink_filter_match_tuple compares them with
// `!ipv6_addr_cmp(...)`, true when they are equal, and so skips the
// entries between the given addresses and sends the others. When a kernel
// compares them right, this test fails: filter IPv6 addresses in the
// kernel then (on the kernels that do).
func TestConntrackKernelIPv6Filter(t *testing.T) {
	l := newCtLab(t)
	ctCreate(t, l.a,
		ctEntry{orig: "tcp [2001:db8::10]:41000 [2001:db8::20]:8080"}, // the addresses asked for
		ctEntry{orig: "tcp [2001:db8::10]:41000 [2001:db8::21]:8080"}, // one differs
		ctEntry{orig: "tcp [2001:db8::30]:41000 [2001:db8::40]:8080"}, // both differ
	)
	ae := netfilter.NewAttributeEncoder()
	ae.Nested(ctaTupleOrig, func(te *mdnetlink.AttributeEncoder) error {
		te.Nested(ctaTupleIP, func(ie *mdnetlink.AttributeEncoder) error {
			ie.Bytes(3, netip.MustParseAddr("2001:db8::10").AsSlice()) // CTA_IP_V6_SRC
			ie.Bytes(4, netip.MustParseAddr("2001:db8::20").AsSlice()) // CTA_IP_V6_DST
			return nil
		})
		te.Nested(ctaTupleProto, func(pe *mdnetlink.AttributeEncoder) error {
			pe.Uint8(ctaProtoNum, unix.IPPROTO_TCP)
			return nil
		})
		return nil
	})
	ae.Nested(ctaFilter, func(fe *mdnetlink.AttributeEncoder) error {
		fe.Bytes(ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, ctFilterIPSrc|ctFilterIPDst|ctFilterProtoNum))
		fe.Bytes(ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, 0))
		return nil
	})
	req, err := netfilter.EncodeNetlink(netfilter.Header{SubsystemID: netfilter.NFSubsysCTNetlink, MessageType: ipctnlMsgCtGet,
		Family: netfilter.ProtoIPv6, Flags: mdnetlink.Request | mdnetlink.Dump}, ae)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: int(l.a.Handle)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.Execute(req)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range msgs {
		var ev conntrack.Event
		if err := ev.Unmarshal(m); err != nil {
			t.Fatal(err)
		}
		o := ev.Flow.TupleOrig.IP
		got = append(got, o.SourceAddress.String()+" "+o.DestinationAddress.String())
	}
	if want := []string{"2001:db8::30 2001:db8::40"}; !slices.Equal(got, want) {
		t.Errorf("the kernel sent %q for 2001:db8::10 → 2001:db8::20; the inverted comparison sends %q: if it now sends the entry between those addresses, it compares IPv6 addresses right", got, want)
	}
}

// TestConntrackDumpCap fills the table with more connections of the flow
// than asym reads: it keeps ctDumpCap, says there are more, and reads
// little more than that from the kernel.
func TestConntrackDumpCap(t *testing.T) {
	l := newCtLab(t)
	const n = 3 * ctDumpCap
	var entries []ctEntry
	for i := range n {
		entries = append(entries, ctEntry{orig: "tcp 192.0.2.10:" + strconv.Itoa(42000+i) + " 192.0.2.20:8080"})
	}
	ctCreate(t, l.a, entries...)

	var last int64
	v := ctProbe(t, l.ta, parseFlow(t, "tcp 192.0.2.10 192.0.2.20:8080"))
	if len(v.Entries) != ctDumpCap {
		t.Errorf("%d entries kept, want the cap %d", len(v.Entries), ctDumpCap)
	}
	if !hasLine(v.Lines, "more entries match: give the source port to see this flow's own") {
		t.Errorf("lines %q: want the cap said", v.Lines)
	}
	if hasLine(v.Lines, "no conntrack entry") {
		t.Errorf("lines %q: entries found, yet none said", v.Lines)
	}
	// One datagram of at most ctDumpBufSize past the cap: a conntrack entry
	// message is over 200 bytes.
	got := ctReceived(l.ta, &last)
	if got <= ctDumpCap || got > ctDumpCap+ctDumpBufSize/200 {
		t.Errorf("the kernel sent %d entries of %d, want just over the cap %d (one datagram)", got, n, ctDumpCap)
	}
	t.Logf("read %d of %d matching entries", got, n)
	if v.Stats.CPUs == 0 || v.Count < n {
		t.Errorf("statistics after a capped dump: %d CPUs, %d entries", v.Stats.CPUs, v.Count)
	}

	// IPv6: the kernel filters by port only, so other hosts' connections to
	// the port can fill the budget without one of the flow's: no entry, and
	// no conclusion that there is none.
	l6 := newCtLab(t)
	var others []ctEntry
	for i := range ctDumpCap + 1 {
		others = append(others, ctEntry{orig: "tcp [2001:db8::30]:" + strconv.Itoa(42000+i) + " [2001:db8::20]:8080"})
	}
	ctCreate(t, l6.a, others...)
	v = ctProbe(t, l6.ta, parseFlow(t, "tcp 2001:db8::10 [2001:db8::20]:8080"))
	if v.Looked || len(v.Entries) != 0 || hasLine(v.Lines, "no conntrack entry") || !hasLine(v.Lines, "for IPv6 the kernel filters by port, not by address") {
		t.Errorf("IPv6, the budget filled by other hosts: Looked %v, %d entries, lines %q", v.Looked, len(v.Entries), v.Lines)
	}

	// Exactly the cap is not more.
	l2 := newCtLab(t)
	ctCreate(t, l2.a, entries[:ctDumpCap]...)
	v = ctProbe(t, l2.ta, parseFlow(t, "tcp 192.0.2.10 192.0.2.20:8080"))
	if len(v.Entries) != ctDumpCap || hasLine(v.Lines, "more entries match") {
		t.Errorf("%d entries, lines %q: want all %d and no cap said", len(v.Entries), v.Lines, ctDumpCap)
	}
}

// TestConntrackDumpOutOfTime: when the dumps' share of the probe's time
// is spent (here: none is given), the probe still reads the statistics,
// says what was not asked, and does not call the flow absent.
func TestConntrackDumpOutOfTime(t *testing.T) {
	l := newCtLab(t)
	ctCreate(t, l.a, ctEntry{orig: "tcp 192.0.2.10:41000 192.0.2.20:8080"})
	defer func(share float64) { ctDumpShare = share }(ctDumpShare)
	ctDumpShare = 0
	v := ctProbe(t, l.ta, parseFlow(t, "tcp 192.0.2.10 192.0.2.20:8080"))
	if v.Looked || len(v.Entries) != 0 || hasLine(v.Lines, "no conntrack entry") {
		t.Errorf("Looked %v, %d entries, lines %q: want no conclusion", v.Looked, len(v.Entries), v.Lines)
	}
	if !hasLine(v.Lines, "time ran out for the filtered dumps (each walks the whole table in the kernel): 2 of 2 lookups not done") {
		t.Errorf("lines %q: want the lookups not done said", v.Lines)
	}
	if v.Stats.CPUs == 0 || v.Count != 1 {
		t.Errorf("statistics: %d CPUs, %d entries; want them read", v.Stats.CPUs, v.Count)
	}
	// The exact lookup takes no dump and no share.
	if e := ctOne(t, ctProbe(t, l.ta, parseFlow(t, "tcp 192.0.2.10:41000 192.0.2.20:8080"))); e.MatchedAs != "original" {
		t.Errorf("exact lookup: %+v", e)
	}
}

// TestConntrackPlan checks which lookups a flow gets, and the refusal on a
// kernel that would ignore the filter and send the whole table.
func TestConntrackPlan(t *testing.T) {
	full := parseFlow(t, "tcp 192.0.2.10:40000 192.0.2.20:8080")
	noSport := parseFlow(t, "tcp 192.0.2.10 192.0.2.20:8080")
	ping := parseFlow(t, "icmp 192.0.2.10 192.0.2.20")
	for _, tc := range []struct {
		name        string
		f           flow.Flow
		also        []flow.Flow
		release     string
		gets, dumps int    // rounds of each kind
		why         string // the refusal, when no rounds
	}{
		{"a full tuple: exact lookups only, whatever the kernel", full, nil, "4.19.0-26-amd64", 2, 0, ""},
		{"no source port on 6.18", noSport, nil, "6.18.44-fc-v657", 0, 2, ""},
		{"no source port on 5.8", noSport, nil, "5.8.0-63-generic", 0, 2, ""},
		{"no source port on 5.4", noSport, nil, "5.4.0-150-generic", 0, 0, "unavailable: this kernel (5.4.0-150-generic) cannot filter conntrack dumps (5.8+): give the source port to look up the flow's entry"},
		{"no ports on 4.18", parseFlow(t, "udp 192.0.2.10 192.0.2.20"), nil, "4.18.0-553.el8_10.x86_64", 0, 0, "give the source and destination ports"},
		{"icmp on 5.7", ping, nil, "5.7.19", 0, 0, "unavailable: this kernel (5.7.19) cannot filter conntrack dumps (5.8+), and conntrack keys icmp entries by echo id"},
		{"icmp on 6.1", ping, nil, "6.1.0-13-amd64", 0, 2, ""},
		{"an unreadable release counts as old", noSport, nil, "", 0, 0, "cannot filter conntrack dumps"},
		{"a NAT form without ports is dumped (original tuples only), the full flow got", full, []flow.Flow{noSport}, "6.18.0", 2, 1, ""},
		{"a flow without a port and a NAT form: the reply tuples last, the flow's only", noSport, []flow.Flow{parseFlow(t, "tcp 192.0.2.10 198.18.0.10:80")}, "6.18.0", 0, 3, ""},
		{"a NAT form without ports on an old kernel is left out", full, []flow.Flow{noSport}, "5.4.0", 2, 0, ""},
	} {
		rounds, why := ctPlan(tc.f, tc.also, tc.release)
		gets, dumps := 0, 0
		for _, r := range rounds {
			if r.get != nil {
				gets++
			} else {
				dumps++
			}
		}
		if gets != tc.gets || dumps != tc.dumps || (tc.why == "") != (why == "") || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %d gets, %d dump rounds, %q; want %d, %d, %q", tc.name, gets, dumps, why, tc.gets, tc.dumps, tc.why)
		}
	}
	// The order: the flow's original tuples, the NAT form's, the flow's reply tuples.
	nat := parseFlow(t, "tcp 192.0.2.10 198.18.0.10:80")
	rounds, _ := ctPlan(noSport, []flow.Flow{nat}, "6.18.0")
	var order []string
	for _, r := range rounds {
		order = append(order, r.dumps[0].form.String()+map[ctDir]string{ctOrig: " orig", ctReply: " reply"}[r.dumps[0].dir])
	}
	if want := []string{noSport.String() + " orig", nat.String() + " orig", noSport.String() + " reply"}; !slices.Equal(order, want) {
		t.Errorf("rounds %q, want %q", order, want)
	}
	for release, ok := range map[string]bool{"5.8": true, "5.10.0": true, "6.0.0": true, "10.1": true, "5.7.0": false, "4.20.17": false, "v6.1": false, "6": false, "garbage": false} {
		if got := ctFilterKernel(release); got != ok {
			t.Errorf("ctFilterKernel(%q) = %v, want %v", release, got, ok)
		}
	}
}

// TestConntrackDumpRequest pins the request's bytes, decoded by hand from
// include/uapi/linux/netfilter/nfnetlink_conntrack.h; the kernel tests
// above show the kernel accepts it.
func TestConntrackDumpRequest(t *testing.T) {
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	f := parseFlow(t, "tcp 192.0.2.10 192.0.2.20:8080")
	for _, tc := range []struct {
		q    ctFilterOf
		want []byte
	}{
		{ctFilterOf{f, f, ctOrig}, cat(
			[]byte{2, 0, 0, 0},         // nfgenmsg: NFPROTO_IPV4, version 0, res_id 0
			[]byte{44, 0, 1 | 0, 0x80}, // CTA_TUPLE_ORIG, nested
			[]byte{20, 0, 1, 0x80},     // CTA_TUPLE_IP, nested
			[]byte{8, 0, 1, 0, 192, 0, 2, 10},
			[]byte{8, 0, 2, 0, 192, 0, 2, 20},
			[]byte{20, 0, 2, 0x80},               // CTA_TUPLE_PROTO, nested
			[]byte{5, 0, 1, 0, 6, 0, 0, 0},       // CTA_PROTO_NUM tcp
			[]byte{6, 0, 3, 0, 0x1f, 0x90, 0, 0}, // CTA_PROTO_DST_PORT 8080, network order; no source port
			[]byte{20, 0, 25, 0x80},              // CTA_FILTER, nested
			[]byte{8, 0, 1, 0}, u32(1|2|8|32),    // CTA_FILTER_ORIG_FLAGS: IP_SRC|IP_DST|PROTO_NUM|PROTO_DST_PORT, host order
			[]byte{8, 0, 2, 0}, u32(0), // CTA_FILTER_REPLY_FLAGS
		)},
		{ctFilterOf{f, f.Reverse(), ctReply}, cat(
			[]byte{2, 0, 0, 0},
			[]byte{44, 0, 2, 0x80}, // CTA_TUPLE_REPLY
			[]byte{20, 0, 1, 0x80},
			[]byte{8, 0, 1, 0, 192, 0, 2, 20},
			[]byte{8, 0, 2, 0, 192, 0, 2, 10},
			[]byte{20, 0, 2, 0x80},
			[]byte{5, 0, 1, 0, 6, 0, 0, 0},
			[]byte{6, 0, 2, 0, 0x1f, 0x90, 0, 0}, // CTA_PROTO_SRC_PORT 8080
			[]byte{20, 0, 25, 0x80},
			[]byte{8, 0, 1, 0}, u32(0),
			[]byte{8, 0, 2, 0}, u32(1|2|8|16), // reply flags: PROTO_SRC_PORT
		)},
	} {
		m, err := tc.q.request()
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Type != unix.NFNL_SUBSYS_CTNETLINK<<8|ipctnlMsgCtGet || m.Header.Flags != mdnetlink.Request|mdnetlink.Dump {
			t.Errorf("%v: header type %#x flags %v, want IPCTNL_MSG_CT_GET with NLM_F_REQUEST|NLM_F_DUMP", tc.q.tuple, m.Header.Type, m.Header.Flags)
		}
		if !bytes.Equal(m.Data, tc.want) {
			t.Errorf("%v dir %d:\n got % x\nwant % x", tc.q.tuple, tc.q.dir, m.Data, tc.want)
		}
	}
	// An IPv6 ICMP flow: the family and the protocol number only.
	p := parseFlow(t, "icmp 2001:db8::1 2001:db8::2")
	m, err := ctFilterOf{p, p, ctOrig}.request()
	if err != nil {
		t.Fatal(err)
	}
	want := cat(
		[]byte{10, 0, 0, 0},    // NFPROTO_IPV6
		[]byte{16, 0, 1, 0x80}, // CTA_TUPLE_ORIG: no CTA_TUPLE_IP (the kernel cannot compare IPv6 addresses)
		[]byte{12, 0, 2, 0x80}, // CTA_TUPLE_PROTO
		[]byte{5, 0, 1, 0, unix.IPPROTO_ICMPV6, 0, 0, 0},
		[]byte{20, 0, 25, 0x80},
		[]byte{8, 0, 1, 0}, u32(8), // PROTO_NUM only
		[]byte{8, 0, 2, 0}, u32(0),
	)
	if !bytes.Equal(m.Data, want) {
		t.Errorf("icmpv6 request\n got % x\nwant % x", m.Data, want)
	}
}

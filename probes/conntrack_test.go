package probes

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/probetest"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The conntrack lab: client namespace A (192.0.2.10, tracks connections)
// joined by a veth to server namespace B (192.0.2.20, tracks nothing).
// Tracking happens in A because an entry is confirmed only when its first
// packet leaves the hooks: a SYN that A sends is confirmed in A even if the
// peer never answers, whereas a SYN dropped by B's input filter would never
// reach B's table.
const (
	ctClientAddr = "192.0.2.10"
	ctNATAddr    = "192.0.2.11" // A's second address, the SNAT target
	ctServerAddr = "192.0.2.20"
	ctServerPort = 8080
)

type ctLab struct {
	a, b   probetest.NS
	ta, tb *Target
}

// newCtLab builds the conntrack lab, the ct rule in A.
func newCtLab(t *testing.T) ctLab {
	t.Helper()
	a, b := ctPair(t)
	probetest.TrackConntrack(t, a)
	return ctLab{a: a, b: b, ta: openTarget(t, a.Name), tb: openTarget(t, b.Name)}
}

// ctPair builds the lab's two namespaces without a ruleset (so neither
// tracks connections yet): client A with ctClientAddr on a0 and server B
// with ctServerAddr on b0, joined by a veth, both quiet (probetest.Quiet).
func ctPair(t *testing.T) (a, b probetest.NS) {
	t.Helper()
	a, b = probetest.NewNS(t), probetest.NewNS(t)
	probetest.Quiet(t, a)
	probetest.Quiet(t, b)
	probetest.Veth(t, a, probetest.Link{Name: "a0", Addrs: []string{ctClientAddr + "/24"}},
		b, probetest.Link{Name: "b0", Addrs: []string{ctServerAddr + "/24"}})
	return a, b
}

// ctDropPort installs `table inet filter { chain input { type filter hook
// input priority 0; tcp dport PORT drop } }`, which needs no conntrack.
func ctDropPort(t *testing.T, ns probetest.NS, port uint16) {
	t.Helper()
	probetest.FilterRule(t, ns, "input", nftables.ChainHookInput,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(port)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	)
}

// ctSNAT installs `table ip nat { chain postrouting { type nat hook
// postrouting priority srcnat; ip daddr SERVER snat to NATADDR } }`.
func ctSNAT(t *testing.T, ns probetest.NS) {
	t.Helper()
	c := probetest.Nft(t, ns)
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: "nat"})
	ch := c.AddChain(&nftables.Chain{Name: "postrouting", Table: tbl, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: netip.MustParseAddr(ctServerAddr).AsSlice()},
		&expr.Immediate{Register: 1, Data: netip.MustParseAddr(ctNATAddr).AsSlice()},
		&expr.NAT{Type: expr.NATTypeSourceNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1},
	}})
	if err := c.Flush(); err != nil {
		t.Fatalf("install the snat rule in %s: %v", ns.Name, err)
	}
}

// ctProbe runs ProbeConntrack, failing the test unless it succeeds, and
// logs what it shows.
func ctProbe(t *testing.T, tg *Target, f flow.Flow) *evidence.ConntrackView {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	v := ProbeConntrack(ctx, tg, f)
	if !v.OK() {
		t.Fatalf("ProbeConntrack(%s) = %s: %s", f, v.Status, v.Reason)
	}
	t.Logf("%s\n  %s", v.Command, strings.Join(v.Lines, "\n  "))
	return v
}

// ctOne is the view's one entry, failing the test unless it looked the
// flow up and found exactly one.
func ctOne(t *testing.T, v *evidence.ConntrackView) evidence.ConntrackEntry {
	t.Helper()
	if !v.Looked {
		t.Fatalf("Looked = false, want a lookup")
	}
	if len(v.Entries) != 1 {
		t.Fatalf("got %d entries, want 1: %+v", len(v.Entries), v.Entries)
	}
	return v.Entries[0]
}

func TestConntrackEstablished(t *testing.T) {
	l := newCtLab(t)
	ln := probetest.Listen(t, l.b, ctServerAddr+":8080")
	client, server := probetest.Connect(t, l.a, ln, ctClientAddr+":40000", ctServerAddr+":8080")
	f := parseFlow(t, "tcp 192.0.2.10:40000 192.0.2.20:8080")

	v := ctProbe(t, l.ta, f)
	e := ctOne(t, v)
	want := evidence.ConntrackEntry{
		MatchedAs: "original", Proto: 6,
		OrigSrc: f.Src, OrigDst: f.Dst, ReplySrc: f.Dst, ReplyDst: f.Src,
		TCPState: "ESTABLISHED", Unreplied: false, Assured: true,
	}
	got := e
	got.Timeout, got.Text = 0, "" // the timeout counts down; Text is checked below
	if got != want {
		t.Errorf("entry = %+v\nwant    %+v", got, want)
	}
	if e.Timeout == 0 {
		t.Errorf("Timeout = 0: an established entry has days to live")
	}
	wantText := "ESTABLISHED src=192.0.2.10 dst=192.0.2.20 sport=40000 dport=8080 src=192.0.2.20 dst=192.0.2.10 sport=8080 dport=40000 [ASSURED] mark=0 use="
	if !strings.HasPrefix(e.Text, "tcp      6 ") || !strings.Contains(e.Text, wantText) {
		t.Errorf("Text = %q, want conntrack -L format containing %q", e.Text, wantText)
	}
	if v.Command != "ip netns exec "+l.a.Name+" conntrack -L -p tcp --src 192.0.2.10 --dst 192.0.2.20 --sport 40000 --dport 8080" {
		t.Errorf("Command = %q", v.Command)
	}
	if v.Count < 1 || v.Max == 0 || v.Stats.CPUs == 0 {
		t.Errorf("Count %d, Max %d, CPUs %d: want at least one entry, a limit and one CPU", v.Count, v.Max, v.Stats.CPUs)
	}
	if !hasLine(v.Lines, "conntrack -S (summed over") || !hasLine(v.Lines, "entries ") {
		t.Errorf("Lines lack the statistics: %q", v.Lines)
	}

	// The reply direction, as a person on the server side would type it:
	// the kernel finds the entry with the first query, because its lookup
	// hashes both directions of every entry.
	r := ctOne(t, ctProbe(t, l.ta, f.Reverse()))
	if r.MatchedAs != "reply" || r.OrigSrc != f.Src || r.TCPState != "ESTABLISHED" {
		t.Errorf("reverse flow: MatchedAs %q, OrigSrc %s, state %s; want reply, %s, ESTABLISHED", r.MatchedAs, r.OrigSrc, r.TCPState, f.Src)
	}

	// B's ruleset uses no conntrack: it tracks nothing, and says so.
	nb := ctProbe(t, l.tb, f)
	if !nb.Looked || len(nb.Entries) != 0 || nb.Count != 0 {
		t.Errorf("namespace B: Looked %v, %d entries, count %d; want a lookup that finds nothing in an empty table", nb.Looked, len(nb.Entries), nb.Count)
	}
	if !hasLine(nb.Lines, "no conntrack entry for the flow (neither direction)") || !hasLine(nb.Lines, "may not be tracking connections") {
		t.Errorf("namespace B lines = %q", nb.Lines)
	}

	// Close with RST from both ends: conntrack moves to CLOSE and keeps the
	// entry for nf_conntrack_tcp_timeout_close (10s). A FIN close would give
	// TIME_WAIT; either says the connection ended.
	client.Close()
	server.Close()
	var c evidence.ConntrackEntry
	probetest.Poll(2*time.Second, func() bool {
		c = ctOne(t, ctProbe(t, l.ta, f))
		return c.TCPState != "ESTABLISHED"
	})
	if c.TCPState != "CLOSE" && c.TCPState != "TIME_WAIT" {
		t.Errorf("after RST: state %s, want CLOSE (or TIME_WAIT)", c.TCPState)
	}
}

// TestConntrackKernelMatchesEitherTuple pins the kernel behaviour that lets
// ProbeConntrack skip a separate "as reply" query: CTA_TUPLE_REPLY alone
// and CTA_TUPLE_ORIG alone are the same lookup, and each finds an entry
// through either of its tuples.
func TestConntrackKernelMatchesEitherTuple(t *testing.T) {
	l := newCtLab(t)
	ln := probetest.Listen(t, l.b, ctServerAddr+":8080")
	probetest.Connect(t, l.a, ln, ctClientAddr+":40001", ctServerAddr+":8080")
	f := parseFlow(t, "tcp 192.0.2.10:40001 192.0.2.20:8080")

	c, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(l.a.Handle)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		name   string
		asOrig bool
		tuple  flow.Flow
	}{
		{"the original tuple sent as CTA_TUPLE_ORIG", true, f},
		{"the original tuple sent as CTA_TUPLE_REPLY", false, f},
		{"the reply tuple sent as CTA_TUPLE_ORIG", true, f.Reverse()},
		{"the reply tuple sent as CTA_TUPLE_REPLY", false, f.Reverse()},
	} {
		q := ctQuery(tc.tuple)
		if !tc.asOrig {
			q.TupleOrig, q.TupleReply = conntrack.Tuple{}, q.TupleOrig
		}
		got, err := c.Get(q)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got.TupleOrig.IP.SourceAddress != f.Src.Addr() || got.TupleOrig.Proto.SourcePort != f.Src.Port() {
			t.Errorf("%s: found %s, want the entry from %s", tc.name, got.TupleOrig, f.Src)
		}
	}
	// And a miss is ENOENT, which the probe reads as "not there".
	_, err = c.Get(ctQuery(parseFlow(t, "tcp 192.0.2.10:40009 192.0.2.20:8080")))
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("missing entry: err = %v, want ENOENT", err)
	}
}

func TestConntrackUnreplied(t *testing.T) {
	l := newCtLab(t)
	// B silently drops SYNs to port 8081: A's SYN leaves A's hooks (so the
	// entry is confirmed in A) and no answer ever comes back.
	ctDropPort(t, l.b, 8081)
	probetest.Do(t, l.a.Handle, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 10}, Port: 40002}); err != nil {
			return err
		}
		err = unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 20}, Port: 8081})
		if !errors.Is(err, unix.EINPROGRESS) {
			return err
		}
		return nil
	})
	f := parseFlow(t, "tcp 192.0.2.10:40002 192.0.2.20:8081")
	var v *evidence.ConntrackView
	probetest.Poll(2*time.Second, func() bool {
		v = ctProbe(t, l.ta, f)
		return len(v.Entries) > 0
	})
	e := ctOne(t, v)
	if e.MatchedAs != "original" || e.TCPState != "SYN_SENT" || !e.Unreplied || e.Assured {
		t.Errorf("entry = %+v; want original, SYN_SENT, unreplied, not assured", e)
	}
	if !strings.Contains(e.Text, "SYN_SENT src=192.0.2.10 dst=192.0.2.20 sport=40002 dport=8081 [UNREPLIED] src=192.0.2.20 dst=192.0.2.10 sport=8081 dport=40002 mark=0 use=") {
		t.Errorf("Text = %q", e.Text)
	}
}

func TestConntrackNAT(t *testing.T) {
	l := newCtLab(t)
	ha := probetest.Netlink(t, l.a.Handle)
	a0, err := ha.LinkByName("a0")
	if err != nil {
		t.Fatal(err)
	}
	if err := ha.AddrAdd(a0, &netlink.Addr{IPNet: &net.IPNet{IP: net.ParseIP(ctNATAddr).To4(), Mask: net.CIDRMask(24, 32)}}); err != nil {
		t.Fatal(err)
	}
	ctSNAT(t, l.a)
	ln := probetest.Listen(t, l.b, ctServerAddr+":8080")
	_, server := probetest.Connect(t, l.a, ln, ctClientAddr+":40003", ctServerAddr+":8080")
	seen := server.RemoteAddr().(*net.TCPAddr).AddrPort() // the client as B sees it, after SNAT
	if seen.Addr() != netip.MustParseAddr(ctNATAddr) {
		t.Fatalf("B sees the client as %s: the SNAT rule did not apply", seen)
	}

	f := parseFlow(t, "tcp 192.0.2.10:40003 192.0.2.20:8080")
	e := ctOne(t, ctProbe(t, l.ta, f))
	if e.MatchedAs != "original" || !e.SrcNAT || e.DstNAT || e.ReplyDst != seen {
		t.Errorf("pre-NAT flow: %+v; want original, src_nat, reply_dst %s", e, seen)
	}

	// The flow as B's side reports it (after SNAT) is neither tuple; its
	// reverse is the reply tuple, so the second query finds it.
	post := flow.Flow{Proto: flow.TCP, Src: seen, Dst: f.Dst}
	v := ctProbe(t, l.ta, post)
	p := ctOne(t, v)
	if p.MatchedAs != "original" || p.OrigSrc != f.Src || !p.SrcNAT {
		t.Errorf("post-NAT flow: %+v; want original, orig_src %s, src_nat", p, f.Src)
	}
	if !hasLine(v.Lines, "matched through the reverse tuple") || !hasLine(v.Lines, "source NAT") {
		t.Errorf("post-NAT lines = %q, want the NAT explained", v.Lines)
	}

	// The reply of the post-NAT flow is exactly the entry's reply tuple.
	if r := ctOne(t, ctProbe(t, l.ta, post.Reverse())); r.MatchedAs != "reply" {
		t.Errorf("post-NAT reply: MatchedAs %q, want reply", r.MatchedAs)
	}
}

// TestConntrackInvalidStats sends SYN-ACKs out of nowhere into A. A
// SYN-ACK with no entry cannot start one (nf_conntrack_proto_tcp.c: sNO →
// sIV), so conntrack counts it invalid and creates nothing.
func TestConntrackInvalidStats(t *testing.T) {
	l := newCtLab(t)
	noPorts := parseFlow(t, "tcp 192.0.2.20 192.0.2.10")
	before := ctProbe(t, l.ta, noPorts)
	if !before.Looked || len(before.Entries) != 0 {
		t.Errorf("a flow without ports: Looked = %v with %d entries, want a filtered dump that finds none", before.Looked, len(before.Entries))
	}
	if !hasLine(before.Lines, "the flow has no source and destination ports: the kernel sent the entries that match the rest of it") {
		t.Errorf("lines = %q, want the no-ports sentence", before.Lines)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	cBefore := ProbeCounters(ctx, l.ta)

	const n = 3
	src, dst := netip.MustParseAddr(ctServerAddr), netip.MustParseAddr(ctClientAddr)
	var segs [][]byte
	for i := range n {
		segs = append(segs, probetest.SynAck(src, dst, 8080, uint16(40100+i), uint32(1000*i+1), 4242))
	}
	probetest.SendRawTCP(t, l.b, src, dst, segs...)

	var after *evidence.ConntrackView
	probetest.Poll(2*time.Second, func() bool {
		after = ctProbe(t, l.ta, noPorts)
		return after.Stats.Invalid >= before.Stats.Invalid+n
	})
	if got := after.Stats.Invalid - before.Stats.Invalid; got != n {
		t.Errorf("invalid rose by %d, want %d (%+v)", got, n, after.Stats)
	}
	if after.Count != 0 {
		t.Errorf("count = %d: invalid packets must create no entry", after.Count)
	}
	// The same count, read the other way: /proc/net/stat/nf_conntrack.
	cAfter := ProbeCounters(ctx, l.ta)
	if d := cAfter.Delta(cBefore)["nf_conntrack:invalid"]; d != n {
		t.Errorf("nf_conntrack:invalid rose by %d, want %d", d, n)
	}
}

// TestConntrackNotLookable: an ICMP flow has no exact tuple (conntrack
// keys it by echo id); it is looked up with a filtered dump instead
// (conntrack_dump_test.go has the entries).
func TestConntrackNotLookable(t *testing.T) {
	l := newCtLab(t)
	v := ctProbe(t, l.ta, parseFlow(t, "icmp 192.0.2.10 192.0.2.20"))
	if !v.Looked || len(v.Entries) != 0 {
		t.Errorf("icmp: Looked %v with %d entries, want a filtered dump that finds none", v.Looked, len(v.Entries))
	}
	if !hasLine(v.Lines, "echo id") || v.Stats.CPUs == 0 {
		t.Errorf("icmp: lines %q, CPUs %d; want the reason and statistics", v.Lines, v.Stats.CPUs)
	}
	if v.Command != "ip netns exec "+l.a.Name+" conntrack -L -p icmp --src 192.0.2.10 --dst 192.0.2.20" {
		t.Errorf("icmp: Command = %q", v.Command)
	}

	// Out of time before starting: timed out, not a failure.
	ctx, cancel := context.WithTimeout(t.Context(), -time.Second)
	defer cancel()
	if to := ProbeConntrack(ctx, l.ta, parseFlow(t, "tcp 192.0.2.10:1 192.0.2.20:2")); to.Status != evidence.StatusTimedOut {
		t.Errorf("expired context: status %s (%s), want timed out", to.Status, to.Reason)
	}
}

// TestConntrackCommand checks the command a person types to see the entry.
func TestConntrackCommand(t *testing.T) {
	f := parseFlow(t, "udp [2001:db8::2]:53 [2001:db8::1]:5353")
	if got := evidence.Command(ctCommandWords(f)...); got != "conntrack -L -f ipv6 -p udp --src 2001:db8::2 --dst 2001:db8::1 --sport 53 --dport 5353" {
		t.Errorf("command = %q", got)
	}
}

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"asym/flow"
	"asym/probes"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ctnetlink numbers (include/uapi/linux/netfilter/nfnetlink_conntrack.h,
// and the CTA_FILTER_F_* flags of net/netfilter/nf_internals.h).
const (
	ctaTupleOrig, ctaTupleReply = 1, 2
	ctaTimeout                  = 7
	ctaFilter                   = 25
	ctaTupleIP, ctaTupleProto   = 1, 2
	ctaIPv4Src, ctaIPv4Dst      = 1, 2
	ctaIPv6Src, ctaIPv6Dst      = 3, 4
	ctaProtoNum                 = 1
	ctaProtoSrcPort             = 2
	ctaProtoDstPort             = 3
	ctaFilterOrigFlags          = 1
	ctaFilterReplyFlags         = 2
	ctFilterIPSrc               = 1 << 0
	ctFilterIPDst               = 1 << 1
	ctFilterProtoNum            = 1 << 3
	ctFilterProtoSrcPort        = 1 << 4
	ctFilterProtoDstPort        = 1 << 5
	ipctnlMsgCtNew              = 0
	ipctnlMsgCtGet              = 1
	maxEntries                  = 8 << 20 // 198.18.0.0/15 × 64 source ports
)

const (
	ctDumpChildArg  = "__ctdump"  // asym-bench __ctdump NS FLOW filtered|full
	ctProbeChildArg = "__ctprobe" // asym-bench __ctprobe NS FLOW
)

// ctTuple encodes one direction of a tuple.
func ctTuple(src, dst netip.Addr, proto uint8, sport, dport uint16) func(*mdnetlink.AttributeEncoder) error {
	return func(ae *mdnetlink.AttributeEncoder) error {
		ae.Nested(ctaTupleIP, func(ip *mdnetlink.AttributeEncoder) error {
			if src.Is4() {
				ip.Bytes(ctaIPv4Src, src.AsSlice())
				ip.Bytes(ctaIPv4Dst, dst.AsSlice())
			} else {
				ip.Bytes(ctaIPv6Src, src.AsSlice())
				ip.Bytes(ctaIPv6Dst, dst.AsSlice())
			}
			return nil
		})
		ae.Nested(ctaTupleProto, func(p *mdnetlink.AttributeEncoder) error {
			p.Uint8(ctaProtoNum, proto)
			p.Uint16(ctaProtoSrcPort, sport)
			p.Uint16(ctaProtoDstPort, dport)
			return nil
		})
		return nil
	}
}

func nfgen(family uint8) []byte { return []byte{family, unix.NFNETLINK_V0, 0, 0} }

// ctCreateMsg is one IPCTNL_MSG_CT_NEW creating an unrelated UDP entry:
// 198.18.x.y:(20000+k) → 203.0.113.53:53, alive for an hour.
func ctCreateMsg(i int) (mdnetlink.Message, error) {
	a := (uint32(198)<<24 | uint32(18)<<16) + uint32(i>>6)
	src := netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)})
	dst := netip.MustParseAddr("203.0.113.53")
	sport := uint16(20000 + (i & 63))
	ae := mdnetlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, ctTuple(src, dst, unix.IPPROTO_UDP, sport, 53))
	ae.Nested(ctaTupleReply, ctTuple(dst, src, unix.IPPROTO_UDP, 53, sport))
	ae.Uint32(ctaTimeout, 3600)
	attrs, err := ae.Encode()
	if err != nil {
		return mdnetlink.Message{}, err
	}
	return mdnetlink.Message{
		Header: mdnetlink.Header{
			Type:  mdnetlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtNew),
			Flags: mdnetlink.Request | mdnetlink.Create | mdnetlink.Excl,
		},
		Data: append(nfgen(unix.AF_INET), attrs...),
	}, nil
}

// fillConntrack creates n unrelated entries through ctnetlink, 256 to a
// sendmsg with an ACK asked for on the last of each batch only.
func fillConntrack(ctx context.Context, ns netns.NsHandle, n int) error {
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: int(ns)})
	if err != nil {
		return fmt.Errorf("open a ctnetlink socket: %w", err)
	}
	defer c.Close()
	batch := make([]mdnetlink.Message, 0, 256)
	seq := uint32(0)
	for i := 0; i < n; {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		batch = batch[:0]
		for ; i < n && len(batch) < cap(batch); i++ {
			m, err := ctCreateMsg(i)
			if err != nil {
				return err
			}
			seq++
			m.Header.Sequence = seq
			batch = append(batch, m)
		}
		batch[len(batch)-1].Header.Flags |= mdnetlink.Acknowledge
		if _, err := c.SendMessages(batch); err != nil {
			return fmt.Errorf("send conntrack entries: %w", err)
		}
		for acked := false; !acked; {
			got, err := c.Receive()
			if err != nil {
				return fmt.Errorf("create conntrack entries (batch ending at %d): %w", seq, err)
			}
			for _, m := range got {
				acked = acked || (m.Header.Type == mdnetlink.Error && m.Header.Sequence == seq)
			}
		}
	}
	return nil
}

// raiseConntrackMax makes room for n entries. nf_conntrack_max is global:
// a namespace other than the initial one may only read it (since Linux
// 4.x), so the host's value is raised for the run and restored by the
// returned function. Each namespace still counts its own entries.
func raiseConntrackMax(n int) (restore func() error, note string, err error) {
	const path = "/proc/sys/net/netfilter/nf_conntrack_max"
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read %s (is nf_conntrack loaded?): %w", path, err)
	}
	old, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	want := n + n/10 + 1024
	if old >= want {
		return func() error { return nil }, fmt.Sprintf("net.netfilter.nf_conntrack_max is %s: large enough", comma(int64(old))), nil
	}
	if err := os.WriteFile(path, []byte(strconv.Itoa(want)), 0); err != nil {
		return nil, "", fmt.Errorf("raise net.netfilter.nf_conntrack_max to %d: %w", want, err)
	}
	restore = func() error {
		if err := os.WriteFile(path, []byte(strconv.Itoa(old)), 0); err != nil {
			return fmt.Errorf("restore net.netfilter.nf_conntrack_max to %d: %w (set it back by hand)", old, err)
		}
		return nil
	}
	buckets := "?"
	if b, err := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_buckets"); err == nil {
		buckets = comma(int64(atoi(strings.TrimSpace(string(b)))))
	}
	return restore, fmt.Sprintf("net.netfilter.nf_conntrack_max (host-wide: a namespace cannot set its own) raised from %s to %s for the run and restored afterwards; hash buckets %s, left alone",
		comma(int64(old)), comma(int64(want)), buckets), nil
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

func benchConntrack(ctx context.Context, cfg *config, res *results) (err error) {
	const name = "conntrack"
	progress("%s: building the host", name)
	h, err := newHost()
	if err != nil {
		return err
	}
	defer func() {
		progress("%s: removing %s and %s", name, h.host.Name, h.fabric.Name)
		if cerr := h.close(); cerr != nil {
			res.note(name, "cleanup failed: %v", cerr)
		}
	}()
	restore, note, err := raiseConntrackMax(cfg.entries)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := restore(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}()
	res.note(name, "%s", note)

	f, err := flow.ParseString(flow4)
	if err != nil {
		return err
	}
	cc, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(h.host.Handle)})
	if err != nil {
		return fmt.Errorf("open a conntrack socket: %w", err)
	}
	defer cc.Close()
	// The flow's own entry, as the client's SYN would have made it.
	if err := cc.Create(conntrack.NewFlow(uint8(f.Proto), 0, f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port(), 3600, 0)); err != nil {
		return fmt.Errorf("create the flow's conntrack entry: %w", err)
	}
	progress("%s: creating %s unrelated entries through ctnetlink", name, comma(int64(cfg.entries)))
	start := time.Now()
	if err := fillConntrack(ctx, h.host.Handle, cfg.entries); err != nil {
		return err
	}
	took := time.Since(start)
	g, err := cc.StatsGlobal()
	if err != nil {
		return fmt.Errorf("read the conntrack table size: %w", err)
	}
	res.note(name, "created %s entries through ctnetlink (256 per sendmsg) in %s (%.1f µs per entry); the namespace's table then holds %s",
		comma(int64(cfg.entries)), took.Round(10*time.Millisecond), took.Seconds()*1e6/float64(cfg.entries), comma(int64(g.Entries)))
	if int(g.Entries) < cfg.entries+1 {
		return fmt.Errorf("the conntrack table holds %d entries after creating %d", g.Entries, cfg.entries+1)
	}

	// ProbeConntrack in this process, as the TUI and check run it.
	t, err := probes.OpenTarget(h.host.Name, 0)
	if err != nil {
		return err
	}
	defer t.Close()
	runs := max(cfg.runs, 101)
	progress("%s: ProbeConntrack in process, %d runs", name, runs)
	var in series
	var most int64
	for i := -3; i < runs; i++ { // three warm-up runs
		_, _, c0 := t.Received()
		t0 := time.Now()
		v := probes.ProbeConntrack(ctx, t, f)
		d := time.Since(t0)
		_, _, c1 := t.Received()
		if !v.OK() {
			return fmt.Errorf("ProbeConntrack: %s: %s", v.Status, v.Reason)
		}
		if len(v.Entries) != 1 || int(v.Count) < cfg.entries {
			return fmt.Errorf("ProbeConntrack found %d entries for the flow in a table of %d, want 1 in %d", len(v.Entries), v.Count, cfg.entries+1)
		}
		if i >= 0 {
			in.wall = append(in.wall, d)
			most = max(most, c1-c0)
		}
	}
	rp := res.add(&row{scenario: name, what: fmt.Sprintf("ProbeConntrack in process (%s entries): the flow's entry and statistics", comma(int64(cfg.entries+1))), s: in,
		target: "< 20 ms, no table dump"})
	dump := "yes"
	if most > 2 {
		dump = fmt.Sprintf("NO: %d entries received in one run", most)
	}
	rp.met = verdicts("time", verdictBelow(float64(quantile(in.wall, 0.5))/1e6, 20, "ms"), "no dump", dump)
	res.note(name, "ProbeConntrack received at most %d conntrack entr%s per run (counted by Target.Received)", most, map[bool]string{true: "y", false: "ies"}[most == 1])

	self, err := os.Executable()
	if err != nil {
		return err
	}
	fresh := &measureSet{name: "ProbeConntrack", cmds: []cmdSpec{{argv: []string{self, ctProbeChildArg, h.host.Name, flow4}}}}
	filtered := &measureSet{name: "filtered", cmds: []cmdSpec{{argv: []string{self, ctDumpChildArg, h.host.Name, flow4, "filtered"}}}}
	full := &measureSet{name: "full", cmds: []cmdSpec{{argv: []string{self, ctDumpChildArg, h.host.Name, flow4, "full"}}}}
	asym := &measureSet{name: "asym", cmds: []cmdSpec{{argv: append([]string{cfg.asym, "check", "--json", "--netns", h.host.Name}, strings.Fields(flow4)...), okCodes: []int{0, 1}}}}
	for _, m := range []*measureSet{fresh, filtered, full} {
		out, err := m.cmds[0].check(ctx, cfg)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), "matched=1") {
			return fmt.Errorf("%s did not find the flow's entry: %s", m.cmds[0], strings.TrimSpace(string(out)))
		}
		res.note(name, "%s: %s", m.name, strings.TrimSpace(string(out)))
	}
	out, err := asym.cmds[0].check(ctx, cfg)
	if err != nil {
		return err
	}
	if err := checkReport(res, name, out); err != nil {
		return err
	}
	progress("%s: measuring processes (ProbeConntrack, ctnetlink dumps, asym check), %d runs each", name, cfg.runs)
	if err := measureAll(ctx, cfg, cfg.runs, fresh, filtered, full, asym); err != nil {
		return err
	}
	rf := res.add(&row{scenario: name, what: "ProbeConntrack in a fresh process (start to exit)", s: fresh.s})
	res.add(&row{scenario: name, what: "ctnetlink dump filtered by the kernel (≈ conntrack -L -p tcp -s -d --sport --dport)", s: filtered.s, vs: rf})
	res.add(&row{scenario: name, what: "ctnetlink full dump, every entry decoded (≈ conntrack -L piped to grep)", s: full.s, vs: rf})
	res.add(&row{scenario: name, what: fmt.Sprintf("asym check --json (%s conntrack entries)", comma(int64(cfg.entries+1))), s: asym.s})
	return nil
}

// ctProbeChild runs ProbeConntrack once: the fresh-process reference for
// the dumps.
func ctProbeChild(args []string) int {
	if len(args) != 2 || !strings.HasPrefix(args[0], nsPrefix) {
		fmt.Fprintln(os.Stderr, "usage: asym-bench __ctprobe asym-bench-NS FLOW")
		return 2
	}
	f, err := flow.ParseString(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	t, err := probes.OpenTarget(args[0], 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer t.Close()
	v := probes.ProbeConntrack(context.Background(), t, f)
	if !v.OK() {
		fmt.Fprintf(os.Stderr, "ProbeConntrack: %s: %s\n", v.Status, v.Reason)
		return 1
	}
	_, _, got := t.Received()
	fmt.Printf("entries received=%d matched=%d table=%d\n", got, len(v.Entries), v.Count)
	return 0
}

// ctDumpChild dumps the conntrack table the way conntrack -L does: with
// "filtered", the kernel compares every entry with the flow's original
// tuple and sends only matches (CTA_FILTER, Linux 5.8+, what conntrack-tools
// 1.4.6+ sends for -p/-s/-d/--sport/--dport); with "full", the kernel sends
// every entry and each is decoded here and compared, like a dump piped to
// grep. It prints no text per entry, so it is faster than the tool.
func ctDumpChild(args []string) int {
	if len(args) != 3 || !strings.HasPrefix(args[0], nsPrefix) || (args[2] != "filtered" && args[2] != "full") {
		fmt.Fprintln(os.Stderr, "usage: asym-bench __ctdump asym-bench-NS FLOW filtered|full")
		return 2
	}
	f, err := flow.ParseString(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	n, matched, err := ctDump(args[0], f, args[2] == "filtered")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("entries received=%d matched=%d\n", n, matched)
	return 0
}

func ctDump(nsName string, f flow.Flow, filtered bool) (n, matched int, err error) {
	h, err := netns.GetFromName(nsName)
	if err != nil {
		return 0, 0, fmt.Errorf("open namespace %s: %w", nsName, err)
	}
	defer h.Close()
	c, err := mdnetlink.Dial(unix.NETLINK_NETFILTER, &mdnetlink.Config{NetNS: int(h)})
	if err != nil {
		return 0, 0, fmt.Errorf("open a ctnetlink socket: %w", err)
	}
	defer c.Close()
	family := uint8(unix.AF_INET)
	if f.Is6() {
		family = unix.AF_INET6
	}
	data := nfgen(family)
	if filtered {
		ae := mdnetlink.NewAttributeEncoder()
		ae.ByteOrder = binary.BigEndian
		ae.Nested(ctaTupleOrig, ctTuple(f.Src.Addr(), f.Dst.Addr(), uint8(f.Proto), f.Src.Port(), f.Dst.Port()))
		ae.Nested(ctaFilter, func(fe *mdnetlink.AttributeEncoder) error {
			// NLA_U32 in the kernel's policy: host byte order.
			fe.Bytes(ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, ctFilterIPSrc|ctFilterIPDst|ctFilterProtoNum|ctFilterProtoSrcPort|ctFilterProtoDstPort))
			fe.Bytes(ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, 0))
			return nil
		})
		attrs, err := ae.Encode()
		if err != nil {
			return 0, 0, err
		}
		data = append(data, attrs...)
	}
	req := mdnetlink.Message{
		Header: mdnetlink.Header{Type: mdnetlink.HeaderType(unix.NFNL_SUBSYS_CTNETLINK<<8 | ipctnlMsgCtGet), Flags: mdnetlink.Request | mdnetlink.Dump},
		Data:   data,
	}
	if _, err := c.Send(req); err != nil {
		return 0, 0, fmt.Errorf("ask for a conntrack dump: %w", err)
	}
	// Read the dump as it comes, a buffer at a time, as libmnl-based tools
	// do (mdlayher/netlink's Receive would gather the whole dump first).
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	src, dst := netip.AddrPortFrom(f.Src.Addr(), f.Src.Port()), netip.AddrPortFrom(f.Dst.Addr(), f.Dst.Port())
	buf := make([]byte, 64<<10)
	for {
		var got int
		var rerr error
		if err := rc.Read(func(fd uintptr) bool {
			got, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		}); err != nil {
			return n, matched, err
		}
		if rerr != nil {
			return n, matched, fmt.Errorf("read the conntrack dump: %w", rerr)
		}
		for b := buf[:got]; len(b) >= unix.SizeofNlMsghdr; {
			l := int(binary.NativeEndian.Uint32(b))
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return n, matched, errors.New("read the conntrack dump: a truncated message")
			}
			switch binary.NativeEndian.Uint16(b[4:]) {
			case unix.NLMSG_DONE:
				return n, matched, nil
			case unix.NLMSG_ERROR:
				code := int32(binary.NativeEndian.Uint32(b[unix.SizeofNlMsghdr:]))
				return n, matched, fmt.Errorf("the kernel refused the conntrack dump: %w", unix.Errno(-code))
			}
			var m mdnetlink.Message
			if err := m.UnmarshalBinary(b[:l]); err != nil {
				return n, matched, fmt.Errorf("decode a conntrack message: %w", err)
			}
			n++
			var ev conntrack.Event
			if err := ev.Unmarshal(m); err != nil {
				return n, matched, fmt.Errorf("decode a conntrack entry: %w", err)
			}
			o := ev.Flow.TupleOrig
			if o.Proto.Protocol == uint8(f.Proto) &&
				netip.AddrPortFrom(o.IP.SourceAddress.Unmap(), o.Proto.SourcePort) == src &&
				netip.AddrPortFrom(o.IP.DestinationAddress.Unmap(), o.Proto.DestinationPort) == dst {
				matched++
			}
			b = b[min((l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1), len(b)):]
		}
	}
}

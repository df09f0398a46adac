package probes

// The filtered conntrack dump: the flow's entries when the flow lacks what
// an exact lookup needs (a port the person does not know, or an ICMP echo
// id). The kernel compares every entry with the known parts of one tuple
// and sends only those that match (CTA_FILTER, Linux 5.8+); asym reads at
// most ctDumpCap of them and checks each again itself.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"asym/flow"
	"asym/probes/ctentry"

	"github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/ti-mo/netfilter"
	"golang.org/x/sys/unix"
)

// ctnetlink attribute numbers (include/uapi/linux/netfilter/nfnetlink_conntrack.h)
// and the CTA_FILTER_F_* flags, which the uapi header lacks: they live in
// net/netfilter/nf_internals.h.
const (
	ipctnlMsgCtGet = 1 // IPCTNL_MSG_CT_GET

	ctaTupleOrig  = 1  // CTA_TUPLE_ORIG
	ctaTupleReply = 2  // CTA_TUPLE_REPLY
	ctaFilter     = 25 // CTA_FILTER

	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaTupleProto = 2 // CTA_TUPLE_PROTO

	ctaIPv4Src, ctaIPv4Dst = 1, 2 // CTA_IP_V4_SRC, CTA_IP_V4_DST

	ctaProtoNum     = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDstPort = 3 // CTA_PROTO_DST_PORT

	ctaFilterOrigFlags  = 1 // CTA_FILTER_ORIG_FLAGS
	ctaFilterReplyFlags = 2 // CTA_FILTER_REPLY_FLAGS

	ctFilterIPSrc        = 1 << 0 // CTA_FILTER_F_CTA_IP_SRC
	ctFilterIPDst        = 1 << 1 // CTA_FILTER_F_CTA_IP_DST
	ctFilterProtoNum     = 1 << 3 // CTA_FILTER_F_CTA_PROTO_NUM
	ctFilterProtoSrcPort = 1 << 4 // CTA_FILTER_F_CTA_PROTO_SRC_PORT
	ctFilterProtoDstPort = 1 << 5 // CTA_FILTER_F_CTA_PROTO_DST_PORT
)

// ctDumpCap bounds the entries one probe reads from filtered dumps, all of
// them together. A flow without a source port matches one entry per client
// connection: a handful normally, thousands on a busy server. Past the cap
// asym stops reading and closes the socket (the kernel then drops the rest
// of the dump) and says to give the port.
const ctDumpCap = 64

// ctDumpBufSize is the receive buffer. The kernel fills each dump datagram
// up to the largest buffer the reader has used (netlink_dump,
// net/netlink/af_netlink.c; at least NLMSG_GOODSIZE, which is below 8 KiB
// on every page size), so a small buffer keeps what one read brings past
// the cap small: some 25 entries.
const ctDumpBufSize = 8 << 10

// ctFilterMinKernel is the first release whose ctnetlink filters dumps by
// tuple ("netfilter: ctnetlink: add kernel side filtering for dump",
// netfilter-devel, March 2020). An older kernel does not know CTA_FILTER and
// ignores it (nla_parse skips attributes above its CTA_MAX), so it would
// answer with the whole table: asym does not ask it.
var ctFilterMinKernel = [2]int{5, 8}

// ctFilterKernel says whether the kernel release (uname -r, "6.18.44-fc")
// filters conntrack dumps. A release it cannot read counts as too old.
func ctFilterKernel(release string) bool {
	fields := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(fields) < 2 || !strings.HasPrefix(release, fields[0]) {
		return false
	}
	major, err1 := strconv.Atoi(fields[0])
	minor, err2 := strconv.Atoi(fields[1])
	if err1 != nil || err2 != nil {
		return false
	}
	want := ctFilterMinKernel
	return major > want[0] || major == want[0] && minor >= want[1]
}

// kernelRelease is `uname -r`. Every namespace shares the host's kernel.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return ""
	}
	return unix.ByteSliceToString(u.Release[:])
}

// ctDir names the tuple of an entry that a filter compares.
type ctDir uint8

const (
	ctOrig  ctDir = iota // the entry's original tuple (CTA_TUPLE_ORIG)
	ctReply              // its reply tuple (CTA_TUPLE_REPLY)
)

// ctFilterOf is one filtered dump: every entry whose dir tuple has the known
// parts of tuple (addresses and protocol always, ports when not 0).
type ctFilterOf struct {
	form  flow.Flow // the form of the flow it stands for
	tuple flow.Flow // the form or its reverse
	dir   ctDir
}

// flags are the CTA_FILTER_F_* bits of the tuple's known fields.
//
// IPv6 addresses are left to asym: ctnetlink_filter_match_tuple
// (net/netfilter/nf_conntrack_netlink.c, since 5.8 and still in 6.18)
// skips an entry when `!ipv6_addr_cmp(filter, entry)`, that is when the
// addresses are equal, and sends those that differ (TestConntrackKernelIPv6Filter
// shows it). An IPv6 dump is filtered by family, protocol and ports only,
// and its addresses are compared in matches.
func (q ctFilterOf) flags() uint32 {
	fl := uint32(ctFilterProtoNum)
	if !q.tuple.Is6() {
		fl |= ctFilterIPSrc | ctFilterIPDst
	}
	if ctentry.HasPorts(q.tuple.Proto) {
		if q.tuple.Src.Port() != 0 {
			fl |= ctFilterProtoSrcPort
		}
		if q.tuple.Dst.Port() != 0 {
			fl |= ctFilterProtoDstPort
		}
	}
	return fl
}

// request is IPCTNL_MSG_CT_GET with NLM_F_DUMP, nfgenmsg's family the
// tuple's, the tuple as CTA_TUPLE_ORIG or CTA_TUPLE_REPLY with only its
// known fields, and CTA_FILTER saying which those are. The kernel reads it
// in ctnetlink_alloc_filter and compares in ctnetlink_filter_match_tuple
// (net/netfilter/nf_conntrack_netlink.c). The other direction's flags are
// sent as 0: no condition.
func (q ctFilterOf) request() (netlink.Message, error) {
	t := q.tuple
	family := netfilter.ProtoIPv4
	if t.Is6() {
		family = netfilter.ProtoIPv6
	}
	fl := q.flags()
	tupleAttr, origFlags, replyFlags := uint16(ctaTupleOrig), fl, uint32(0)
	if q.dir == ctReply {
		tupleAttr, origFlags, replyFlags = ctaTupleReply, 0, fl
	}
	ae := netfilter.NewAttributeEncoder() // big-endian: addresses and ports are in network order
	ae.Nested(tupleAttr, func(te *netlink.AttributeEncoder) error {
		if fl&(ctFilterIPSrc|ctFilterIPDst) != 0 { // IPv4 only (see flags)
			te.Nested(ctaTupleIP, func(ie *netlink.AttributeEncoder) error {
				ie.Bytes(ctaIPv4Src, t.Src.Addr().AsSlice())
				ie.Bytes(ctaIPv4Dst, t.Dst.Addr().AsSlice())
				return nil
			})
		}
		te.Nested(ctaTupleProto, func(pe *netlink.AttributeEncoder) error {
			pe.Uint8(ctaProtoNum, uint8(t.Proto))
			if fl&ctFilterProtoSrcPort != 0 {
				pe.Uint16(ctaProtoSrcPort, t.Src.Port())
			}
			if fl&ctFilterProtoDstPort != 0 {
				pe.Uint16(ctaProtoDstPort, t.Dst.Port())
			}
			return nil
		})
		return nil
	})
	ae.Nested(ctaFilter, func(fe *netlink.AttributeEncoder) error {
		// NLA_U32 in cta_filter_nla_policy: host byte order, unlike the tuple.
		fe.Bytes(ctaFilterOrigFlags, binary.NativeEndian.AppendUint32(nil, origFlags))
		fe.Bytes(ctaFilterReplyFlags, binary.NativeEndian.AppendUint32(nil, replyFlags))
		return nil
	})
	return netfilter.EncodeNetlink(netfilter.Header{
		SubsystemID: netfilter.NFSubsysCTNetlink,
		MessageType: ipctnlMsgCtGet,
		Family:      family,
		Flags:       netlink.Request | netlink.Dump,
	}, ae)
}

// matches checks an entry the kernel sent against the filter, as the
// kernel should have: a kernel that ignored part of the filter must not
// put another flow's entry into the evidence.
func (q ctFilterOf) matches(c conntrack.Flow) bool {
	t := c.TupleOrig
	if q.dir == ctReply {
		t = c.TupleReply
	}
	want := q.tuple
	src := ctentry.AddrPort(t.IP.SourceAddress, t.Proto.SourcePort)
	dst := ctentry.AddrPort(t.IP.DestinationAddress, t.Proto.DestinationPort)
	return t.Proto.Protocol == uint8(want.Proto) &&
		src.Addr() == want.Src.Addr().Unmap() && dst.Addr() == want.Dst.Addr().Unmap() &&
		(q.flags()&ctFilterProtoSrcPort == 0 || src.Port() == want.Src.Port()) &&
		(q.flags()&ctFilterProtoDstPort == 0 || dst.Port() == want.Dst.Port())
}

// formTuple is the entry's tuple in the direction of the form, with the
// entry's own ports: what ctentry.Flatten compares to name the direction,
// as the live watch does for a flow given without ports.
func (q ctFilterOf) formTuple(c conntrack.Flow) flow.Flow {
	t := c.TupleOrig
	if q.dir == ctReply {
		t = c.TupleReply
	}
	f := flow.Flow{
		Proto: flow.Proto(t.Proto.Protocol),
		Src:   ctentry.AddrPort(t.IP.SourceAddress, t.Proto.SourcePort),
		Dst:   ctentry.AddrPort(t.IP.DestinationAddress, t.Proto.DestinationPort),
	}
	if q.tuple != q.form {
		f = f.Reverse()
	}
	return f
}

// ctDumper reads filtered dumps on one ctnetlink socket, within one budget.
type ctDumper struct {
	c        *netlink.Conn
	buf      []byte
	received int  // entries in the datagrams read: what the kernel sent, matching or not
	decoded  int  // entries looked at, at most ctDumpCap
	more     bool // the budget ran out before a dump ended
}

func dialCtDumper(nsFD int) (*ctDumper, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, fmt.Errorf("open a ctnetlink socket for a filtered dump: %w", err)
	}
	return &ctDumper{c: c, buf: make([]byte, ctDumpBufSize)}, nil
}

func (d *ctDumper) Close() error { return d.c.Close() }

// dump runs one filtered dump (what names it in errors) and returns the
// entries the kernel sent. Once ctDumpCap entries have been read, it stops
// and sets more; the socket is then in the middle of a dump and must be
// closed, not asked again.
func (d *ctDumper) dump(req netlink.Message, what flow.Flow) ([]conntrack.Flow, error) {
	sent, err := d.c.Send(req)
	if err != nil {
		return nil, fmt.Errorf("ask for the conntrack entries of %s: %w", what, err)
	}
	var out []conntrack.Flow
	for !d.more {
		msgs, err := d.receive()
		if err != nil {
			return nil, fmt.Errorf("read the conntrack entries of %s: %w", what, err)
		}
		for _, m := range msgs {
			if m.Header.Seq != sent.Header.Sequence {
				continue // not this request's answer
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				return nil, fmt.Errorf("the kernel refused the filtered conntrack dump for %s: %w", what, nlError(m.Data))
			}
			d.received++
			if d.decoded == ctDumpCap {
				d.more = true
				continue // counted: it was read
			}
			d.decoded++
			var ev conntrack.Event
			if err := ev.Unmarshal(netlinkMessage(m)); err != nil {
				return nil, fmt.Errorf("decode a conntrack entry of %s: %w", what, err)
			}
			if ev.Flow != nil {
				out = append(out, *ev.Flow)
			}
		}
	}
	return out, nil
}

// receive reads one datagram of the dump. netlink.Conn.Receive would read
// the whole dump before returning, whatever its size.
func (d *ctDumper) receive() ([]syscall.NetlinkMessage, error) {
	rc, err := d.c.SyscallConn()
	if err != nil {
		return nil, err
	}
	var n, flags int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, flags, _, rerr = unix.Recvmsg(int(fd), d.buf, nil, 0)
		return rerr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return nil, err // the socket was closed: time ran out
	case rerr != nil:
		return nil, rerr
	case flags&unix.MSG_TRUNC != 0:
		return nil, errors.New("a datagram larger than the receive buffer")
	}
	return syscall.ParseNetlinkMessage(d.buf[:n])
}

// nlError is the errno of an NLMSG_ERROR message (struct nlmsgerr).
func nlError(b []byte) error {
	if len(b) < 4 {
		return errors.New("a truncated error message")
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(b)))
}

func netlinkMessage(m syscall.NetlinkMessage) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Length:   m.Header.Len,
			Type:     netlink.HeaderType(m.Header.Type),
			Flags:    netlink.HeaderFlags(m.Header.Flags),
			Sequence: m.Header.Seq,
			PID:      m.Header.Pid,
		},
		Data: m.Data,
	}
}

// ctFiltersOf are the filtered dumps for one form of the flow, in two
// rounds. The first compares the original tuple with the form and with
// its reverse (an entry the other side created). The second compares the
// reply tuple: it finds what only NAT causes, a form that is neither of
// an entry's tuples as the first packet had it (the flow as seen after the
// far end was rewritten). Without NAT it finds what the first round did,
// so it runs only when the first finds nothing.
func ctFiltersOf(form flow.Flow) [2][]ctFilterOf {
	rev := form.Reverse()
	return [2][]ctFilterOf{
		{{form, form, ctOrig}, {form, rev, ctOrig}},
		{{form, form, ctReply}, {form, rev, ctReply}},
	}
}

// ctExact says whether an exact lookup can ask for the form: every field
// of its tuple is known. ICMP never is: conntrack keys it by echo id,
// type and code, which a flow does not carry.
func ctExact(f flow.Flow) bool {
	return ctentry.HasPorts(f.Proto) && f.Src.Port() != 0 && f.Dst.Port() != 0
}

// ctEntryKey identifies an entry across dumps: the kernel's id, and its
// original tuple in case two ids collide.
type ctEntryKey struct {
	id       uint32
	src, dst netip.AddrPort
	proto    uint8
}

func ctKey(c conntrack.Flow) ctEntryKey {
	t := c.TupleOrig
	return ctEntryKey{c.ID, ctentry.AddrPort(t.IP.SourceAddress, t.Proto.SourcePort), ctentry.AddrPort(t.IP.DestinationAddress, t.Proto.DestinationPort), t.Proto.Protocol}
}

package watch

// ctnetlink attributes, read in place: the tuple filter runs for every
// event of the namespace, so it walks the attributes without copying or
// allocating.

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// ctnetlink attribute numbers (include/uapi/linux/netfilter/nfnetlink_conntrack.h);
// x/sys/unix does not define them.
const (
	ctaTupleOrig    = 1 // CTA_TUPLE_ORIG
	ctaTupleReply   = 2 // CTA_TUPLE_REPLY
	ctaTupleIP      = 1 // CTA_TUPLE_IP
	ctaTupleProto   = 2 // CTA_TUPLE_PROTO
	ctaIPv4Src      = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst      = 2 // CTA_IP_V4_DST
	ctaIPv6Src      = 3 // CTA_IP_V6_SRC
	ctaIPv6Dst      = 4 // CTA_IP_V6_DST
	ctaProtoNum     = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDstPort = 3 // CTA_PROTO_DST_PORT
	ipctnlMsgCtNew  = 0 // IPCTNL_MSG_CT_NEW (NEW and UPDATE events)
	ipctnlMsgCtDel  = 2 // IPCTNL_MSG_CT_DELETE (DESTROY events)
	nlaTypeMask     = 0x3fff
	nlmsgHdrLen     = unix.SizeofNlMsghdr
	nfgenmsgLen     = 4
)

// nlAttr splits the first netlink attribute off b. Headers are host-endian
// (struct nlattr); the nested and byte-order flags are masked off the type.
func nlAttr(b []byte) (typ uint16, val, rest []byte, ok bool) {
	if len(b) < unix.SizeofNlAttr {
		return 0, nil, nil, false
	}
	l := int(binary.NativeEndian.Uint16(b))
	if l < unix.SizeofNlAttr || l > len(b) {
		return 0, nil, nil, false
	}
	typ = binary.NativeEndian.Uint16(b[2:]) & nlaTypeMask
	val = b[unix.SizeofNlAttr:l]
	next := min((l+unix.NLA_ALIGNTO-1)&^(unix.NLA_ALIGNTO-1), len(b))
	return typ, val, b[next:], true
}

// ctRawTuple points into a message: no copies.
type ctRawTuple struct {
	src, dst     []byte
	proto        uint8
	sport, dport uint16
}

// ctParseTuple reads CTA_TUPLE_IP and CTA_TUPLE_PROTO. Ports are
// big-endian (__be16). ICMP tuples have no ports and read as 0.
func ctParseTuple(b []byte) (t ctRawTuple, ok bool) {
	for len(b) > 0 {
		typ, val, rest, good := nlAttr(b)
		if !good {
			return t, false
		}
		b = rest
		switch typ {
		case ctaTupleIP:
			good = t.parseIP(val)
		case ctaTupleProto:
			good = t.parseProto(val)
		}
		if !good {
			return t, false
		}
	}
	return t, t.src != nil && t.dst != nil
}

// parseIP reads the attributes nested in CTA_TUPLE_IP; false when one is
// cut short. It and parseProto call their readers directly: through a func
// value, t would escape to the heap, and the filter must not allocate.
func (t *ctRawTuple) parseIP(b []byte) bool {
	for len(b) > 0 {
		typ, val, rest, ok := nlAttr(b)
		if !ok {
			return false
		}
		t.ip(typ, val)
		b = rest
	}
	return true
}

// parseProto reads the attributes nested in CTA_TUPLE_PROTO.
func (t *ctRawTuple) parseProto(b []byte) bool {
	for len(b) > 0 {
		typ, val, rest, ok := nlAttr(b)
		if !ok {
			return false
		}
		t.proto4(typ, val)
		b = rest
	}
	return true
}

// ip reads one attribute of CTA_TUPLE_IP.
func (t *ctRawTuple) ip(typ uint16, val []byte) {
	switch typ {
	case ctaIPv4Src, ctaIPv6Src:
		t.src = val
	case ctaIPv4Dst, ctaIPv6Dst:
		t.dst = val
	}
}

// proto4 reads one attribute of CTA_TUPLE_PROTO (layer 4).
func (t *ctRawTuple) proto4(typ uint16, val []byte) {
	switch {
	case typ == ctaProtoNum && len(val) >= 1:
		t.proto = val[0]
	case typ == ctaProtoSrcPort && len(val) >= 2:
		t.sport = binary.BigEndian.Uint16(val)
	case typ == ctaProtoDstPort && len(val) >= 2:
		t.dport = binary.BigEndian.Uint16(val)
	}
}

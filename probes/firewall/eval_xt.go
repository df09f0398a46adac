package firewall

// x_tables matches and targets on their raw data, as the kernel runs them:
// the ones iptables-nft carries through nft_compat and every one of
// iptables-legacy. Each layout is the uapi struct of the match
// (include/uapi/linux/netfilter/xt_*.h), host order unless said.

import (
	"encoding/binary"
	"net/netip"

	"asym/probes/xtables"

	"golang.org/x/sys/unix"
)

// xtMatchEval says whether a match holds for p; an unknown match, or one
// of a property asym cannot know, may.
func xtMatchEval(p *packet, name string, rev uint8, d []byte) (tri, string) {
	switch name {
	case "comment":
		return yes, ""
	case "conntrack":
		if ct, ok := xtables.DecodeConntrack(rev, d); ok {
			return xtConntrackEval(p, ct)
		}
	case "state":
		if len(d) >= 4 {
			return xtStateMatch(p, native.Uint32(d))
		}
	case "tcp":
		if len(d) >= 12 && !p.unknown {
			return xtTCP(p, d)
		}
	case "udp":
		if len(d) >= 9 && !p.unknown {
			return xtPorts(p, unix.IPPROTO_UDP, d, d[8]), ""
		}
	case "multiport":
		if !p.unknown {
			return xtMultiport(p, rev, d)
		}
	case "mark":
		if rev == 1 && len(d) >= 9 {
			return xtMark(p.mark, d, "-m mark")
		}
	case "connmark":
		if rev == 1 && len(d) >= 9 {
			if p.ct.present == no {
				return no, ""
			}
			t, why := xtMark(p.ct.mark, d, "-m connmark")
			return t.and(p.ct.present), why
		}
	case "icmp", "icmp6":
		if len(d) >= 4 && !p.unknown {
			return xtICMP(p, d), ""
		}
	}
	return maybe, "-m " + name
}

// xtStateBits maps nft's ct state bits to xt_conntrack's: there UNTRACKED
// is bit 8 (XT_CONNTRACK_STATE_UNTRACKED), nft's bit 6 being xt's SNAT.
func xtStateBits(nft uint32) uint32 {
	if nft&ctUntracked != 0 {
		return nft&^ctUntracked | 1<<8
	}
	return nft
}

// xtConntrack follows conntrack_mt (xt_conntrack.c): the state first; a
// packet without a connection matches on the state alone; then the tuple,
// the direction, status and expiry.
func xtConntrackEval(p *packet, ct xtables.Conntrack) (tri, string) {
	inv := func(flag uint16) bool { return ct.Invert&flag != 0 }
	out, why := yes, ""
	if ct.Flags&xtables.ConntrackState != 0 {
		switch {
		case !p.ct.state.known:
			out, why = maybe, "ct state"
		case ct.StateMask&(1<<6|1<<7) != 0 && p.ct.present != no:
			out, why = maybe, "--ctstate SNAT/DNAT" // the entry's NAT status bits
		default:
			bit := xtStateBits(p.ct.state.v)
			if (uint32(ct.StateMask)&bit != 0) == inv(xtables.ConntrackState) {
				return no, ""
			}
		}
	}
	switch p.ct.present {
	case no:
		return triOf(ct.Flags&xtables.ConntrackState != 0), ""
	case maybe:
		out, why = maybe, "whether the packet has a connection"
	}
	t, w := xtConntrackTuple(p, ct, inv)
	if t == maybe && why == "" {
		why = w
	}
	return out.and(t), why
}

// xtConntrackTuple checks the protocol, the tuples, the direction, the
// status and the expiry of a connection.
func xtConntrackTuple(p *packet, ct xtables.Conntrack, inv func(uint16) bool) (tri, string) {
	out := yes
	check := func(flag uint16, hold bool) {
		if ct.Flags&flag != 0 && hold == inv(flag) {
			out = no
		}
	}
	if p.unknown {
		if ct.Flags&^(xtables.ConntrackState|xtables.ConntrackStateAlias) != 0 {
			return maybe, "--ct… (no flow given)"
		}
		return yes, ""
	}
	check(xtables.ConntrackProto, uint16(p.proto) == ct.Proto)
	tuples := []struct {
		addr  netip.Addr
		port  uint16
		aflag uint16
		pflag uint16
		idx   int
	}{
		{p.ct.orig.Src.Addr(), p.ct.orig.Src.Port(), xtables.ConntrackOrigSrc, xtables.ConntrackOrigSrcPt, 0},
		{p.ct.orig.Dst.Addr(), p.ct.orig.Dst.Port(), xtables.ConntrackOrigDst, xtables.ConntrackOrigDstPt, 1},
		{p.ct.reply.Src.Addr(), p.ct.reply.Src.Port(), xtables.ConntrackReplSrc, xtables.ConntrackReplSrcPt, 2},
		{p.ct.reply.Dst.Addr(), p.ct.reply.Dst.Port(), xtables.ConntrackReplDst, xtables.ConntrackReplDstPt, 3},
	}
	for _, tp := range tuples {
		if ct.Flags&tp.aflag != 0 {
			check(tp.aflag, maskedEqual(tp.addr, ct.Addrs[2*tp.idx][:], ct.Addrs[2*tp.idx+1][:]))
		}
		lo, hi := ct.Ports[tp.idx], ct.PortsHigh[tp.idx]
		check(tp.pflag, tp.port >= lo && tp.port <= max(lo, hi))
	}
	if ct.Flags&xtables.ConntrackDirection != 0 {
		// --ctdir ORIGINAL sets the flag, REPLY also inverts it.
		if (p.ct.dir == 0) == inv(xtables.ConntrackDirection) {
			out = no
		}
	}
	if out != no && ct.Flags&(xtables.ConntrackStatus|xtables.ConntrackExpires) != 0 {
		return maybe, "--ctstatus or --ctexpire"
	}
	return out, ""
}

// maskedEqual compares an address with a masked one (the first 4 bytes
// for IPv4).
func maskedEqual(a netip.Addr, want, mask []byte) bool {
	if !a.IsValid() {
		return false
	}
	b := a.AsSlice()
	for i := range b {
		if i >= len(want) || i >= len(mask) || (b[i]^want[i])&mask[i] != 0 {
			return false
		}
	}
	return true
}

// xtStateMatch is state_mt (xt_state.c): bit 0 invalid, bit 6 untracked,
// then one bit per state as nft's.
func xtStateMatch(p *packet, mask uint32) (tri, string) {
	if !p.ct.state.known {
		return maybe, "ct state"
	}
	return triOf(mask&p.ct.state.v != 0), ""
}

// xtTCP is struct xt_tcp: u16 spts[2], u16 dpts[2], u8 option, u8
// flg_mask, u8 flg_cmp, u8 invflags.
func xtTCP(p *packet, d []byte) (tri, string) {
	out := xtPorts(p, unix.IPPROTO_TCP, d, d[11])
	if out == no {
		return no, ""
	}
	if mask := d[9]; mask != 0 {
		if !p.hasFlags {
			return out.and(maybe), "--tcp-flags"
		}
		if (p.tcpFlags&mask == d[10]) == (d[11]&invTCPFlags != 0) {
			return no, ""
		}
	}
	if d[8] != 0 {
		return out.and(maybe), "--tcp-option"
	}
	return out, ""
}

// The xt_tcp / xt_udp inversion flags.
const (
	invSrcPort  = 0x01
	invDstPort  = 0x02
	invTCPFlags = 0x04
)

// xtPorts checks the protocol and the source and destination port ranges
// that xt_tcp and xt_udp start with.
func xtPorts(p *packet, proto uint8, d []byte, inv uint8) tri {
	if p.proto != proto {
		return no
	}
	in := func(port uint16, known bool, at int, invert bool) tri {
		lo, hi := native.Uint16(d[at:]), native.Uint16(d[at+2:])
		if lo == 0 && hi == 0xffff && !invert {
			return yes
		}
		if !known {
			return maybe
		}
		return triOf((port >= lo && port <= hi) != invert)
	}
	return in(p.sport, p.sportKnown, 0, inv&invSrcPort != 0).and(in(p.dport, p.dportKnown, 4, inv&invDstPort != 0))
}

// xtMultiport is struct xt_multiport (revision 0: u8 flags, u8 count, u16
// ports[15]) or xt_multiport_v1 (then u8 pflags[15], u8 invert; a set
// pflag makes a port and the next one a range).
func xtMultiport(p *packet, rev uint8, d []byte) (tri, string) {
	if len(d) < 32 || (rev == 1 && len(d) < 48) || rev > 1 {
		return maybe, "-m multiport"
	}
	flags, count := d[0], int(min(d[1], 15))
	invert := rev == 1 && d[47] != 0
	if !p.sportKnown || !p.dportKnown {
		return maybe, "-m multiport"
	}
	hit := false
	for i := 0; i < count; i++ {
		lo, hi := native.Uint16(d[2+2*i:]), native.Uint16(d[2+2*i:])
		if rev == 1 && d[32+i] != 0 && i+1 < count {
			i++
			hi = native.Uint16(d[2+2*i:])
		}
		in := func(port uint16) bool { return port >= lo && port <= hi }
		switch flags { // XT_MULTIPORT_SOURCE, _DESTINATION, _EITHER
		case 0:
			hit = hit || in(p.sport)
		case 1:
			hit = hit || in(p.dport)
		default:
			hit = hit || in(p.sport) || in(p.dport)
		}
	}
	return triOf(hit != invert), ""
}

// xtMark is struct xt_mark_mtinfo1 (and xt_connmark_mtinfo1): u32 mark,
// u32 mask, u8 invert.
func xtMark(v value32, d []byte, what string) (tri, string) {
	if !v.known {
		return maybe, what
	}
	mark, mask, invert := native.Uint32(d), native.Uint32(d[4:]), d[8] != 0
	return triOf((v.v&mask == mark) != invert), ""
}

// xtICMP is struct ipt_icmp / ip6t_icmp: u8 type, u8 code[2], u8
// invflags.
func xtICMP(p *packet, d []byte) tri {
	if !p.icmp {
		return no
	}
	hold := p.icmpType == d[0] && p.icmpCode >= d[1] && p.icmpCode <= d[2]
	if d[0] == 0xff { // any type
		hold = true
	}
	return triOf(hold != (d[3]&0x01 != 0))
}

// xtTargetEval runs an x_tables target: it returns its verdict ("" when
// the packet goes on) and applies what it does to the packet.
func xtTargetEval(p *packet, name string, rev uint8, d []byte, reach tri) string {
	switch name {
	case "REJECT":
		return "reject"
	case "NFQUEUE", "QUEUE":
		return "queue"
	case "MARK":
		if rev == 2 && len(d) >= 8 { // xt_mark_tginfo2: u32 mark, u32 mask
			p.mark = setMasked(p.mark, native.Uint32(d), native.Uint32(d[4:]), reach)
		} else {
			p.mark = value32{}
		}
	case "CONNMARK":
		xtConnmark(p, rev, d, reach)
	case "DNAT", "SNAT", "MASQUERADE", "REDIRECT", "NETMAP":
		p.translate(xtTranslation(p, name, rev, d), reach)
		return "accept"
	case "CT", "NOTRACK":
		// xt_ct_target_info(_v1) starts with u16 flags; XT_CT_NOTRACK is 1.
		if name == "NOTRACK" || len(d) >= 2 && native.Uint16(d)&1 != 0 {
			p.untrack(reach)
		}
	}
	return ""
}

// setMasked is MARK --set-xmark: (old AND NOT mask) XOR value.
func setMasked(old value32, value, mask uint32, reach tri) value32 {
	switch {
	case reach == yes && (old.known || mask == 0xffffffff):
		return known32(old.v&^mask ^ value)
	case reach == maybe && old.known && old.v&^mask^value == old.v:
		return old
	}
	return value32{}
}

// xtConnmark is struct xt_connmark_tginfo1 (and 2, which adds shifts asym
// takes as unknown): u32 ctmark, u32 ctmask, u32 nfmask, u8 mode: set,
// save (packet to connection) or restore (connection to packet).
func xtConnmark(p *packet, rev uint8, d []byte, reach tri) {
	if len(d) < 13 || p.ct.present == no {
		return
	}
	if rev > 1 && len(d) >= 15 && (d[13] != 0 && d[14] != 0) {
		p.ct.mark, p.mark = value32{}, value32{}
		return
	}
	ctmark, ctmask, nfmask := native.Uint32(d), native.Uint32(d[4:]), native.Uint32(d[8:])
	switch d[12] {
	case 0: // XT_CONNMARK_SET
		p.ct.mark = setMasked(p.ct.mark, ctmark, ctmask, reach)
	case 1: // XT_CONNMARK_SAVE
		if !p.mark.known {
			p.ct.mark = value32{}
			return
		}
		p.ct.mark = setMasked(p.ct.mark, p.mark.v&nfmask, ctmask, reach)
	case 2: // XT_CONNMARK_RESTORE
		if !p.ct.mark.known {
			p.mark = value32{}
			return
		}
		p.mark = setMasked(p.mark, p.ct.mark.v&ctmask, nfmask, reach)
	}
}

// xtTranslation reads where an x_tables NAT target translates to:
// nf_nat_ipv4_multi_range_compat (revision 0 of SNAT and DNAT in IPv4:
// u32 rangesize, then u32 flags, be32 min_ip, be32 max_ip, be16 min port,
// be16 max port) or nf_nat_range(2) (u32 flags, 16-byte min and max
// address, be16 min and max port).
func xtTranslation(p *packet, name string, rev uint8, d []byte) translation {
	t := translation{dest: name == "DNAT" || name == "REDIRECT" || name == "NETMAP" && p.hook != "postrouting"}
	const rangeMapIPs, rangeProtoSpecified = 1, 2 // NF_NAT_RANGE_MAP_IPS, NF_NAT_RANGE_PROTO_SPECIFIED
	var flags uint32
	var lo, hi []byte
	var plo, phi uint16
	switch {
	case rev == 0 && len(d) >= 20 && !p.v6 && name != "REDIRECT" && name != "NETMAP":
		flags, lo, hi = native.Uint32(d[4:]), d[8:12], d[12:16]
		plo, phi = binary.BigEndian.Uint16(d[16:]), binary.BigEndian.Uint16(d[18:])
	case rev >= 1 && len(d) >= 40:
		n := 4
		if p.v6 {
			n = 16
		}
		flags, lo, hi = native.Uint32(d), d[4:4+n], d[20:20+n]
		plo, phi = binary.BigEndian.Uint16(d[36:]), binary.BigEndian.Uint16(d[38:])
	default:
		return translation{dest: t.dest}
	}
	t.keepAddr = flags&rangeMapIPs == 0 && name != "MASQUERADE" && name != "REDIRECT"
	if name != "MASQUERADE" && name != "REDIRECT" && string(lo) == string(hi) {
		t.addr, _ = netip.AddrFromSlice(lo)
		t.addr = t.addr.Unmap()
	}
	t.keepPort = flags&rangeProtoSpecified == 0
	t.port, t.portKnown = plo, plo == phi
	return t
}

package firewall

// Loads: what a rule reads of the packet (payload), of its metadata (meta)
// and of its connection (ct), and set lookups keyed by them.

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// payload loads header bytes. A write (nft's payload statement) changes
// the packet: what it writes becomes what later rules read.
func (ev *evaluator) payload(pl *expr.Payload) {
	h, what := ev.header(pl.Base)
	if pl.OperationType == expr.PayloadWrite {
		v, ok, _ := ev.r.load(pl.SourceRegister, int(pl.Len))
		if h.b != nil && int(pl.Offset+pl.Len) <= len(h.b) {
			if ok && ev.reach == yes {
				h.set(int(pl.Offset), v)
			} else {
				for i := range int(pl.Len) {
					h.known[int(pl.Offset)+i] = false
				}
			}
		}
		return
	}
	if v, ok := h.load(int(pl.Offset), int(pl.Len)); ok {
		ev.r.store(pl.DestRegister, v)
		return
	}
	ev.r.unknown(pl.DestRegister, int(pl.Len), fmt.Sprintf("%s bytes %d-%d", what, pl.Offset, pl.Offset+pl.Len-1))
}

// header is the header a payload base names.
func (ev *evaluator) header(base expr.PayloadBase) (bytesKnown, string) {
	switch base {
	case expr.PayloadBaseNetworkHeader:
		return ev.p.network, "network header"
	case expr.PayloadBaseTransportHeader:
		return ev.p.trans, "transport header"
	}
	return bytesKnown{}, "link-layer header"
}

// meta loads packet metadata or, from a source register, sets it.
func (ev *evaluator) meta(m *expr.Meta) {
	if m.SourceRegister {
		ev.metaSet(m)
		return
	}
	v, why := ev.metaValue(m.Key)
	if v == nil {
		ev.r.unknown(m.Register, 16, why)
		return
	}
	ev.r.store(m.Register, v)
}

// metaValue is what a meta load reads, nil (and what it is) when asym
// cannot know it.
func (ev *evaluator) metaValue(k expr.MetaKey) ([]byte, string) {
	p := ev.p
	switch k {
	case expr.MetaKeyIIF:
		return ifIndexBytes(p.iif), "meta iif"
	case expr.MetaKeyOIF:
		return ifIndexBytes(p.oif), "meta oif"
	case expr.MetaKeyIIFNAME:
		return ifNameBytes(p.iif), "meta iifname"
	case expr.MetaKeyOIFNAME:
		return ifNameBytes(p.oif), "meta oifname"
	case expr.MetaKeyMARK:
		if p.mark.known {
			return binary.NativeEndian.AppendUint32(nil, p.mark.v), ""
		}
		return nil, "meta mark"
	}
	if p.unknown {
		return nil, "meta (no flow given)"
	}
	switch k {
	case expr.MetaKeyNFPROTO:
		return []byte{p.family}, ""
	case expr.MetaKeyL4PROTO:
		return []byte{p.proto}, ""
	case expr.MetaKeyPROTOCOL:
		if p.v6 {
			return binary.BigEndian.AppendUint16(nil, unix.ETH_P_IPV6), ""
		}
		return binary.BigEndian.AppendUint16(nil, unix.ETH_P_IP), ""
	}
	return nil, metaKeyName(k)
}

// metaKeyName names the meta keys asym cannot know, for "may match".
func metaKeyName(k expr.MetaKey) string {
	names := map[expr.MetaKey]string{
		expr.MetaKeyLEN: "meta length", expr.MetaKeyPRIORITY: "meta priority", expr.MetaKeySKUID: "meta skuid",
		expr.MetaKeySKGID: "meta skgid", expr.MetaKeyPKTTYPE: "meta pkttype", expr.MetaKeyCPU: "meta cpu",
		expr.MetaKeyCGROUP: "meta cgroup", expr.MetaKeyPRANDOM: "meta random", expr.MetaKeyIIFTYPE: "meta iiftype",
		expr.MetaKeyOIFTYPE: "meta oiftype", expr.MetaKeyIIFGROUP: "meta iifgroup", expr.MetaKeyOIFGROUP: "meta oifgroup",
		expr.MetaKeyRTCLASSID: "meta rtclassid", expr.MetaKeySECMARK: "meta secmark", expr.MetaKeyNFTRACE: "meta nftrace",
	}
	if n, ok := names[k]; ok {
		return n
	}
	return fmt.Sprintf("meta key %d", k)
}

// ifIndexBytes is an interface index as meta iif loads it (host order; 0
// for none), nil when unknown.
func ifIndexBytes(i ifRef) []byte {
	if !i.known || (i.name != "" && i.index == 0) {
		return nil
	}
	return binary.NativeEndian.AppendUint32(nil, uint32(i.index))
}

// ifNameBytes is an interface name as meta iifname loads it: IFNAMSIZ
// bytes, zero-padded; all zeros for none.
func ifNameBytes(i ifRef) []byte {
	if !i.known {
		return nil
	}
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, i.name)
	return b
}

// metaSet is `meta mark set …` and the like: only the mark matters to the
// walk (policy routing and later rules read it).
func (ev *evaluator) metaSet(m *expr.Meta) {
	if m.Key != expr.MetaKeyMARK {
		return
	}
	ev.p.mark = ev.set32(m.Register, ev.p.mark)
}

// set32 is the value a statement sets from reg: known only when the
// statement certainly runs with a known value.
func (ev *evaluator) set32(reg uint32, old value32) value32 {
	v, ok, _ := ev.r.load(reg, 4)
	switch {
	case ev.reach == yes && ok:
		return known32(native.Uint32(v))
	case ev.reach == maybe && ok && old.known && old.v == native.Uint32(v):
		return old
	}
	return value32{}
}

// ct loads a property of the packet's connection or, from a source
// register, sets one. Without a connection, every key but the state ends
// the rule (nft_ct_get_eval: NFT_BREAK when there is no ct).
func (ev *evaluator) ct(c *expr.Ct) {
	if c.SourceRegister || c.Register == 0 {
		ev.ctSet(c)
		return
	}
	p := ev.p
	if c.Key == expr.CtKeySTATE {
		if p.ct.state.known {
			ev.r.store(c.Register, binary.NativeEndian.AppendUint32(nil, p.ct.state.v))
		} else {
			ev.r.unknown(c.Register, 4, "ct state")
		}
		return
	}
	ev.cond(p.ct.present, "whether the packet has a connection")
	if ev.reach == no {
		return
	}
	v, why := ev.ctValue(c)
	if v == nil {
		ev.r.unknown(c.Register, 16, why)
		return
	}
	ev.r.store(c.Register, v)
}

// ctValue is what a ct load reads of a present connection, nil (and what
// it is) when asym cannot know it.
func (ev *evaluator) ctValue(c *expr.Ct) ([]byte, string) {
	p := ev.p
	if p.unknown {
		return nil, "ct (no flow given)"
	}
	tuple := p.ct.orig
	if c.Direction == 1 {
		tuple = tuple.Reverse()
	}
	switch c.Key {
	case expr.CtKeyDIRECTION:
		return []byte{p.ct.dir}, ""
	case expr.CtKeyMARK:
		if p.ct.mark.known {
			return binary.NativeEndian.AppendUint32(nil, p.ct.mark.v), ""
		}
		return nil, "ct mark"
	case expr.CtKeyL3PROTOCOL:
		return []byte{p.family}, ""
	case expr.CtKeyPROTOCOL:
		return []byte{p.proto}, ""
	case expr.CtKeySRC, 19, 21: // NFT_CT_SRC, NFT_CT_SRC_IP, NFT_CT_SRC_IP6
		return tuple.Src.Addr().AsSlice(), ""
	case expr.CtKeyDST, 20, 22: // NFT_CT_DST, NFT_CT_DST_IP, NFT_CT_DST_IP6
		return tuple.Dst.Addr().AsSlice(), ""
	case expr.CtKeyPROTOSRC:
		return binary.BigEndian.AppendUint16(nil, tuple.Src.Port()), ""
	case expr.CtKeyPROTODST:
		return binary.BigEndian.AppendUint16(nil, tuple.Dst.Port()), ""
	}
	return nil, "ct key " + fmt.Sprint(c.Key)
}

// ctSet is `ct mark set …`; other ct statements (helper, zone, timeout)
// change nothing the walk reads. google/nftables (before fetch.go decoded
// ct itself) read `ct mark set` back without its register: its source is
// then the register written last.
func (ev *evaluator) ctSet(c *expr.Ct) {
	if c.Key != expr.CtKeyMARK {
		return
	}
	reg := c.Register
	if reg == 0 {
		reg = ev.r.last
	}
	if ev.p.ct.present == no {
		return
	}
	ev.p.ct.mark = ev.set32(reg, ev.p.ct.mark)
}

// lookup is a set lookup: a condition (`ip daddr @allowed`), a map into a
// register, or a verdict map.
func (ev *evaluator) lookup(l *expr.Lookup) {
	vmap := l.IsDestRegSet && l.DestRegister == unix.NFT_REG_VERDICT
	s, ok := ev.readSet(l.SetName)
	if !ok {
		ev.lookupUnknown(l, vmap, nftSet{}, "set @"+l.SetName+" could not be read")
		return
	}
	key, known, why := ev.r.load(l.SourceRegister, s.keyLen())
	if !known {
		ev.lookupUnknown(l, vmap, s, why)
		return
	}
	e, hit := s.find(key)
	switch {
	case vmap && hit == yes:
		ev.give(verdictKindWord(e.verdict), verdictChain(e.verdict))
		return
	case vmap:
		ev.cond(no, "")
		return
	}
	if l.Invert {
		hit = hit.not()
	}
	ev.cond(hit, "set @"+l.SetName+" changes at run time")
	if l.IsDestRegSet && ev.reach != no {
		if hit == yes && len(e.data) > 0 {
			ev.r.store(l.DestRegister, e.data)
		} else {
			ev.r.unknown(l.DestRegister, 16, "map @"+l.SetName)
		}
	}
}

// lookupUnknown: the key or the set is unknown. A verdict map may then
// give any of its verdicts, each "may"; a set or a map may match.
func (ev *evaluator) lookupUnknown(l *expr.Lookup, vmap bool, s nftSet, why string) {
	if !vmap || len(s.elems) == 0 {
		ev.cond(maybe, why)
		if l.IsDestRegSet && !vmap {
			ev.r.unknown(l.DestRegister, 16, "map @"+l.SetName)
		}
		if vmap {
			ev.give("?", "") // a verdict asym cannot tell: the walk stops here, may
		}
		return
	}
	ev.cond(maybe, why)
	seen := map[string]bool{}
	for _, e := range s.elems {
		if e.verdict == "" || seen[e.verdict] {
			continue
		}
		seen[e.verdict] = true
		ev.give(verdictKindWord(e.verdict), verdictChain(e.verdict))
	}
}

// readSet reads a set of the rule's table (once per walk).
func (ev *evaluator) readSet(name string) (nftSet, bool) {
	if ev.sets == nil {
		return nftSet{}, false
	}
	return ev.sets(name)
}

// keyLen is the length of the set's keys.
func (s nftSet) keyLen() int {
	for _, e := range s.elems {
		return len(e.key)
	}
	for _, e := range s.ends {
		return len(e.key)
	}
	return 4
}

// find looks key up: an element with that key, or for an interval set an
// interval holding it. A set that changes at run time (dynamic, or with
// timeouts) may hold a key it misses now.
func (s nftSet) find(key []byte) (nftSetElem, tri) {
	miss := no
	if s.dynamic {
		miss = maybe
	}
	switch {
	case s.concatRanges():
		for _, e := range s.elems {
			if inRanges(key, e.key, e.keyEnd) {
				return e, yes
			}
		}
		return nftSetElem{}, miss
	case s.interval:
		if e, ok := s.findInterval(key); ok {
			return e, yes
		}
		return nftSetElem{}, miss
	}
	for _, e := range s.elems {
		if bytes.Equal(e.key, key) {
			return e, yes
		}
	}
	return nftSetElem{}, miss
}

// concatRanges: a set of concatenations with ranges (nft_set_pipapo) keeps
// each element's start and end (NFTA_SET_ELEM_KEY_END).
func (s nftSet) concatRanges() bool {
	for _, e := range s.elems {
		if len(e.keyEnd) > 0 {
			return true
		}
	}
	return false
}

// inRanges matches a concatenation field by field. The fields' lengths are
// not in the elements; every field takes whole 32-bit words, and a field
// of several words (an IPv6 address) matched word by word is exact for
// the prefixes nft writes.
func inRanges(key, from, to []byte) bool {
	if len(from) != len(key) || len(to) != len(key) {
		return false
	}
	for i := 0; i+4 <= len(key); i += 4 {
		if bytes.Compare(key[i:i+4], from[i:i+4]) < 0 || bytes.Compare(key[i:i+4], to[i:i+4]) > 0 {
			return false
		}
	}
	return true
}

// findInterval finds the interval holding key in a set of intervals: the
// kernel lists a start element, and an end element (exclusive, flagged
// NFT_SET_ELEM_INTERVAL_END) where the next gap starts. The last element
// at or below the key decides: a start holds it, an end does not.
func (s nftSet) findInterval(key []byte) (nftSetElem, bool) {
	var best *nftSetElem
	bestEnd := false
	consider := func(e *nftSetElem, end bool) {
		if bytes.Compare(e.key, key) > 0 {
			return
		}
		if best == nil {
			best, bestEnd = e, end
			return
		}
		switch b := bytes.Compare(e.key, best.key); {
		case b > 0, b == 0 && !end:
			best, bestEnd = e, end
		}
	}
	for i := range s.ends {
		consider(&s.ends[i], true)
	}
	for i := range s.elems {
		consider(&s.elems[i], false)
	}
	if best == nil || bestEnd {
		return nftSetElem{}, false
	}
	return *best, true
}

// verdictKindWord and verdictChain split "jump NAME" into its parts.
func verdictKindWord(v string) string {
	w, _, _ := cutWord(v)
	return w
}

func verdictChain(v string) string {
	_, c, _ := cutWord(v)
	return c
}

func cutWord(s string) (string, string, bool) {
	for i := range len(s) {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// fib is a route lookup. The one asym can answer is the reverse-path
// check, `fib saddr [. mark] . iif oif` (nft_fib4_eval with NFTA_FIB_F_IIF):
// the output interface of the route back to the packet's source, kept only
// when it is the interface the packet came in on. The crossing knows that
// route's interface: when it is the input interface, the lookup finds it.
// Anything else (another interface, which a multipath route may still
// include; a mark asym does not know; an address type) stays unknown.
func (ev *evaluator) fib(f *expr.Fib) {
	p := ev.p
	rpf := f.FlagSADDR && !f.FlagDADDR && f.ResultOIF && (!f.FlagMARK || p.mark.known && p.mark.v == 0)
	if !rpf || !p.back.known || !p.iif.known || p.back.name == "" || p.back.name != p.iif.name && f.FlagIIF {
		ev.r.unknown(f.Register, 16, "fib")
		return
	}
	if f.FlagPRESENT {
		ev.r.store(f.Register, []byte{1})
		return
	}
	ev.r.store(f.Register, binary.NativeEndian.AppendUint32(nil, uint32(p.back.index)))
}

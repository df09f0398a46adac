package firewall

// Sets and lookups: `ct state { … }` and verdict maps, which firewalld ≥ 1.0
// writes as `ct state vmap { invalid : drop, established : accept,
// related : accept }`.

import (
	"cmp"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nftSet is what the scanner and the path walk need to know about a set a
// rule looks up.
type nftSet struct {
	anonymous bool
	interval  bool // elements are intervals: starts in elems, ends in ends
	dynamic   bool // the kernel adds and removes elements (dynamic, timeouts)
	elems     []nftSetElem
	ends      []nftSetElem // interval sets: where each interval ends (exclusive)
}

type nftSetElem struct {
	key     []byte
	keyEnd  []byte        // a concatenation with ranges: the inclusive end
	verdict string        // verdict maps only
	data    []byte        // data maps only
	counter *expr.Counter // sets with per-element counters only
}

// setReader gives a set of the rule's table by name; false when it cannot
// be read.
type setReader func(name string) (nftSet, bool)

// readSet fetches a set's elements.
func readSet(c *nftables.Conn, tb *nftables.Table, name string) (nftSet, error) {
	s, err := c.GetSetByName(tb, name)
	if err != nil {
		return nftSet{}, err
	}
	els, err := c.GetSetElements(s)
	if err != nil {
		return nftSet{}, err
	}
	fs := nftSet{anonymous: s.Anonymous || strings.HasPrefix(name, "__"), interval: s.Interval, dynamic: s.Dynamic || s.HasTimeout}
	for _, e := range els {
		fe := nftSetElem{key: e.Key, keyEnd: e.KeyEnd, counter: e.Counter}
		if e.IntervalEnd {
			fs.ends = append(fs.ends, fe)
			continue
		}
		switch {
		case len(e.Val) > 0 && verdictMap(s):
			fe.verdict = decodeVerdictData(e.Val)
		case len(e.Val) > 0:
			fe.data = e.Val
		}
		fs.elems = append(fs.elems, fe)
	}
	return fs, nil
}

// verdictMap says a set maps keys to verdicts. google/nftables v0.3.0
// reads a verdict map's data type (0xffffff00 in NFTA_SET_DATA_TYPE) into
// the key type, so both are looked at.
func verdictMap(s *nftables.Set) bool {
	return s.IsMap && (s.DataType.Name == nftables.TypeVerdict.Name || s.KeyType.Name == nftables.TypeVerdict.Name)
}

// decodeVerdictData decodes a verdict map element's data. google/nftables
// v0.3.0 leaves it as the raw NFTA_DATA_VERDICT payload (SetElement.Val,
// VerdictData stays nil): nested NFTA_VERDICT_CODE (big-endian s32) and,
// for jump/goto, NFTA_VERDICT_CHAIN.
func decodeVerdictData(b []byte) string {
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
	return verdictName(expr.VerdictKind(code), chain)
}

// ctLookup handles `ct state { … }` and `ct state vmap { … }`.
func ctLookup(l *expr.Lookup, sets setReader) ctMatch {
	vmap := l.IsDestRegSet && l.DestRegister == unix.NFT_REG_VERDICT
	if l.IsDestRegSet && !vmap {
		return ctMatch{used: 1, text: "ct state map …"} // a data map: not a condition
	}
	prefix := ctLookupPrefix(vmap, l.Invert)
	m := ctMatch{used: 1, text: prefix + "@" + l.SetName}
	var s nftSet
	ok := false
	if sets != nil {
		s, ok = sets(l.SetName)
	}
	if !ok {
		return m
	}
	parts, invalid, hit := ctSetElems(s.elems, vmap)
	if s.anonymous {
		m.text = prefix + "{ " + strings.Join(parts, ", ") + " }"
	}
	if !ctLookupMatches(vmap, l.Invert, hit, invalid) {
		return m
	}
	m.matches, m.counter = true, invalid.counter
	if vmap {
		m.verdict = invalid.verdict
	}
	return m
}

// ctLookupPrefix is what nft prints before the set.
func ctLookupPrefix(vmap, invert bool) string {
	switch {
	case vmap:
		return "ct state vmap "
	case invert:
		return "ct state != "
	}
	return "ct state "
}

// ctSetElems renders a set of ct states in nft's order (by value) and
// finds its invalid element.
func ctSetElems(elems []nftSetElem, vmap bool) (parts []string, invalid nftSetElem, hit bool) {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, func(a, b nftSetElem) int { return cmp.Compare(key32(a.key), key32(b.key)) })
	for _, e := range sorted {
		k := key32(e.key)
		p := ctStateNames(k)
		if vmap {
			p += " : " + e.verdict
		}
		parts = append(parts, p)
		if k == ctInvalid {
			invalid, hit = e, true
		}
	}
	return parts, invalid, hit
}

// ctLookupMatches says whether an invalid packet satisfies the lookup: for
// a verdict map, whether it maps invalid to a verdict.
func ctLookupMatches(vmap, invert, hit bool, invalid nftSetElem) bool {
	if vmap {
		return hit && invalid.verdict != ""
	}
	return hit != invert
}

// key32 reads a 4-byte host-endian key or register value; 0 for any other
// length.
func key32(b []byte) uint32 {
	if len(b) != 4 {
		return 0
	}
	return native.Uint32(b)
}

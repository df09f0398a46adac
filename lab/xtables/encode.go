package xtables

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
	"slices"
)

// Blob is a table laid out as the kernel takes it: the entries and, as byte
// offsets into them, where each built-in chain starts and where its policy
// rule is.
type Blob struct {
	Family     string
	Name       string
	ValidHooks uint32
	HookEntry  [5]uint32
	Underflow  [5]uint32
	NumEntries uint32
	Entries    []byte
}

// layout is the 64-bit struct ipt_entry / ip6t_entry (ip_tables.h,
// ip6_tables.h; checked with offsetof on x86_64).
type layout struct {
	entrySize int
	addrLen   int
	ifaces    int // iniface, outiface, iniface_mask, outiface_mask: 16 bytes each
	proto     int // u16
	flags     int
	target    int // u16 target_offset, u16 next_offset
	flagGoto  uint8
	flagProto uint8 // IP6T_F_PROTO: ip6tables matches the protocol only with it
}

var layouts = map[string]layout{
	"ip":  {entrySize: 112, addrLen: 4, ifaces: 16, proto: 80, flags: 82, target: 88, flagGoto: 0x02},
	"ip6": {entrySize: 168, addrLen: 16, ifaces: 64, proto: 128, flags: 131, target: 140, flagGoto: 0x04, flagProto: 0x01},
}

const (
	extHeader      = 32 // struct xt_entry_match / xt_entry_target
	standardSize   = 40 // struct xt_standard_target: header, int verdict, padding
	errorSize      = 64 // struct xt_error_target: header, char errorname[30], padding
	extNameLen     = 29
	verdictDrop    = -1 // -NF_DROP - 1
	verdictAccept  = -2 // -NF_ACCEPT - 1
	verdictQueue   = -4 // -NF_QUEUE - 1
	verdictReturn  = -5 // XT_RETURN
	errorTarget    = "ERROR"
	maxErrorNameSz = 30
)

var verdicts = map[string]int32{"ACCEPT": verdictAccept, "DROP": verdictDrop, "RETURN": verdictReturn, "QUEUE": verdictQueue}

// slot is one entry before its bytes exist: jumps are resolved once every
// chain's offset is known.
type slot struct {
	rule      Rule
	errorName string // an ERROR target: a user chain's head, or the table's end
	offset    int
	size      int
}

// Encode lays the table out as libiptc does: the built-in chains in hook
// order, each its rules then its policy rule; then each user chain: an
// ERROR entry naming it, its rules, and an unconditional RETURN; then an
// ERROR entry that ends the table.
func (t Table) Encode() (Blob, error) {
	if err := t.check(); err != nil {
		return Blob{}, fmt.Errorf("iptables-legacy table %s: %w", t.Name, err)
	}
	if t.Family == "" {
		t.Family = "ip"
	}
	lay := layouts[t.Family]
	b := Blob{Family: t.Family, Name: t.Name, ValidHooks: validHooks[t.Name]}
	chains := map[string]Chain{}
	for _, c := range t.Chains {
		chains[c.Name] = c
	}
	var slots []slot
	add := func(s slot) int {
		s.offset = 0
		if n := len(slots); n > 0 {
			s.offset = slots[n-1].offset + slots[n-1].size
		}
		s.size = lay.size(s)
		slots = append(slots, s)
		return s.offset
	}
	for h, name := range hooks {
		if b.ValidHooks&(1<<h) == 0 {
			continue
		}
		c := chains[name]
		policy := Accept
		if c.Policy == "DROP" {
			policy = Drop
		}
		first := len(slots)
		for _, r := range c.Rules {
			add(slot{rule: r})
		}
		b.Underflow[h] = uint32(add(slot{rule: Rule{Target: policy}}))
		b.HookEntry[h] = uint32(slots[first].offset)
	}
	starts := map[string]int{} // a user chain's first entry after its head: where jumps land
	for _, c := range t.Chains {
		if slices.Contains(hooks[:], c.Name) {
			continue
		}
		head := add(slot{errorName: c.Name})
		starts[c.Name] = head + lay.entrySize + errorSize
		for _, r := range c.Rules {
			add(slot{rule: r})
		}
		add(slot{rule: Rule{Target: Return}})
	}
	end := add(slot{errorName: errorTarget})
	b.NumEntries = uint32(len(slots))
	b.Entries = make([]byte, end+lay.entrySize+errorSize)
	for _, s := range slots {
		if err := lay.put(b.Entries[s.offset:s.offset+s.size], s, starts); err != nil {
			return Blob{}, fmt.Errorf("iptables-legacy table %s: %w", t.Name, err)
		}
	}
	return b, nil
}

// size is the length of a slot's entry.
func (lay layout) size(s slot) int {
	if s.errorName != "" {
		return lay.entrySize + errorSize
	}
	n := lay.entrySize
	for _, m := range s.rule.Matches {
		n += extHeader + len(m.Data)
	}
	if x := s.rule.Target.ext; x != nil {
		return n + extHeader + len(x.Data)
	}
	return n + standardSize
}

// put writes a slot's entry into e, which has exactly its size.
func (lay layout) put(e []byte, s slot, starts map[string]int) error {
	ne := binary.NativeEndian
	if len(e) > math.MaxUint16 {
		return fmt.Errorf("a rule of %d bytes does not fit the 16-bit next_offset", len(e))
	}
	ne.PutUint16(e[lay.target+2:], uint16(len(e))) // next_offset
	if s.errorName != "" {
		ne.PutUint16(e[lay.target:], uint16(lay.entrySize))
		name := make([]byte, errorSize-extHeader) // char errorname[30], padded
		copy(name[:maxErrorNameSz-1], s.errorName)
		putExt(e[lay.entrySize:], errorTarget, 0, name)
		return nil
	}
	r := s.rule
	if err := lay.putIP(e, r); err != nil {
		return err
	}
	at := lay.entrySize
	for _, m := range r.Matches {
		if m.Name == "" || len(m.Name) >= extNameLen || len(m.Data)%8 != 0 {
			return fmt.Errorf("match %q: a name of 1 to 28 bytes and data padded to 8 bytes are needed", m.Name)
		}
		putExt(e[at:], m.Name, m.Revision, m.Data)
		at += extHeader + len(m.Data)
	}
	ne.PutUint16(e[lay.target:], uint16(at)) // target_offset
	t := r.Target
	switch {
	case t.ext != nil:
		putExt(e[at:], t.ext.Name, t.ext.Revision, t.ext.Data)
		return nil
	case t.chain != "":
		putExt(e[at:], "", 0, make([]byte, standardSize-extHeader))
		ne.PutUint32(e[at+extHeader:], uint32(starts[t.chain]))
		if t.isGoto {
			e[lay.flags] |= lay.flagGoto
		}
		return nil
	case t.verdict != "":
		putExt(e[at:], "", 0, make([]byte, standardSize-extHeader))
		ne.PutUint32(e[at+extHeader:], uint32(verdicts[t.verdict]))
		return nil
	}
	// No target: jump to the next entry, which is how iptables writes a
	// rule that only counts (libiptc IPTCC_R_FALLTHROUGH).
	putExt(e[at:], "", 0, make([]byte, standardSize-extHeader))
	ne.PutUint32(e[at+extHeader:], uint32(s.offset+s.size))
	return nil
}

// putIP writes the entry's own conditions.
func (lay layout) putIP(e []byte, r Rule) error {
	n := lay.addrLen
	for i, p := range []netip.Prefix{r.Src, r.Dst} {
		if !p.IsValid() {
			continue
		}
		if p.Addr().BitLen() != 8*n {
			return fmt.Errorf("address %s does not belong in an %s table", p, map[int]string{4: "ip", 16: "ip6"}[n])
		}
		p = p.Masked()
		copy(e[i*n:], p.Addr().AsSlice())
		mask := e[(2+i)*n : (3+i)*n]
		for bit := 0; bit < p.Bits(); bit++ {
			mask[bit/8] |= 0x80 >> (bit % 8)
		}
	}
	for i, name := range []string{r.In, r.Out} {
		if len(name) >= 16 {
			return fmt.Errorf("interface name %q is longer than 15 bytes", name)
		}
		putIface(e[lay.ifaces+16*i:], e[lay.ifaces+32+16*i:], name)
	}
	if r.Proto != 0 {
		binary.NativeEndian.PutUint16(e[lay.proto:], uint16(r.Proto))
		e[lay.flags] |= lay.flagProto
	}
	return nil
}

// putIface writes an interface name and its mask as iptables does
// (xtables_parse_interface): the mask covers the name and its NUL, or, for
// "eth+", only "eth"; the '+' stays in the name.
func putIface(name, mask []byte, s string) {
	if s == "" {
		return
	}
	copy(name, s)
	covered := len(s) + 1
	if s[len(s)-1] == '+' {
		covered = len(s) - 1
	}
	for i := range covered {
		mask[i] = 0xff
	}
}

// putExt writes a match or target header and its data.
func putExt(b []byte, name string, revision uint8, data []byte) {
	binary.NativeEndian.PutUint16(b, uint16(extHeader+len(data)))
	copy(b[2:2+extNameLen-1], name)
	b[2+extNameLen] = revision
	copy(b[extHeader:], data)
}

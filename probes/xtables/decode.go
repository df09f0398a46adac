package xtables

import (
	"fmt"
	"net/netip"
)

// tableInfo is the kernel's answer to IPT_SO_GET_INFO: where each built-in
// chain starts (hookEntry) and where its policy rule is (underflow), as
// byte offsets into the entries, for the hooks set in validHooks.
type tableInfo struct {
	name       string
	validHooks uint32
	hookEntry  [numHooks]uint32
	underflow  [numHooks]uint32
	numEntries uint32
	size       uint32
}

// entry is one struct ipt_entry / ip6t_entry with its matches and target.
type entry struct {
	offset  uint32 // from the start of the entries
	size    uint32 // next_offset
	ip      ipPart
	matches []extension
	target  extension
	packets uint64
	bytes   uint64
}

// ipPart is the part of an entry that the table itself matches.
type ipPart struct {
	src, dst         netip.Addr
	srcMask, dstMask []byte // same length as the address
	in, out          iface
	proto            uint16
	tos              uint8 // ip6tables only
	flags, invflags  uint8
}

// iface is an interface condition: the name and the bytes of it that count.
type iface struct {
	name [ifNameLen]byte
	mask [ifNameLen]byte
}

// extension is a match or a target: its name, revision and data.
type extension struct {
	name     string
	revision uint8
	data     []byte
}

// decodeEntries splits the kernel's entries into rules, checking every
// length against the buffer: a short or inconsistent buffer is an error,
// never a read past its end.
func decodeEntries(fam family, buf []byte) ([]entry, error) {
	var out []entry
	for off := 0; off < len(buf); {
		e, err := decodeEntry(fam, buf[off:])
		if err != nil {
			return out, fmt.Errorf("entry %d at byte %d: %w", len(out)+1, off, err)
		}
		e.offset = uint32(off)
		out = append(out, e)
		off += int(e.size)
	}
	return out, nil
}

// decodeEntry decodes the entry at the start of b.
func decodeEntry(fam family, b []byte) (entry, error) {
	var e entry
	if len(b) < fam.entrySize {
		return e, fmt.Errorf("%d bytes left, an entry needs %d", len(b), fam.entrySize)
	}
	targetOff := int(native.Uint16(b[fam.offTarget:]))
	next := int(native.Uint16(b[fam.offTarget+2:]))
	switch {
	case next < fam.entrySize+extHeaderSize:
		return e, fmt.Errorf("next_offset %d is shorter than an entry with a target (%d)", next, fam.entrySize+extHeaderSize)
	case next > len(b):
		return e, fmt.Errorf("next_offset %d runs past the %d bytes left", next, len(b))
	case next%xtAlign != 0:
		return e, fmt.Errorf("next_offset %d is not a multiple of %d", next, xtAlign)
	case targetOff < fam.entrySize || targetOff+extHeaderSize > next:
		return e, fmt.Errorf("target_offset %d is outside %d..%d", targetOff, fam.entrySize, next-extHeaderSize)
	}
	e.size = uint32(next)
	e.ip = decodeIP(fam, b)
	e.packets = native.Uint64(b[fam.offCounters:])
	e.bytes = native.Uint64(b[fam.offCounters+8:])
	for m := fam.entrySize; m < targetOff; {
		ext, err := decodeExtension(b[m:targetOff])
		if err != nil {
			return e, fmt.Errorf("match at byte %d: %w", m, err)
		}
		e.matches = append(e.matches, ext)
		m += extHeaderSize + len(ext.data)
	}
	t, err := decodeExtension(b[targetOff:next])
	if err != nil {
		return e, fmt.Errorf("target: %w", err)
	}
	e.target = t
	return e, nil
}

// decodeExtension decodes the match or target at the start of b, which
// must hold all of it.
func decodeExtension(b []byte) (extension, error) {
	if len(b) < extHeaderSize {
		return extension{}, fmt.Errorf("%d bytes left, its header needs %d", len(b), extHeaderSize)
	}
	size := int(native.Uint16(b))
	if size < extHeaderSize || size > len(b) {
		return extension{}, fmt.Errorf("size %d is outside %d..%d", size, extHeaderSize, len(b))
	}
	return extension{
		name:     cString(b[2 : 2+extNameLen]),
		revision: b[2+extNameLen],
		data:     b[extHeaderSize:size],
	}, nil
}

func decodeIP(fam family, b []byte) ipPart {
	n := fam.addrLen
	addr := func(at int) netip.Addr {
		a, _ := netip.AddrFromSlice(b[at : at+n])
		return a
	}
	p := ipPart{
		src: addr(0), dst: addr(n),
		srcMask: b[2*n : 3*n], dstMask: b[3*n : 4*n],
		proto:    native.Uint16(b[fam.offProto:]),
		flags:    b[fam.offFlags],
		invflags: b[fam.offInv],
	}
	if fam.flagTOS != 0 {
		p.tos = b[fam.offProto+2]
	}
	i := fam.offIfaces
	copy(p.in.name[:], b[i:])
	copy(p.out.name[:], b[i+ifNameLen:])
	copy(p.in.mask[:], b[i+2*ifNameLen:])
	copy(p.out.mask[:], b[i+3*ifNameLen:])
	return p
}

// decodeInfo decodes a struct ipt_getinfo.
func decodeInfo(b []byte) (tableInfo, error) {
	var ti tableInfo
	if len(b) != getInfoSize {
		return ti, fmt.Errorf("the table description has %d bytes, not %d", len(b), getInfoSize)
	}
	ti.name = cString(b[:tableNameLen])
	at := tableNameLen
	u32 := func() uint32 {
		v := native.Uint32(b[at:])
		at += 4
		return v
	}
	ti.validHooks = u32()
	for h := range ti.hookEntry {
		ti.hookEntry[h] = u32()
	}
	for h := range ti.underflow {
		ti.underflow[h] = u32()
	}
	ti.numEntries = u32()
	ti.size = u32()
	return ti, nil
}

// verdict is a standard target's verdict; ok is false when its data is too
// short to hold one.
func (x extension) verdict() (v int32, ok bool) {
	if len(x.data) < 4 {
		return 0, false
	}
	return int32(native.Uint32(x.data)), true
}

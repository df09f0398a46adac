package xtables

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	labxt "asym/lab/xtables"
)

// infoBytes encodes a struct ipt_getinfo, as the kernel would answer.
func infoBytes(ti tableInfo) []byte {
	b := make([]byte, getInfoSize)
	copy(b, ti.name)
	at := tableNameLen
	put := func(v uint32) {
		native.PutUint32(b[at:], v)
		at += 4
	}
	put(ti.validHooks)
	for _, v := range ti.hookEntry {
		put(v)
	}
	for _, v := range ti.underflow {
		put(v)
	}
	put(ti.numEntries)
	put(ti.size)
	return b
}

// TestDecodeHostile feeds the decoder broken and odd tables built from a
// good one: every length is checked, so each gives an error or a sentence
// in the text, never a panic or a read past the buffer.
func TestDecodeHostile(t *testing.T) {
	good, err := routerFilter().Encode()
	if err != nil {
		t.Fatal(err)
	}
	v4 := familyIPv4
	// The first entry is INPUT's rule: the entry header, one xt_state match
	// of 32+8 bytes at 112, the DROP target at 152, next entry at 192.
	const match0, target0, entry1 = 112, 152, 192
	cases := []struct {
		name    string
		change  func(ti *tableInfo, b []byte) []byte
		wantErr string // "" when the table must decode
		check   func(t *testing.T, tbl Table)
	}{
		{name: "only part of an entry", change: func(_ *tableInfo, b []byte) []byte { return b[:50] },
			wantErr: "50 bytes left, an entry needs 112"},
		{name: "the last entry cut short", change: func(_ *tableInfo, b []byte) []byte { return b[:len(b)-8] },
			wantErr: "runs past"},
		{name: "next_offset 0", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[90:], 0); return b },
			wantErr: "next_offset 0 is shorter"},
		{name: "next_offset past the end", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[90:], 0xfff8); return b },
			wantErr: "runs past"},
		{name: "next_offset not aligned", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[90:], entry1+1); return b },
			wantErr: "not a multiple of 8"},
		{name: "target_offset inside the header", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[88:], 10); return b },
			wantErr: "target_offset 10 is outside"},
		{name: "target_offset at the end", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[88:], entry1-8); return b },
			wantErr: "target_offset 184 is outside"},
		{name: "match size 0", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[match0:], 0); return b },
			wantErr: "match at byte 112: size 0 is outside"},
		{name: "match larger than its room", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[match0:], 4000); return b },
			wantErr: "size 4000 is outside 32..40"},
		{name: "target larger than the entry", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[target0:], 0xffff); return b },
			wantErr: "target: size 65535 is outside 32..40"},
		{name: "fewer entries than announced", change: func(ti *tableInfo, b []byte) []byte { ti.numEntries++; return b },
			wantErr: "where the kernel announced"},
		{name: "nothing at all", change: func(ti *tableInfo, _ []byte) []byte { *ti = tableInfo{name: "filter"}; return nil },
			check: func(t *testing.T, tbl Table) {
				if len(tbl.Chains) != 0 {
					t.Errorf("chains %+v", tbl.Chains)
				}
			}},
		{name: "a standard target without its verdict", change: func(_ *tableInfo, b []byte) []byte { native.PutUint16(b[target0:], 32); return b },
			check: func(t *testing.T, tbl Table) {
				if r := tbl.Chains[0].Rules[0]; r.Text != "[0:0] -A INPUT -m state --state INVALID -j [standard target without a verdict]" || r.Verdict != "" {
					t.Errorf("rule %+v", r)
				}
			}},
		{name: "a jump outside every chain", change: func(ti *tableInfo, b []byte) []byte {
			// FORWARD's first rule jumps to CTCHECK: its verdict is the
			// first 4 bytes after the 32-byte target header.
			at := int(ti.hookEntry[2]) + v4.entrySize + extHeaderSize
			native.PutUint32(b[at:], 1<<20)
			return b
		}, check: func(t *testing.T, tbl Table) {
			if r := tbl.Chains[1].Rules[0]; !strings.HasSuffix(r.Text, " -j [jump to byte 1048576, outside every chain]") || r.Verdict != "" {
				t.Errorf("rule %+v", r)
			}
		}},
		{name: "a hook entry past the end", change: func(ti *tableInfo, b []byte) []byte { ti.hookEntry[1] = 1 << 30; return b },
			check: func(t *testing.T, tbl Table) {
				// INPUT has no start: its rule and policy belong to no chain.
				if tbl.Stray != 2 || tbl.Chains[0].Name != "FORWARD" {
					t.Errorf("stray %d, chains %+v", tbl.Stray, tbl.Chains)
				}
				rs := Ruleset{Tables: []Table{tbl}}
				if p := rs.Problems(); len(p) != 1 || !strings.Contains(p[0], "2 rule(s) that no chain reaches") {
					t.Errorf("problems %q", p)
				}
			}},
		{name: "no underflow for INPUT", change: func(ti *tableInfo, b []byte) []byte { ti.underflow[1] = 7; return b },
			check: func(t *testing.T, tbl Table) {
				// Without its policy rule, the chain keeps that rule as its last.
				if c := tbl.Chains[0]; c.Policy != "" || len(c.Rules) != 2 || c.Rules[1].Text != "[0:0] -A INPUT -j ACCEPT" {
					t.Errorf("INPUT %+v", c)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ti := blobInfo(good)
			b := c.change(&ti, append([]byte(nil), good.Entries...))
			tbl, err := decodeTable(v4, ti, b)
			switch {
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, c.wantErr)
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.check != nil:
				c.check(t, tbl)
			}
		})
	}
	if _, err := decodeInfo(make([]byte, getInfoSize-1)); err == nil {
		t.Error("a short GET_INFO answer decoded")
	}
}

// TestSizeCap: a table larger than MaxTableSize is refused with a sentence
// before its entries are asked for.
func TestSizeCap(t *testing.T) {
	if err := checkSize(familyIPv4, tableInfo{name: "filter", size: MaxTableSize}); err != nil {
		t.Errorf("a table of exactly the cap: %v", err)
	}
	err := checkSize(familyIPv6, tableInfo{name: "filter", size: MaxTableSize + 6<<20})
	want := "ip6tables-legacy table filter holds 70 MiB of rules, more than the 64 MiB asym reads: look at it with ip6tables-legacy-save -t filter"
	if err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
}

// TestDecodeShortExtensions: matches and targets whose data is shorter than
// their struct are shown by name, and decide no kind.
func TestDecodeShortExtensions(t *testing.T) {
	short := make([]byte, 8)
	tbl := labxt.Table{Name: "filter", Chains: []labxt.Chain{{Name: "INPUT", Rules: []labxt.Rule{
		{Matches: []labxt.Match{{Name: "conntrack", Revision: 3, Data: short}}, Target: labxt.Drop},
		{Matches: []labxt.Match{{Name: "conntrack", Revision: 0, Data: make([]byte, 160)}}},
		{Matches: []labxt.Match{{Name: "state"}, {Name: "rpfilter"}, {Name: "tcp", Data: short}, {Name: "comment"}}},
		{Target: labxt.Extension("REJECT", 0, nil)},
	}}}}
	b, err := tbl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeTable(familyIPv4, blobInfo(b), b.Entries)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"[0:0] -A INPUT -m conntrack … -j DROP",
		"[0:0] -A INPUT -m conntrack …",
		`[0:0] -A INPUT -m state -m rpfilter -m tcp … -m comment --comment ""`,
		"[0:0] -A INPUT -j REJECT",
	}
	for i, r := range got.Chains[0].Rules {
		if r.Text != want[i] || r.Kind != "" {
			t.Errorf("rule %d: %q kind %q, want %q", i+1, r.Text, r.Kind, want[i])
		}
	}
}

// FuzzDecodeTable decodes arbitrary GET_INFO and GET_ENTRIES answers in
// both layouts: it must never panic.
func FuzzDecodeTable(f *testing.F) {
	bins, _ := filepath.Glob("testdata/iptables-1.8.9/*.bin")
	for _, bin := range bins {
		b, err := os.ReadFile(bin)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, lt := range []labxt.Table{routerFilter(), routerRaw(), loopback6Filter()} {
		b, err := lt.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(infoBytes(blobInfo(b)), b.Entries...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < getInfoSize {
			return
		}
		ti, err := decodeInfo(data[:getInfoSize])
		if err != nil {
			t.Fatal(err)
		}
		for _, fam := range families {
			// Past decodeTable's count check too: build whatever decoded.
			entries, _ := decodeEntries(fam, data[getInfoSize:])
			rs := Ruleset{Tables: []Table{buildTable(fam, ti, entries)}}
			if tbl, err := decodeTable(fam, ti, data[getInfoSize:]); err == nil {
				rs.Tables = append(rs.Tables, tbl)
			}
			for _, r := range rs.FirewallRules() {
				if !strings.HasPrefix(r.Text, "[") || !strings.Contains(r.Text, " -A ") {
					t.Errorf("rule text %q", r.Text)
				}
			}
			rs.Headers()
			rs.Problems()
		}
	})
}

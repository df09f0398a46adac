package xtables

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"asym/probes/probetest"

	"golang.org/x/sys/unix"
)

func TestEncodeRefuses(t *testing.T) {
	for _, c := range []struct {
		table Table
		want  string
	}{
		{Table{Name: "filters"}, `table "filters": use filter, raw, mangle, nat or security`},
		{Table{Family: "inet", Name: "filter"}, `family "inet"`},
		{Table{Name: "filter", Chains: []Chain{{Name: "PREROUTING"}}}, "table filter has no chain PREROUTING"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Policy: "REJECT"}}}, `a policy is ACCEPT or DROP, not "REJECT"`},
		{Table{Name: "filter", Chains: []Chain{{Name: "X", Policy: "DROP"}}}, "user chain X cannot have a policy"},
		{Table{Name: "filter", Chains: []Chain{{Name: "X"}, {Name: "X"}}}, "chain X is listed twice"},
		{Table{Name: "filter", Chains: []Chain{{Name: strings.Repeat("x", 29)}}}, "must have 1 to 28 characters"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Target: Jump("NOPE")}}}}}, "chain INPUT rule 1 jumps to NOPE"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Target: Jump("FORWARD")}}}}}, "jumps to FORWARD, which is not a user chain"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Src: netip.MustParsePrefix("2001:db8::/32")}}}}}, "does not belong in an ip table"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{In: "a-very-long-name"}}}}}, "longer than 15 bytes"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Matches: []Match{{Name: "odd", Data: make([]byte, 3)}}}}}}}, "padded to 8 bytes"},
		{Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Matches: []Match{{Name: "big", Data: make([]byte, 70000)}}}}}}}, "does not fit the 16-bit next_offset"},
	} {
		_, err := c.table.Encode()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one saying %q", c.table, err, c.want)
		}
	}
}

// getTable reads a table's description and entries in the calling
// thread's namespace (creating it if the namespace lacks it).
func getTable(fd, level int, name string) (info, entries []byte, err error) {
	info = make([]byte, getInfoSize)
	copy(info, name)
	if err := getsockopt(fd, level, soGetInfo, info); err != nil {
		return nil, nil, err
	}
	size := binary.NativeEndian.Uint32(info[80:])
	req := make([]byte, 40+size) // struct ipt_get_entries
	copy(req, name)
	binary.NativeEndian.PutUint32(req[32:], size)
	const soGetEntries = 65
	if err := getsockopt(fd, level, soGetEntries, req); err != nil {
		return nil, nil, err
	}
	return info, req[40:], nil
}

// clearComefrom zeroes each entry's comefrom, which the kernel fills in
// with the hooks that reach the entry and ignores on input.
func clearComefrom(entries []byte, family string) {
	lay := layouts[family]
	for off := 0; off+lay.entrySize <= len(entries); {
		next := int(binary.NativeEndian.Uint16(entries[off+lay.target+2:]))
		clear(entries[off+lay.target+4 : off+lay.target+8])
		if next == 0 {
			return
		}
		off += next
	}
}

// TestEncodeLikeTheKernel: an empty table laid out here is byte for byte the
// table the kernel creates from its own template (xt_repldata.h), in every
// table of both families.
func TestEncodeLikeTheKernel(t *testing.T) {
	ns := probetest.NewNS(t)
	for _, fam := range []string{"ip", "ip6"} {
		for _, name := range []string{"filter", "raw", "mangle", "nat", "security"} {
			b, err := Table{Family: fam, Name: name}.Encode()
			if err != nil {
				t.Fatal(err)
			}
			probetest.Do(t, ns.Handle, func() error {
				domain, level := unix.AF_INET, unix.SOL_IP
				if fam == "ip6" {
					domain, level = unix.AF_INET6, unix.SOL_IPV6
				}
				fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				info, entries, err := getTable(fd, level, name)
				if err != nil {
					return fmt.Errorf("%s %s: %w", fam, name, err)
				}
				clearComefrom(entries, fam)
				if !bytes.Equal(entries, b.Entries) {
					t.Errorf("%s %s: the kernel's empty table differs from the encoded one", fam, name)
				}
				hooks := binary.NativeEndian.Uint32(info[32:])
				if hooks != b.ValidHooks || binary.NativeEndian.Uint32(info[76:]) != b.NumEntries {
					t.Errorf("%s %s: kernel hooks %#x entries %d, encoded %#x %d", fam, name, hooks, binary.NativeEndian.Uint32(info[76:]), b.ValidHooks, b.NumEntries)
				}
				for h := range 5 {
					if hooks&(1<<h) != 0 && (binary.NativeEndian.Uint32(info[36+4*h:]) != b.HookEntry[h] || binary.NativeEndian.Uint32(info[56+4*h:]) != b.Underflow[h]) {
						t.Errorf("%s %s: hook %d offsets differ", fam, name, h)
					}
				}
				return nil
			})
		}
	}
}

// TestInstall installs a table, replaces it with a bigger one, and finds
// each as laid out; the kernel refuses a match outside the tables it
// allows, and Install says so.
func TestInstall(t *testing.T) {
	ns := probetest.NewNS(t)
	small := Table{Name: "filter", Chains: []Chain{{Name: "FORWARD", Policy: "DROP", Rules: []Rule{
		{Matches: []Match{Conntrack(3, StateInvalid, false)}, Target: Drop},
	}}}}
	big := Table{Name: "filter", Chains: []Chain{
		{Name: "INPUT", Rules: []Rule{{Matches: []Match{State(StateInvalid)}, Target: Reject(3)}}},
		{Name: "FORWARD", Rules: []Rule{
			{In: "eth+", Out: "eth1", Proto: 6, Src: netip.MustParsePrefix("192.0.2.0/24"), Target: Goto("CHK")},
			{Matches: []Match{StateAlias(StateNew), Comment("new")}, Target: Jump("CHK")},
		}},
		{Name: "CHK", Rules: []Rule{
			{Matches: []Match{Conntrack(1, StateInvalid, false), Conntrack(2, StateInvalid, true)}},
			{Matches: []Match{Mark(1, 1)}, Target: SetMark(0, 0)},
			{Target: Return},
		}},
	}}
	for _, tb := range []Table{small, big} {
		b, err := tb.Encode()
		if err != nil {
			t.Fatal(err)
		}
		probetest.Do(t, ns.Handle, func() error {
			if err := tb.Install(); err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			_, entries, err := getTable(fd, unix.SOL_IP, "filter")
			if err != nil {
				return err
			}
			clearComefrom(entries, "ip")
			if !bytes.Equal(entries, b.Entries) {
				t.Errorf("the kernel holds another table than the one installed (%d bytes, installed %d)", len(entries), len(b.Entries))
			}
			return nil
		})
	}

	wrong := Table{Name: "filter", Chains: []Chain{{Name: "INPUT", Rules: []Rule{{Matches: []Match{RPFilter(RPFilterInvert)}, Target: Drop}}}}}
	probetest.Do(t, ns.Handle, func() error {
		err := wrong.Install()
		if !errors.Is(err, unix.EINVAL) || !strings.Contains(err.Error(), "install ip table filter") {
			t.Errorf("rpfilter in filter: error %v, want EINVAL", err)
		}
		return nil
	})
}

// Package xtables reads iptables-legacy (x_tables) rules through the kernel:
// the tables a namespace lists in /proc/thread-self/net/ip_tables_names and
// ip6_tables_names, each fetched with getsockopt(IPT_SO_GET_INFO) and
// getsockopt(IPT_SO_GET_ENTRIES) on a raw socket inside the namespace, as
// iptables-legacy-save does, with no iptables binary.
//
// It only reads, and it never names a table the namespace does not list:
// asking for a missing table makes the kernel create it from its template
// (x_tables.c xt_find_table_lock and xt_request_find_table_lock), which is
// the side effect of `iptables-legacy -L` a read-only tool must not have.
package xtables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// InNS runs fn on a thread inside the namespace to read, and returns fn's
// error, or the context's when it ends first. probes.Target.InNS is one.
type InNS func(ctx context.Context, fn func() error) error

// MaxTableSize bounds the entries of one table: the kernel says their size
// in IPT_SO_GET_INFO, and a table larger than this is refused, not read.
// iptables-legacy rules take a few hundred bytes each: 64 MiB is over
// 100,000 rules.
const MaxTableSize = 64 << 20

// getEntriesTries bounds the reads of a table that keeps changing between
// GET_INFO and GET_ENTRIES (the kernel answers EAGAIN when the size moved).
const getEntriesTries = 3

// Ruleset is every iptables-legacy table of a namespace, IPv4 first, each
// family's tables by name.
type Ruleset struct {
	Tables []Table
}

// Read reads all iptables-legacy tables of the namespace inNS enters. A
// namespace without any gives an empty Ruleset. A table that cannot be read
// has its Err set and the others are still read; the error is for what
// stops everything: no privileges (it says "unavailable: needs root" and
// wraps EPERM or EACCES), the context, or the namespace.
func Read(ctx context.Context, inNS InNS) (*Ruleset, error) {
	if !layoutSupported() {
		return nil, errors.New("unavailable: asym reads iptables-legacy tables in the 64-bit layout, and this is a 32-bit build: use a 64-bit asym")
	}
	// InNS returns when ctx ends while fn may still run: fn hands its
	// result over through the channel, never through a shared variable.
	got := make(chan *Ruleset, 1)
	err := inNS(ctx, func() error {
		rs, err := readHere(ctx)
		got <- rs
		return err
	})
	if err != nil {
		return nil, err
	}
	select {
	case rs := <-got:
		return rs, nil
	default:
		return nil, errors.New("read the iptables-legacy tables: the namespace runner returned without running the reader")
	}
}

// readHere reads the tables of the calling thread's namespace.
func readHere(ctx context.Context) (*Ruleset, error) {
	rs := &Ruleset{}
	for _, fam := range families {
		names, err := tableNames(fam)
		if err != nil {
			return rs, err
		}
		if len(names) == 0 {
			continue
		}
		tables, err := readFamily(ctx, fam, names)
		rs.Tables = append(rs.Tables, tables...)
		if err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// tableNames lists the tables of a family that exist in this namespace,
// sorted. The file is missing when the kernel has no ip_tables (or
// ip6_tables) at all: then there are none.
func tableNames(fam family) ([]string, error) {
	path := "/proc/thread-self/net/" + fam.namesFile
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case errors.Is(err, os.ErrPermission):
		return nil, needsRoot("read "+path, err)
	case err != nil:
		return nil, fmt.Errorf("read the %s table list %s: %w", fam.tool, path, err)
	}
	names := strings.Fields(string(b))
	slices.Sort(names)
	return slices.Compact(names), nil
}

// needsRoot wraps a permission error in the sentence asym uses for it.
func needsRoot(op string, err error) error {
	return fmt.Errorf("unavailable: needs root: reading iptables-legacy tables takes CAP_NET_ADMIN in the namespace (%s: %w)", op, err)
}

// readFamily reads the named tables of one family through one raw socket.
func readFamily(ctx context.Context, fam family, names []string) ([]Table, error) {
	fd, err := unix.Socket(fam.domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return nil, needsRoot("open a raw socket", err)
		}
		return nil, fmt.Errorf("open a raw socket to read the %s tables: %w", fam.tool, err)
	}
	defer unix.Close(fd)
	var out []Table
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		t, err := readTable(fd, fam, name)
		if err != nil && (errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)) {
			return out, needsRoot(fam.tool+" table "+name, err)
		}
		if err != nil {
			t = Table{Family: fam.name, Name: name, Err: err}
		}
		out = append(out, t)
	}
	return out, nil
}

// readTable fetches and decodes one table the namespace lists.
func readTable(fd int, fam family, name string) (Table, error) {
	if len(name) >= tableNameLen {
		return Table{}, fmt.Errorf("the table name %q is longer than x_tables allows (%d bytes)", name, tableNameLen-1)
	}
	for try := 1; ; try++ {
		ti, err := getInfo(fd, fam, name)
		if err != nil {
			return Table{}, err
		}
		if err := checkSize(fam, ti); err != nil {
			return Table{}, err
		}
		buf, err := getEntries(fd, fam, name, ti.size)
		if errors.Is(err, unix.EAGAIN) && try < getEntriesTries {
			continue // the table was replaced between the two calls
		}
		if errors.Is(err, unix.EAGAIN) {
			return Table{}, fmt.Errorf("%s table %s changed under every one of %d reads: something rewrites it constantly; try again", fam.tool, name, try)
		}
		if err != nil {
			return Table{}, err
		}
		return decodeTable(fam, ti, buf)
	}
}

// checkSize refuses a table larger than MaxTableSize before its entries
// are fetched.
func checkSize(fam family, ti tableInfo) error {
	if ti.size <= MaxTableSize {
		return nil
	}
	return fmt.Errorf("%s table %s holds %d MiB of rules, more than the %d MiB asym reads: look at it with %s-save -t %s",
		fam.tool, ti.name, ti.size>>20, MaxTableSize>>20, fam.tool, ti.name)
}

// decodeTable decodes a table's entries; ti is what GET_INFO said of them.
func decodeTable(fam family, ti tableInfo, buf []byte) (Table, error) {
	entries, err := decodeEntries(fam, buf)
	if err != nil {
		return Table{}, fmt.Errorf("%s table %s does not decode in the 64-bit x_tables layout asym knows: %w", fam.tool, ti.name, err)
	}
	if uint32(len(entries)) != ti.numEntries {
		return Table{}, fmt.Errorf("%s table %s has %d entries where the kernel announced %d", fam.tool, ti.name, len(entries), ti.numEntries)
	}
	return buildTable(fam, ti, entries), nil
}

// getInfo asks for a table's size and chain offsets (IPT_SO_GET_INFO).
func getInfo(fd int, fam family, name string) (tableInfo, error) {
	buf := make([]byte, getInfoSize)
	copy(buf, name)
	if err := getsockopt(fd, fam.level, soGetInfo, buf); err != nil {
		return tableInfo{}, fmt.Errorf("ask the kernel about %s table %s (%s_SO_GET_INFO): %w", fam.tool, name, sockoptPrefix(fam), err)
	}
	ti, err := decodeInfo(buf)
	if err == nil && ti.name != name {
		err = fmt.Errorf("the kernel answered for table %q when asked for %q", ti.name, name)
	}
	return ti, err
}

// getEntries fetches a table's entries with their counters
// (IPT_SO_GET_ENTRIES); size must be what GET_INFO said, or the kernel
// answers EAGAIN.
func getEntries(fd int, fam family, name string, size uint32) ([]byte, error) {
	buf := make([]byte, getEntriesHeader+int(size))
	copy(buf, name)
	native.PutUint32(buf[tableNameLen:], size)
	if err := getsockopt(fd, fam.level, soGetEntries, buf); err != nil {
		return nil, fmt.Errorf("read the rules of %s table %s (%s_SO_GET_ENTRIES): %w", fam.tool, name, sockoptPrefix(fam), err)
	}
	return buf[getEntriesHeader:], nil
}

func sockoptPrefix(fam family) string {
	if fam.name == "ip6" {
		return "IP6T"
	}
	return "IPT"
}

// getsockopt with a buffer the kernel both reads and fills: x/sys/unix
// has no variant for that. The kernel wants the length to be exact.
func getsockopt(fd, level, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

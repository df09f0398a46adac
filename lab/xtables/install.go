package xtables

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	soSetReplace = 64 // IPT_SO_SET_REPLACE, IP6T_SO_SET_REPLACE
	soGetInfo    = 64 // IPT_SO_GET_INFO
	getInfoSize  = 84 // struct ipt_getinfo
	// struct ipt_replace: char name[32], u32 valid_hooks, num_entries,
	// size, hook_entry[5], underflow[5], num_counters, then at 88 the
	// user pointer where the kernel puts the old table's counters; the
	// entries follow at 96.
	replaceHeader  = 96
	countersPtrAt  = 88
	counterSize    = 16 // struct xt_counters: u64 packets, u64 bytes
	installRetries = 3
)

// Install replaces the table in the network namespace of the calling
// thread, which must be locked to a thread inside it (probetest.Do, lab
// Env.Do). The table is created first if the namespace does not have it
// yet, as iptables-legacy-restore does.
func (t Table) Install() error {
	b, err := t.Encode()
	if err != nil {
		return err
	}
	domain, level := unix.AF_INET, unix.SOL_IP
	if b.Family == "ip6" {
		domain, level = unix.AF_INET6, unix.SOL_IPV6
	}
	fd, err := unix.Socket(domain, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("open a raw socket to install %s table %s: %w", b.Family, b.Name, err)
	}
	defer unix.Close(fd)
	for try := 1; ; try++ {
		err := b.replace(fd, level)
		if errors.Is(err, unix.EAGAIN) && try < installRetries {
			continue // the table changed between GET_INFO and the replace
		}
		return err
	}
}

// replace hands the table to the kernel. The kernel wants the number of
// entries the table has now, and room to copy their counters out
// (ip_tables.c __do_replace, xt_replace_table: EAGAIN when the number is
// stale).
func (b Blob) replace(fd, level int) error {
	info := make([]byte, getInfoSize)
	copy(info, b.Name)
	if err := getsockopt(fd, level, soGetInfo, info); err != nil {
		return fmt.Errorf("look up %s table %s: %w", b.Family, b.Name, err)
	}
	oldEntries := binary.NativeEndian.Uint32(info[76:])
	// The counters go to memory outside the Go heap: the kernel writes to
	// it through a pointer inside the request, which no Go rule covers.
	counters, err := unix.Mmap(-1, 0, int(oldEntries)*counterSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return fmt.Errorf("map room for %d counters: %w", oldEntries, err)
	}
	defer unix.Munmap(counters)

	req := make([]byte, replaceHeader+len(b.Entries))
	ne := binary.NativeEndian
	copy(req, b.Name)
	ne.PutUint32(req[32:], b.ValidHooks)
	ne.PutUint32(req[36:], b.NumEntries)
	ne.PutUint32(req[40:], uint32(len(b.Entries)))
	for h := range 5 {
		ne.PutUint32(req[44+4*h:], b.HookEntry[h])
		ne.PutUint32(req[64+4*h:], b.Underflow[h])
	}
	ne.PutUint32(req[84:], oldEntries)
	ne.PutUint64(req[countersPtrAt:], uint64(uintptr(unsafe.Pointer(&counters[0]))))
	copy(req[replaceHeader:], b.Entries)
	if err := setsockopt(fd, level, soSetReplace, req); err != nil {
		return fmt.Errorf("install %s table %s (SO_SET_REPLACE; the kernel log says which check failed): %w", b.Family, b.Name, err)
	}
	return nil
}

// getsockopt and setsockopt with a buffer: x/sys/unix has no form for a
// buffer the kernel reads and fills.
func getsockopt(fd, level, opt int, buf []byte) error {
	n := uint32(len(buf))
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return e
	}
	return nil
}

func setsockopt(fd, level, opt int, buf []byte) error {
	_, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0)
	if e != 0 {
		return e
	}
	return nil
}

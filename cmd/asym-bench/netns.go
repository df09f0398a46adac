package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// nsPrefix starts the name of every namespace this program creates; it
// removes only those.
const nsPrefix = "asym-bench-"

// The lab's server host (scenario two-nics-strict of asym lab): two NICs on
// one subnet, the default route by eth0, strict rp_filter, and a firewall
// that drops conntrack INVALID packets. The flows below arrive on eth1
// (which holds their destination) and their replies leave by eth0.
const (
	gw4, eth0v4, eth1v4 = "198.51.100.1", "198.51.100.10", "198.51.100.11"
	gw6, eth0v6, eth1v6 = "2001:db8:100::1", "2001:db8:100::10", "2001:db8:100::11"
	flow4               = "tcp 203.0.113.10:40000 198.51.100.11:8080"
	flow6               = "tcp [2001:db8:203::10]:40000 [2001:db8:100::11]:8080"
)

// benchHost is a built host namespace and the fabric namespace holding its
// gateway.
type benchHost struct {
	name, fab string
	ns, fabNS netns.NsHandle
	nl        *netlink.Handle // inside the host
}

// newHost builds the host; on error it removes what it made.
func newHost() (h *benchHost, err error) {
	b := make([]byte, 4)
	rand.Read(b)
	tag := nsPrefix + hex.EncodeToString(b)
	h = &benchHost{name: tag + "-host", fab: tag + "-fab", ns: -1, fabNS: -1}
	defer func() {
		if err != nil {
			h.close()
			h = nil
		}
	}()
	if h.ns, err = newNamed(h.name); err != nil {
		return h, err
	}
	if h.fabNS, err = newNamed(h.fab); err != nil {
		return h, err
	}
	// Quiet, deterministic IPv6 (no DAD, no router solicitations), strict
	// reverse-path filter on the host as in two-nics-strict. Set before
	// the links exist, so that they inherit "default".
	for ns, kvs := range map[netns.NsHandle][][2]string{
		h.ns: {{"net/ipv4/conf/all/rp_filter", "1"}, {"net/ipv4/conf/default/rp_filter", "0"},
			{"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"},
			{"net/ipv6/conf/all/accept_ra", "0"}, {"net/ipv6/conf/default/accept_ra", "0"},
			{"net/ipv6/conf/default/router_solicitations", "0"}},
		h.fabNS: {{"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"}},
	} {
		if err := sysctls(ns, kvs); err != nil {
			return h, err
		}
	}
	if h.nl, err = netlink.NewHandleAt(h.ns); err != nil {
		return h, fmt.Errorf("open netlink in %s: %w", h.name, err)
	}
	fnl, err := netlink.NewHandleAt(h.fabNS)
	if err != nil {
		return h, fmt.Errorf("open netlink in %s: %w", h.fab, err)
	}
	defer fnl.Close()
	for _, nh := range []struct {
		h    *netlink.Handle
		name string
	}{{h.nl, "lo"}, {fnl, "lo"}} {
		if err := linkUp(nh.h, nh.name); err != nil {
			return h, err
		}
	}
	if err := fnl.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}}); err != nil {
		return h, fmt.Errorf("add the fabric's bridge: %w", err)
	}
	if err := addrs(fnl, "br0", gw4+"/24", gw6+"/64"); err != nil {
		return h, err
	}
	br, err := fnl.LinkByName("br0")
	if err != nil {
		return h, err
	}
	for i, a := range [][2]string{{eth0v4, eth0v6}, {eth1v4, eth1v6}} {
		name, peer := fmt.Sprintf("eth%d", i), fmt.Sprintf("p%d", i)
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: peer, PeerNamespace: netlink.NsFd(int(h.fabNS))}
		if err := h.nl.LinkAdd(veth); err != nil {
			return h, fmt.Errorf("add veth %s: %w", name, err)
		}
		p, err := fnl.LinkByName(peer)
		if err == nil {
			err = fnl.LinkSetMasterByIndex(p, br.Attrs().Index)
		}
		if err == nil {
			err = fnl.LinkSetUp(p)
		}
		if err != nil {
			return h, fmt.Errorf("attach %s to the fabric's bridge: %w", peer, err)
		}
		if err := addrs(h.nl, name, a[0]+"/24", a[1]+"/64"); err != nil {
			return h, err
		}
	}
	eth0, err := h.nl.LinkByName("eth0")
	if err != nil {
		return h, err
	}
	for _, g := range []string{gw4, gw6} {
		gw := netip.MustParseAddr(g)
		r := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw.AsSlice()}
		if gw.Is6() {
			r.Dst = ipNet(netip.PrefixFrom(netip.IPv6Unspecified(), 0))
		}
		if err := h.nl.RouteAdd(r); err != nil {
			return h, fmt.Errorf("add the default route via %s: %w", g, err)
		}
	}
	if err := trackConntrack(h.ns); err != nil {
		return h, fmt.Errorf("install the firewall in %s: %w", h.name, err)
	}
	return h, nil
}

// close removes both namespaces; the kernel then frees their links, routes,
// rules, ruleset and conntrack entries.
func (h *benchHost) close() error {
	if h == nil {
		return nil
	}
	if h.nl != nil {
		h.nl.Close()
	}
	var errs []error
	for _, n := range []struct {
		name string
		h    netns.NsHandle
	}{{h.name, h.ns}, {h.fab, h.fabNS}} {
		if n.h >= 0 {
			n.h.Close()
		}
		if err := netns.DeleteNamed(n.name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove namespace %s: %w", n.name, err))
		}
	}
	return errors.Join(errs...)
}

// newNamed creates a named namespace on a thread that is then discarded:
// netns.NewNamed also moves the calling thread into it.
func newNamed(name string) (netns.NsHandle, error) {
	type res struct {
		h   netns.NsHandle
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		h, err := netns.NewNamed(name)
		c <- res{h, err}
	}()
	r := <-c
	if r.err != nil {
		return -1, fmt.Errorf("create namespace %s: %w", name, r.err)
	}
	return r.h, nil
}

// inNS runs fn on a discarded thread inside ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see newNamed
		if err := unix.Setns(int(ns), unix.CLONE_NEWNET); err != nil {
			c <- fmt.Errorf("enter a namespace: %w", err)
			return
		}
		c <- fn()
	}()
	return <-c
}

func sysctls(ns netns.NsHandle, kvs [][2]string) error {
	return inNS(ns, func() error {
		for _, kv := range kvs {
			if err := os.WriteFile("/proc/sys/"+kv[0], []byte(kv[1]), 0); err != nil && !(errors.Is(err, os.ErrNotExist) && strings.HasPrefix(kv[0], "net/ipv6/")) {
				return fmt.Errorf("set %s: %w", kv[0], err)
			}
		}
		return nil
	})
}

func linkUp(h *netlink.Handle, name string) error {
	l, err := h.LinkByName(name)
	if err == nil {
		err = h.LinkSetUp(l)
	}
	if err != nil {
		return fmt.Errorf("bring up %s: %w", name, err)
	}
	return nil
}

// addrs addresses a link without duplicate address detection (an IPv6
// address is usable at once) and brings it up.
func addrs(h *netlink.Handle, name string, prefixes ...string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	for _, p := range prefixes {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNet(netip.MustParsePrefix(p)), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("address %s on %s: %w", p, name, err)
		}
	}
	return linkUp(h, name)
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// trackConntrack installs `table inet filter { chain input { type filter
// hook input priority 0; ct state invalid counter drop } }`: the lab
// firewall's rule, and what makes a namespace track connections at all.
func trackConntrack(ns netns.NsHandle) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	if err != nil {
		return err
	}
	tbl := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "filter"})
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{Name: "input", Table: tbl, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	c.AddRule(&nftables.Rule{Table: tbl, Chain: ch, Exprs: []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID), Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
	return c.Flush()
}

// removeLeftovers deletes namespaces named asym-bench-* (an earlier run
// killed before it could clean up). It touches no other namespace.
func removeLeftovers() error {
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list named namespaces: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), nsPrefix) {
			continue
		}
		progress("removing namespace %s", e.Name())
		if err := netns.DeleteNamed(e.Name()); err != nil {
			errs = append(errs, fmt.Errorf("remove namespace %s: %w", e.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// moduleRoot finds the asym module this program belongs to, from the
// working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module asym\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run asym-bench from the asym repository (no go.mod of module asym above %s)", dir)
		}
	}
}

// goTool finds the go command: under sudo, PATH may not have it, but the
// toolchain that built this program does.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func buildAsym(ctx context.Context, cfg *config) (string, error) {
	bin := filepath.Join(cfg.tmp, "asym")
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", bin, "./cmd/asym")
	cmd.Dir = cfg.root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build asym: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

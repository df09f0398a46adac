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

	"asym/lab/namespace"

	"github.com/vishvananda/netlink"
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
	host, fabric namespace.NS
	nl           *netlink.Handle // inside the host
}

// hostSysctls: quiet, deterministic IPv6 (no DAD, no router solicitations)
// and strict reverse-path filter on the host as in two-nics-strict, written
// before the links exist so that they inherit "default". A kernel without
// IPv6 has no IPv6 noise to quiet.
var (
	hostSysctls = []namespace.Sysctl{
		{Path: "net/ipv4/conf/all/rp_filter", Value: "1"}, {Path: "net/ipv4/conf/default/rp_filter", Value: "0"},
		{Path: "net/ipv6/conf/all/accept_dad", Value: "0", Optional: true}, {Path: "net/ipv6/conf/default/accept_dad", Value: "0", Optional: true},
		{Path: "net/ipv6/conf/all/accept_ra", Value: "0", Optional: true}, {Path: "net/ipv6/conf/default/accept_ra", Value: "0", Optional: true},
		{Path: "net/ipv6/conf/default/router_solicitations", Value: "0", Optional: true},
	}
	fabricSysctls = []namespace.Sysctl{
		{Path: "net/ipv6/conf/all/accept_dad", Value: "0", Optional: true}, {Path: "net/ipv6/conf/default/accept_dad", Value: "0", Optional: true},
	}
)

// newHost builds the host; on error it removes what it made.
func newHost() (h *benchHost, err error) {
	b := make([]byte, 4)
	rand.Read(b)
	tag := nsPrefix + hex.EncodeToString(b)
	h = &benchHost{}
	defer func() {
		if err != nil {
			h.close()
			h = nil
		}
	}()
	if h.host, err = namespace.Create(tag+"-host", hostSysctls...); err != nil {
		return h, err
	}
	if h.fabric, err = namespace.Create(tag+"-fab", fabricSysctls...); err != nil {
		return h, err
	}
	if h.nl, err = netlink.NewHandleAt(h.host.Handle); err != nil {
		return h, fmt.Errorf("open netlink in %s: %w", h.host.Name, err)
	}
	fnl, err := netlink.NewHandleAt(h.fabric.Handle)
	if err != nil {
		return h, fmt.Errorf("open netlink in %s: %w", h.fabric.Name, err)
	}
	defer fnl.Close()
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
		if err := namespace.Veth(h.host, name, h.fabric, peer); err != nil {
			return h, err
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
	if err := namespace.TrackConntrack(h.host); err != nil {
		return h, fmt.Errorf("install the firewall: %w", err)
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
	return errors.Join(h.host.Remove(), h.fabric.Remove())
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

// removeLeftovers deletes namespaces named asym-bench-* (an earlier run
// killed before it could clean up). It touches no other namespace.
func removeLeftovers() error {
	names, err := namespace.List(nsPrefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		progress("removing namespace %s", name)
		errs = append(errs, namespace.Remove(name))
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

package probes

import (
	"context"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ProbeHost reads who and where we are: host name, kernel, privileges,
// this host's role, and the interfaces in play with their addresses of the
// flow's family. iif is where the person says the request arrives ("" when
// not given).
//
// The interfaces in play are the ones that hold the flow's addresses, the
// ones the kernel routes either end of the flow by, iif, and every
// interface with an address in one of their subnets (two NICs on one
// subnet matter even when the flow uses one). They are looked up by index,
// one link each; a host with thousands of interfaces costs the one address
// dump of the family (its addresses say which interfaces share a subnet),
// and the others are only counted.
func ProbeHost(ctx context.Context, t *Target, f flow.Flow, iif string) *evidence.HostView {
	r, start := evidence.Begin("host", "Host, interfaces and role")
	h := &evidence.HostView{Report: r, Target: t.String()}
	defer h.Finish(start)
	h.Hostname, _ = os.Hostname()
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		h.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	h.Privileged, h.Missing = privileges()
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	h.BTF = err == nil
	family := netlink.FAMILY_V4
	if f.Is6() {
		family = netlink.FAMILY_V6
	}
	h.Command = t.IPCmd("-br", "addr", "show")
	var addrs []netlink.Addr
	if err := t.withTimeout(ctx, func() (err error) { addrs, err = t.nl.AddrList(nil, family); return }); err != nil {
		h.Fail(err)
		return h
	}
	byIdx := map[int][]netip.Prefix{}
	for _, ad := range addrs {
		if p := prefixOf(ad.IPNet); p.IsValid() {
			byIdx[ad.LinkIndex] = append(byIdx[ad.LinkIndex], p)
		}
	}
	inPlay := interfacesInPlay(ctx, t, f, iif, byIdx)
	for idx := range inPlay {
		h.Ifaces = append(h.Ifaces, t.iface(idx, byIdx[idx]))
	}
	h.OtherIfaces = len(byIdx) - len(inPlay)
	if lo := t.IfIndex("lo"); lo != 0 && len(byIdx[lo]) > 0 && !inPlay[lo] {
		h.OtherIfaces-- // lo is on every host: counting it says nothing
	}
	sort.Slice(h.Ifaces, func(i, j int) bool { return h.Ifaces[i].Index < h.Ifaces[j].Index })
	for _, ifc := range h.Ifaces {
		state := "DOWN"
		if ifc.Up {
			state = "UP"
		}
		words := []string{padRight(ifc.Name, 16), padRight(state, 14)}
		for _, p := range ifc.Addrs {
			words = append(words, p.String())
		}
		h.Add("%s", strings.Join(words, " "))
	}
	if h.OtherIfaces > 0 {
		h.Add("# %d other interface(s) with addresses are not on the flow's way and share no subnet with it", h.OtherIfaces)
	}
	switch {
	case h.Owner(f.Src.Addr()) != nil:
		h.Role, h.Local, h.LocalIface = evidence.RoleClient, f.Src.Addr(), h.Owner(f.Src.Addr()).Name
	case h.Owner(f.Dst.Addr()) != nil:
		h.Role, h.Local, h.LocalIface = evidence.RoleServer, f.Dst.Addr(), h.Owner(f.Dst.Addr()).Name
	default:
		h.Role = middleRole(ctx, t, f)
	}
	if to, entry, ok := translatedAway(ctx, t, f, h); ok {
		h.Role, h.Local, h.LocalIface, h.Translated = evidence.RoleMiddle, netip.Addr{}, "", &to
		h.Add("# %s is this host's, but it translates the flow to %s and forwards it (conntrack: %s)", f.Dst.Addr(), to.Dst, entry)
	}
	h.Add("# role: %s", h.Role.Describe())
	if h.Local.IsValid() {
		h.Add("# %s is on %s", h.Local, h.LocalIface)
	}
	if !h.Privileged {
		h.Add("# running without %s: some probes will be unavailable", h.Missing)
	}
	return h
}

// middleRole tells a host that holds neither address of the flow and
// forwards it (a router or firewall on its way) from one that does not
// forward and so is not on the flow's path at all. When the forwarding
// sysctl cannot be read, the host is taken to be in the middle: the
// probes then say what they see.
func middleRole(ctx context.Context, t *Target, f flow.Flow) evidence.Role {
	name := "net/ipv4/ip_forward"
	if f.Is6() {
		name = "net/ipv6/conf/all/forwarding"
	}
	got, err := t.ReadProc(ctx, "sys/"+name)
	if v, ok := got["sys/"+name]; err == nil && ok && strings.TrimSpace(v) == "0" {
		return evidence.RoleOffPath
	}
	return evidence.RoleMiddle
}

// interfacesInPlay picks, by index, the interfaces that concern the flow
// from the addresses of the host's interfaces.
func interfacesInPlay(ctx context.Context, t *Target, f flow.Flow, iif string, byIdx map[int][]netip.Prefix) map[int]bool {
	in, holds := map[int]bool{}, map[int]bool{}
	for idx, ps := range byIdx {
		for _, p := range ps {
			if a := p.Addr(); a == f.Src.Addr() || a == f.Dst.Addr() {
				in[idx], holds[idx] = true, true
			}
		}
	}
	for _, a := range []netip.Addr{f.Src.Addr(), f.Dst.Addr()} {
		if d, err := t.RouteGet(ctx, evidence.RouteQuery{Dst: a}); err == nil && !d.Failed() && d.Dev != "" && d.Dev != "lo" {
			if idx := t.IfIndex(d.Dev); idx != 0 {
				in[idx] = true
			}
		}
	}
	if idx := t.IfIndex(iif); idx != 0 {
		in[idx] = true
	}
	// Their subnets, and the subnets the flow's ends are on: every
	// interface with an address there.
	var subnets []netip.Prefix
	for idx := range in {
		for _, p := range byIdx[idx] {
			subnets = append(subnets, p.Masked())
		}
	}
	for idx, ps := range byIdx {
		for _, p := range ps {
			if p.Bits() < p.Addr().BitLen() && (p.Masked().Contains(f.Src.Addr()) || p.Masked().Contains(f.Dst.Addr())) {
				in[idx] = true
			}
			for _, s := range subnets {
				if s.Bits() < s.Addr().BitLen() && s == p.Masked() {
					in[idx] = true
				}
			}
		}
	}
	// lo is in play only when it holds one of the flow's addresses (a
	// loopback flow): a route or a subnet by it says nothing of the flow.
	if lo := t.IfIndex("lo"); lo != 0 && !holds[lo] {
		delete(in, lo)
	}
	return in
}

// iface reads one interface by index, with the addresses the dump gave it.
func (t *Target) iface(idx int, addrs []netip.Prefix) evidence.Iface {
	ifc := evidence.Iface{Index: idx, Name: t.ifName(idx), Addrs: addrs}
	if l, err := t.nl.LinkByIndex(idx); err == nil {
		at := l.Attrs()
		ifc.MTU, ifc.Up, ifc.Kind = at.MTU, at.Flags&unix.IFF_UP != 0 && at.OperState != netlink.OperDown, l.Type()
		if len(at.HardwareAddr) > 0 {
			ifc.MAC = at.HardwareAddr.String()
		}
	}
	return ifc
}

// privileges reports whether we hold CAP_NET_ADMIN (needed for conntrack,
// nftables and entering namespaces), from /proc/self/status.
func privileges() (bool, string) {
	caps, ok := effectiveCaps()
	if !ok {
		return os.Geteuid() == 0, "root"
	}
	var missing []string
	if caps&(1<<unix.CAP_NET_ADMIN) == 0 {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	if caps&(1<<unix.CAP_SYS_ADMIN) == 0 {
		missing = append(missing, "CAP_SYS_ADMIN (to enter namespaces)")
	}
	return len(missing) == 0, strings.Join(missing, ", ")
}

// effectiveCaps reads this process's effective capabilities (CapEff in
// /proc/self/status).
func effectiveCaps() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return caps, err == nil
		}
	}
	return 0, false
}

// canEnterNamespaces says whether setns(2) into another network namespace
// may work: it takes CAP_SYS_ADMIN.
func canEnterNamespaces() bool {
	caps, ok := effectiveCaps()
	if !ok {
		return os.Geteuid() == 0
	}
	return caps&(1<<unix.CAP_SYS_ADMIN) != 0
}

func padRight(s string, n int) string {
	if len(s) >= n {
		return s
	}
	return s + strings.Repeat(" ", n-len(s))
}

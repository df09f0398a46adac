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

// ProbeHost reads who and where we are: host name, kernel, privileges, the
// target's interfaces and addresses of the flow's family, and this host's role.
func ProbeHost(ctx context.Context, t *Target, f flow.Flow) *evidence.HostView {
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
	byIdx := map[int]*evidence.Iface{}
	for _, ad := range addrs {
		ifc := byIdx[ad.LinkIndex]
		if ifc == nil {
			ifc = &evidence.Iface{Index: ad.LinkIndex, Name: t.ifName(ad.LinkIndex)}
			if l, err := t.nl.LinkByIndex(ad.LinkIndex); err == nil {
				at := l.Attrs()
				ifc.MTU, ifc.Up, ifc.Kind = at.MTU, at.Flags&unix.IFF_UP != 0 && at.OperState != netlink.OperDown, l.Type()
				if len(at.HardwareAddr) > 0 {
					ifc.MAC = at.HardwareAddr.String()
				}
			}
			byIdx[ad.LinkIndex] = ifc
		}
		if p := prefixOf(ad.IPNet); p.IsValid() {
			ifc.Addrs = append(ifc.Addrs, p)
		}
	}
	for _, ifc := range byIdx {
		h.Ifaces = append(h.Ifaces, *ifc)
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

package probes

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"asym/evidence"
	"asym/flow"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// maxTableRoutes caps what asym reads of one policy table: policy tables are
// small on hosts, but a rule may point at a full BGP table.
const maxTableRoutes = 256

// ProbeTables reads the given policy tables with kernel-side filtering
// (strict checking makes the kernel walk and send only that table). The
// main, local and default tables are never dumped: on a border router main
// holds a million routes; the route decisions show what main says for the flow.
func ProbeTables(ctx context.Context, t *Target, f flow.Flow, ids []int, why map[int]string) *evidence.TablesView {
	r, start := evidence.Begin("tables", "Policy tables in play")
	v := &evidence.TablesView{Report: r}
	defer v.Finish(start)
	family := netlink.FAMILY_V4
	if f.Is6() {
		family = netlink.FAMILY_V6
	}
	names := tableNames()
	var cmds []string
	for _, id := range ids {
		if id == unix.RT_TABLE_MAIN || id == unix.RT_TABLE_LOCAL || id == unix.RT_TABLE_UNSPEC {
			continue
		}
		tb := evidence.Table{ID: id, Name: names[id], Why: why[id]}
		words := []string{"route", "show", "table", strconv.Itoa(id)}
		if f.Is6() {
			words = append([]string{"-6"}, words...)
		}
		cmds = append(cmds, t.IPCmd(words...))
		err := t.withTimeout(ctx, func() error {
			return t.strict.RouteListFilteredIter(family, &netlink.Route{Table: id}, netlink.RT_FILTER_TABLE, func(nr netlink.Route) bool {
				t.gotRoutes.Add(1)
				if len(tb.Routes) >= maxTableRoutes {
					tb.Truncated = true
					return false
				}
				tb.Routes = append(tb.Routes, t.convertRoute(nr, f.Is6()))
				return true
			})
		})
		if err != nil && !isDumpInterrupted(err) && !errors.Is(err, unix.ENOENT) {
			v.Fail(err)
			return v
		}
		head := "# table " + strconv.Itoa(id)
		if tb.Name != "" {
			head += " (" + tb.Name + ")"
		}
		if tb.Why != "" {
			head += ": " + tb.Why
		}
		v.Add("%s", head)
		if len(tb.Routes) == 0 {
			v.Add("  (empty: no routes in this table)")
		}
		for _, rt := range tb.Routes {
			v.Add("  %s", rt.Text)
		}
		if tb.Truncated {
			v.Add("  … more than %d routes; the rest was not read", maxTableRoutes)
		}
		v.Tables = append(v.Tables, tb)
	}
	v.Command = strings.Join(cmds, "; ")
	if len(v.Tables) == 0 {
		v.Add("no policy table other than main is in play for this flow")
	}
	return v
}

// A table with no routes does not exist in the kernel, and with strict
// checking a dump of it answers ENOENT: that is an empty table.

func isDumpInterrupted(err error) bool {
	return err != nil && err.Error() == netlink.ErrDumpInterrupted.Error()
}

// withTimeout runs fn and gives up waiting when ctx ends (the socket has its
// own receive timeout, so fn itself ends soon after).
func (t *Target) withTimeout(ctx context.Context, fn func() error) error {
	c := make(chan error, 1)
	go func() { c <- fn() }()
	select {
	case err := <-c:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var scopeNames = map[netlink.Scope]string{netlink.SCOPE_UNIVERSE: "global", netlink.SCOPE_SITE: "site", netlink.SCOPE_LINK: "link", netlink.SCOPE_HOST: "host", netlink.SCOPE_NOWHERE: "nowhere"}

var protoNames = map[netlink.RouteProtocol]string{
	unix.RTPROT_KERNEL: "kernel", unix.RTPROT_BOOT: "boot", unix.RTPROT_STATIC: "static", unix.RTPROT_DHCP: "dhcp",
	unix.RTPROT_RA: "ra", unix.RTPROT_BIRD: "bird", 186: "bgp", 188: "ospf", 189: "rip", 196: "openr", unix.RTPROT_ZEBRA: "zebra",
}

func (t *Target) convertRoute(nr netlink.Route, v6 bool) evidence.Route {
	r := evidence.Route{Dst: prefixOf(nr.Dst), Type: routeTypes[uint8(nr.Type)], Dev: t.ifName(nr.LinkIndex), Metric: nr.Priority}
	if !r.Dst.IsValid() {
		if v6 {
			r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		} else {
			r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		}
	}
	if r.Type == "" {
		r.Type = "unicast"
	}
	if a, ok := netip.AddrFromSlice(nr.Gw); ok {
		r.Gateway = a.Unmap()
	}
	if a, ok := netip.AddrFromSlice(nr.Src); ok {
		r.PrefSrc = a.Unmap()
	}
	r.Scope = scopeNames[nr.Scope]
	r.Protocol = protoNames[nr.Protocol]
	if r.Protocol == "" && nr.Protocol != 0 {
		r.Protocol = strconv.Itoa(int(nr.Protocol))
	}
	for _, nh := range nr.MultiPath {
		h := evidence.Nexthop{Dev: t.ifName(nh.LinkIndex), Weight: nh.Hops + 1}
		if a, ok := netip.AddrFromSlice(nh.Gw); ok {
			h.Gateway = a.Unmap()
		}
		r.Nexthops = append(r.Nexthops, h)
	}
	r.Text = r.Render()
	return r
}

// tableNames reads the names people gave their tables (rt_tables), so the
// notes say "table isp2" where the host says so.
func tableNames() map[int]string {
	names := map[int]string{}
	files := []string{"/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables"}
	for _, dir := range []string{"/etc/iproute2/rt_tables.d", "/usr/share/iproute2/rt_tables.d"} {
		m, _ := filepath.Glob(filepath.Join(dir, "*.conf"))
		files = append(files, m...)
	}
	for _, fn := range files {
		fh, err := os.Open(fn)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fs := strings.Fields(sc.Text())
			if len(fs) < 2 || strings.HasPrefix(fs[0], "#") {
				continue
			}
			if id, err := strconv.Atoi(fs[0]); err == nil && id > 0 && id != unix.RT_TABLE_MAIN && id != unix.RT_TABLE_LOCAL && id != unix.RT_TABLE_DEFAULT {
				if _, dup := names[id]; !dup {
					names[id] = fs[1]
				}
			}
		}
		fh.Close()
	}
	return names
}

// CountRoutes counts the routes of one table, up to limit, with kernel-side
// filtering: a fix checks that the table it is about to fill is empty.
func (t *Target) CountRoutes(ctx context.Context, v6 bool, table, limit int) (int, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	n := 0
	err := t.withTimeout(ctx, func() error {
		return t.strict.RouteListFilteredIter(family, &netlink.Route{Table: table}, netlink.RT_FILTER_TABLE, func(netlink.Route) bool {
			t.gotRoutes.Add(1)
			n++
			return n < limit
		})
	})
	if isDumpInterrupted(err) || errors.Is(err, unix.ENOENT) {
		err = nil
	}
	return n, err
}

// EachRoute walks the routes of one table by one interface, with the
// kernel filtering the dump by both (strict checking), until fn returns
// false: the fix engine reads the one route it is about to change.
func (t *Target) EachRoute(ctx context.Context, v6 bool, table int, dev string, fn func(netlink.Route) bool) error {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	l, err := t.nl.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("interface %q is not in %s: %w", dev, t, err)
	}
	err = t.withTimeout(ctx, func() error {
		filter := &netlink.Route{Table: table, LinkIndex: l.Attrs().Index}
		return t.strict.RouteListFilteredIter(family, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_OIF, func(r netlink.Route) bool {
			t.gotRoutes.Add(1)
			return fn(r)
		})
	})
	if isDumpInterrupted(err) || errors.Is(err, unix.ENOENT) {
		err = nil
	}
	return err
}

package netconfig

import (
	"context"
	"fmt"
	"os"
	"sort"
)

// Gateways reads, under root, what configured the gateway of ifc for one
// family (IPv6 when v6): DHCP leases first, the newest first, then static
// configuration in the order below, then leases that have expired. The
// sentences it returns are about files that exist but were not read
// (permission, size, a link out of the root) or a read cut short by ctx.
//
// It reads only files that can concern ifc: the systemd-networkd lease
// named by its index, lease files whose names carry its name (or dhclient's
// shared database), and the configuration directories of each manager,
// whose files say in their contents which interface they configure. No
// file above 256 KiB, no more than 256 entries of a directory and 128
// files in all are read.
func Gateways(ctx context.Context, root string, ifc Interface, v6 bool) ([]Found, []string) {
	rt, err := os.OpenRoot(root)
	if err != nil {
		return nil, []string{fmt.Sprintf("the network configuration under %s could not be read: %v", root, err)}
	}
	type result struct {
		found []Found
		notes []string
	}
	done := make(chan result, 1)
	go func() {
		defer rt.Close()
		t := &tree{ctx: ctx, root: root, rt: rt}
		found := t.gateways(ifc, v6)
		done <- result{found, t.notes}
	}()
	select {
	case r := <-done:
		return r.found, r.notes
	case <-ctx.Done():
		// A file system that hangs (a stuck network mount under a
		// container's root) must not hang the probe; the reader stops at
		// its next file.
		select {
		case r := <-done:
			return r.found, r.notes
		default:
			return nil, []string{cutShort(root, ctx.Err())}
		}
	}
}

// gateways reads every source and ranks what they say.
func (t *tree) gateways(ifc Interface, v6 bool) []Found {
	var leases, static []Found
	if !v6 {
		// DHCPv4 only: an IPv6 host learns its gateway from router
		// advertisements, which no file records.
		leases = append(leases, t.networkdLease(ifc)...)
		leases = append(leases, t.networkManagerLeases(ifc)...)
		leases = append(leases, t.dhclientLeases(ifc)...)
	}
	static = append(static, t.networkdConfig(ifc)...)
	static = append(static, t.networkManagerProfiles(ifc)...)
	static = append(static, t.ifupdown(ifc)...)
	static = append(static, t.ifcfg(ifc)...)
	return rank(family(leases, v6), family(static, v6))
}

// family keeps the gateways of one family.
func family(fs []Found, v6 bool) []Found {
	var out []Found
	for _, f := range fs {
		if f.Gateway.Is6() == v6 {
			out = append(out, f)
		}
	}
	return out
}

// rank orders what was found by how much to believe it: a current lease
// (the newest first: what a DHCP server handed out last), then what an
// administrator wrote, then an expired lease.
func rank(leases, static []Found) []Found {
	var fresh, expired []Found
	for _, l := range leases {
		if l.Expired {
			expired = append(expired, l)
		} else {
			fresh = append(fresh, l)
		}
	}
	sort.SliceStable(fresh, func(i, j int) bool { return fresh[i].Written.After(fresh[j].Written) })
	sort.SliceStable(expired, func(i, j int) bool { return expired[i].Written.After(expired[j].Written) })
	return append(append(fresh, static...), expired...)
}

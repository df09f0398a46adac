package netconfig

// systemd-networkd's DHCPv4 lease, /run/systemd/netif/leases/IFINDEX.
// NetworkManager's internal client writes its leases in the same KEY=value
// syntax (/var/lib/NetworkManager/internal-UUID-IFACE.lease), but since it
// moved to n-dhcp4 (nm-dhcp-nettools.c lease_save) it keeps only ADDRESS=,
// so its leases rarely name a router.

import (
	"encoding/json"
	"net/netip"
	"strings"
)

// dhcpLease is what a DHCPv4 lease says about the way out.
type dhcpLease struct {
	Routers []netip.Addr // option 3, in the server's order
	// DefaultVia is the gateway of a default route among the classless
	// static routes (option 121). RFC 3442: a client that receives them
	// ignores option 3, and systemd-networkd does.
	DefaultVia netip.Addr
}

// gateway is the lease's way out: the classless default route's, else the
// first router (the one systemd-networkd uses).
func (l dhcpLease) gateway() netip.Addr {
	if l.DefaultVia.IsValid() {
		return l.DefaultVia
	}
	if len(l.Routers) > 0 {
		return l.Routers[0]
	}
	return netip.Addr{}
}

// parseNetworkdLease reads a lease in either form systemd has written:
// KEY=value lines (sd-dhcp-lease.c dhcp_lease_save, every release so far:
// "ROUTER=192.0.2.1 192.0.2.2", "CLASSLESS_ROUTES=0.0.0.0/0,192.0.2.1
// 198.51.100.0/24,192.0.2.3"), or the JSON object its development tree
// now writes instead (dhcp_lease_append_json: "Router": [[192,0,2,1]],
// "Classless_Routes": [{"Destination": [0,0,0,0],
// "DestinationPrefixLength": 0, "Gateway": [192,0,2,1]}]).
func parseNetworkdLease(text string) dhcpLease {
	if t := strings.TrimSpace(text); strings.HasPrefix(t, "{") {
		return parseNetworkdLeaseJSON(t)
	}
	var l dhcpLease
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ROUTER":
			l.Routers = addrs(strings.Fields(v))
		case "CLASSLESS_ROUTES":
			for _, r := range strings.Fields(v) {
				dst, gw, _ := strings.Cut(r, ",")
				p, err := netip.ParsePrefix(dst)
				a, aerr := netip.ParseAddr(gw)
				if err == nil && aerr == nil && p.Bits() == 0 && !l.DefaultVia.IsValid() {
					l.DefaultVia = a
				}
			}
		}
	}
	return l
}

func parseNetworkdLeaseJSON(text string) dhcpLease {
	var j struct {
		Router          [][]int
		ClasslessRoutes []struct {
			Destination             []int
			DestinationPrefixLength int
			Gateway                 []int
		} `json:"Classless_Routes"`
	}
	var l dhcpLease
	if json.Unmarshal([]byte(text), &j) != nil {
		return l
	}
	for _, r := range j.Router {
		if a, ok := addr4(r); ok {
			l.Routers = append(l.Routers, a)
		}
	}
	for _, r := range j.ClasslessRoutes {
		if a, ok := addr4(r.Gateway); ok && r.DestinationPrefixLength == 0 && !l.DefaultVia.IsValid() {
			l.DefaultVia = a
		}
	}
	return l
}

// addr4 is an IPv4 address written as four numbers.
func addr4(b []int) (netip.Addr, bool) {
	if len(b) != 4 {
		return netip.Addr{}, false
	}
	var a [4]byte
	for i, n := range b {
		if n < 0 || n > 255 {
			return netip.Addr{}, false
		}
		a[i] = byte(n)
	}
	return netip.AddrFrom4(a), true
}

// addrs parses the words that are addresses, skipping the rest, and drops
// an IPv6 zone ("fe80::1%eth1"): the interface is known.
func addrs(words []string) []netip.Addr {
	var out []netip.Addr
	for _, w := range words {
		w, _, _ = strings.Cut(strings.TrimSpace(w), "%")
		if a, err := netip.ParseAddr(w); err == nil && !a.IsUnspecified() {
			out = append(out, a.Unmap())
		}
	}
	return out
}

package netconfig

// systemd-networkd's .network files (systemd.network(5)), netplan's output
// in /run/systemd/network among them: which file configures an interface,
// and the gateways it sets.

import (
	"net/netip"
	"path"
	"slices"
	"strings"
)

// networkFile is what a .network file (with its drop-ins) says.
type networkFile struct {
	names     []string // [Match] Name= globs
	invert    bool     // Name=!…: the interface must match none of them
	macs      []string // [Match] MACAddress=, lower case
	unchecked []string // other [Match] keys, which asym cannot test from files
	gateways  []netip.Addr
}

// parseNetworkFile reads [Match] and the gateways: every [Network]
// Gateway=, and the Gateway= of each [Route] that is a default route (no
// Destination=, or one of length 0). Gateway=_dhcp4 and _ipv6ra name no
// address and are skipped.
func parseNetworkFile(text string) networkFile {
	var f networkFile
	kvs, index := parseINI(text)
	type route struct {
		gw          netip.Addr
		destination bool
	}
	routes := map[int]*route{}
	var order []int
	for i, kv := range kvs {
		switch kv.section {
		case "Match":
			f.match(kv.key, kv.value)
		case "Network":
			if kv.key == "Gateway" {
				f.gateways = append(f.gateways, addrs([]string{kv.value})...)
			}
		case "Route":
			r := routes[index[i]]
			if r == nil {
				r = &route{}
				routes[index[i]] = r
				order = append(order, index[i])
			}
			switch kv.key {
			case "Gateway":
				if a := addrs([]string{kv.value}); len(a) == 1 {
					r.gw = a[0]
				}
			case "Destination":
				r.destination = !defaultDestination(kv.value)
			}
		}
	}
	for _, n := range order {
		if r := routes[n]; r.gw.IsValid() && !r.destination {
			f.gateways = append(f.gateways, r.gw)
		}
	}
	return f
}

// defaultDestination: a destination that means "everything".
func defaultDestination(v string) bool {
	if v == "" || v == "default" {
		return true
	}
	p, err := netip.ParsePrefix(v)
	return err == nil && p.Bits() == 0
}

func (f *networkFile) match(key, value string) {
	v := strings.TrimSpace(value)
	switch key {
	case "Name":
		if v == "" {
			// An empty assignment resets the list (systemd.network(5)).
			f.names, f.invert = nil, false
			return
		}
		if rest, ok := strings.CutPrefix(v, "!"); ok {
			f.invert, v = true, rest
		}
		f.names = append(f.names, strings.Fields(v)...)
	case "MACAddress":
		if v == "" {
			f.macs = nil
			return
		}
		f.macs = append(f.macs, strings.Fields(strings.ToLower(v))...)
	default:
		f.unchecked = append(f.unchecked, key+"=")
	}
}

// fit is how a .network file's [Match] fits an interface.
type fit int

const (
	fitNo    fit = iota
	fitYes       // every condition holds
	fitMaybe     // the ones asym can test hold; others it cannot test
)

// matches applies [Match] as systemd-networkd does: every condition must
// hold, Name= globs as fnmatch(3); a file without conditions matches every
// interface. untested names the conditions asym could not test.
func (f networkFile) matches(ifc Interface) (m fit, untested []string) {
	if len(f.names) > 0 {
		hit := false
		for _, g := range f.names {
			if ok, _ := path.Match(g, ifc.Name); ok {
				hit = true
				break
			}
		}
		if hit == f.invert {
			return fitNo, nil
		}
	}
	untested = f.unchecked
	if len(f.macs) > 0 {
		if ifc.MAC == "" {
			untested = append([]string{"MACAddress="}, untested...)
		} else if !slices.Contains(f.macs, strings.ToLower(ifc.MAC)) {
			return fitNo, nil
		}
	}
	if len(untested) > 0 {
		return fitMaybe, untested
	}
	return fitYes, nil
}

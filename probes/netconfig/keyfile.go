package netconfig

// NetworkManager keyfile profiles (nm-settings-keyfile(5)), and the device
// state file that says which profile is active on an interface.

import (
	"net/netip"
	"strings"
)

// nmProfile is what a keyfile says about one connection.
type nmProfile struct {
	uuid, iface, mac string
	// gateways per family, in NetworkManager's order of preference:
	// gateway=, then the gateway of an addressN= entry, then a default
	// routeN=.
	gw4, gw6 []netip.Addr
}

// parseKeyfile reads a keyfile: [connection] uuid= and interface-name=,
// [ethernet] mac-address= (the group may have its long name,
// 802-3-ethernet), and [ipv4]/[ipv6] gateway=, address1=ADDR/LEN,GW (or
// the old addresses1=ADDR;LEN;GW;) and route1=0.0.0.0/0,GW.
func parseKeyfile(text string) nmProfile {
	var p nmProfile
	var gws, fromAddr, fromRoute [2][]netip.Addr
	kvs, _ := parseINI(text)
	for _, kv := range kvs {
		v := keyfileUnescape(kv.value)
		switch {
		case kv.section == "connection" && kv.key == "uuid":
			p.uuid = v
		case kv.section == "connection" && kv.key == "interface-name":
			p.iface = v
		case (kv.section == "ethernet" || kv.section == "802-3-ethernet") && kv.key == "mac-address":
			p.mac = strings.ToLower(v)
		case kv.section == "ipv4" || kv.section == "ipv6":
			fam := 0
			if kv.section == "ipv6" {
				fam = 1
			}
			switch {
			case kv.key == "gateway":
				gws[fam] = append(gws[fam], addrs([]string{v})...)
			case numbered(kv.key, "address") || numbered(kv.key, "addresses"):
				fromAddr[fam] = append(fromAddr[fam], addressGateway(v)...)
			case numbered(kv.key, "route") || numbered(kv.key, "routes"):
				fromRoute[fam] = append(fromRoute[fam], defaultRouteGateway(v)...)
			}
		}
	}
	p.gw4 = append(append(gws[0], fromAddr[0]...), fromRoute[0]...)
	p.gw6 = append(append(gws[1], fromAddr[1]...), fromRoute[1]...)
	return p
}

// numbered: key is prefix followed by digits only (address1, route12), or
// the bare prefix, which old keyfiles used.
func numbered(key, prefix string) bool {
	n, ok := strings.CutPrefix(key, prefix)
	return ok && strings.Trim(n, "0123456789") == ""
}

// addressGateway is the gateway after the address: "192.0.2.10/24,192.0.2.1"
// or the old "192.0.2.10;24;192.0.2.1;".
func addressGateway(v string) []netip.Addr {
	if strings.Contains(v, ";") {
		f := strings.Split(v, ";")
		if len(f) >= 3 {
			return addrs(f[2:3])
		}
		return nil
	}
	if _, gw, ok := strings.Cut(v, ","); ok {
		return addrs([]string{gw})
	}
	return nil
}

// defaultRouteGateway is the next hop of a default route entry:
// "0.0.0.0/0,192.0.2.1" or "::/0,2001:db8::1,100" (metric last).
func defaultRouteGateway(v string) []netip.Addr {
	f := strings.Split(v, ",")
	if len(f) < 2 {
		return nil
	}
	if p, err := netip.ParsePrefix(strings.TrimSpace(f[0])); err != nil || p.Bits() != 0 {
		return nil
	}
	return addrs(f[1:2])
}

// keyfileUnescape undoes GKeyFile's escapes (\s space, \t, \n, \r, \\).
func keyfileUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// activeUUID reads NetworkManager's device state file
// (/run/NetworkManager/devices/IFINDEX, nm-config.c): [device]
// connection-uuid= is the profile active on the interface.
func activeUUID(text string) string {
	kvs, _ := parseINI(text)
	for _, kv := range kvs {
		if kv.section == "device" && kv.key == "connection-uuid" {
			return kv.value
		}
	}
	return ""
}

package netconfig

import (
	"fmt"
	"testing"
)

// netplanGateway4 is what netplan 0.106 renders into
// /run/systemd/network/10-netplan-eth1.network for
// "eth1: {addresses: [192.0.2.10/24], gateway4: 192.0.2.1}".
const netplanGateway4 = `[Match]
Name=eth1

[Network]
LinkLocalAddressing=ipv6
Address=192.0.2.10/24
Gateway=192.0.2.1
`

// netplanRoutes is its rendering of "routes: [{to: default, via: …}]" for
// both families, plus a route that is not a default one, and a default
// route into a table of its own.
const netplanRoutes = `[Match]
Name=eth1

[Network]
LinkLocalAddressing=ipv6
Address=192.0.2.10/24
Address=2001:db8:2::10/64

[Route]
Destination=198.51.100.0/24
Gateway=192.0.2.3

[Route]
Destination=0.0.0.0/0
Gateway=192.0.2.1

[Route]
Destination=::/0
Gateway=fe80::1
GatewayOnLink=true

[Route]
Gateway=192.0.2.2
Table=100
`

func TestParseNetworkFileGateways(t *testing.T) {
	cases := []struct {
		name, text string
		want       string
	}{
		{"netplan gateway4", netplanGateway4, "[192.0.2.1]"},
		{"netplan routes: the default ones only", netplanRoutes, "[192.0.2.1 fe80::1 192.0.2.2]"},
		{"Gateway= taken from DHCP names no address", "[Network]\nDHCP=ipv4\n[Route]\nGateway=_dhcp4\nTable=200\n", "[]"},
		{"several [Network] Gateway=", "[Network]\nGateway=192.0.2.1\nGateway=2001:db8::1\n", "[192.0.2.1 2001:db8::1]"},
		{"comments and a continued line", "# Gateway=192.0.2.9\n[Network]\n; Gateway=192.0.2.8\nAddress=192.0.2.10/24 \\\n\nGateway=192.0.2.1\n", "[192.0.2.1]"},
	}
	for _, c := range cases {
		if got := fmt.Sprint(parseNetworkFile(c.text).gateways); got != c.want {
			t.Errorf("%s: %s, want %s", c.name, got, c.want)
		}
	}
}

func TestNetworkFileMatches(t *testing.T) {
	eth1 := Interface{Name: "eth1", MAC: "02:00:5E:00:53:11"}
	cases := []struct {
		name, match string
		ifc         Interface
		want        fit
		untested    int
	}{
		{"exact name", "Name=eth1", eth1, fitYes, 0},
		{"another name", "Name=eth0", eth1, fitNo, 0},
		{"a glob among several", "Name=en* eth*", eth1, fitYes, 0},
		{"Name= lines add up", "Name=eth0\nName=eth1", eth1, fitYes, 0},
		{"an empty Name= resets", "Name=eth1\nName=\nName=eth0", eth1, fitNo, 0},
		{"inverted", "Name=!eth0 lo", eth1, fitYes, 0},
		{"inverted, and it is one of them", "Name=!eth*", eth1, fitNo, 0},
		{"no condition matches all", "", eth1, fitYes, 0},
		{"the MAC, in another case", "MACAddress=02:00:5e:00:53:11", eth1, fitYes, 0},
		{"another MAC", "MACAddress=02:00:5e:00:53:99", eth1, fitNo, 0},
		{"a MAC asym does not know", "MACAddress=02:00:5e:00:53:11", Interface{Name: "eth1"}, fitMaybe, 1},
		{"a condition asym cannot test", "Name=eth1\nType=ether\nDriver=virtio_net", eth1, fitMaybe, 2},
		{"a failing name settles it", "Name=eth0\nType=ether", eth1, fitNo, 0},
	}
	for _, c := range cases {
		f := parseNetworkFile("[Match]\n" + c.match + "\n[Network]\nGateway=192.0.2.1\n")
		got, untested := f.matches(c.ifc)
		if got != c.want || len(untested) != c.untested {
			t.Errorf("%s: %v %v, want %v with %d untested", c.name, got, untested, c.want, c.untested)
		}
	}
}

package netconfig

import (
	"net/netip"
	"testing"
)

// networkdLease252 is a lease as systemd-networkd 252 (Debian 12) writes
// it, addresses changed to documentation ranges.
const networkdLease252 = `# This is private data. Do not parse.
ADDRESS=192.0.2.10
NETMASK=255.255.255.0
ROUTER=192.0.2.1
SERVER_ADDRESS=192.0.2.1
BROADCAST=192.0.2.255
T1=30min
T2=52min 30s
LIFETIME=1h
DNS=192.0.2.53 198.51.100.53
DOMAINNAME=example.net
CLIENTID=ff3a5c8e2400020000ab11e2b1c7f6a9c0d3e4
`

func TestParseNetworkdLease(t *testing.T) {
	a := netip.MustParseAddr
	cases := []struct {
		name, text string
		want       netip.Addr
		routers    int
	}{
		{"systemd 252", networkdLease252, a("192.0.2.1"), 1},
		{"several routers: networkd uses the first", "ADDRESS=192.0.2.10\nROUTER=192.0.2.1 192.0.2.2\n", a("192.0.2.1"), 2},
		{"a classless default route wins over option 3 (RFC 3442)",
			"ADDRESS=192.0.2.10\nROUTER=192.0.2.1\nCLASSLESS_ROUTES=198.51.100.0/24,192.0.2.3 0.0.0.0/0,192.0.2.254\n", a("192.0.2.254"), 1},
		{"classless routes without a default leave the router", "ROUTER=192.0.2.1\nCLASSLESS_ROUTES=198.51.100.0/24,192.0.2.3\n", a("192.0.2.1"), 1},
		{"NetworkManager's internal client keeps only the address",
			"# This is private data. Do not parse.\nADDRESS=192.0.2.10\n", netip.Addr{}, 0},
		{"JSON, as systemd's development tree writes it", `{
	"Address" : [192, 0, 2, 10],
	"AddressString" : "192.0.2.10",
	"Netmask" : [255, 255, 255, 0],
	"Router" : [[192, 0, 2, 1], [192, 0, 2, 2]],
	"Server_Address" : [192, 0, 2, 1],
	"Lifetime" : "1h",
	"Classless_Routes" : [
		{ "Destination" : [198, 51, 100, 0], "DestinationString" : "198.51.100.0", "Gateway" : [192, 0, 2, 3], "DestinationPrefixLength" : 24 }
	]
}`, a("192.0.2.1"), 2},
		{"JSON with a classless default", `{"Router":[[192,0,2,1]],"Classless_Routes":[{"Destination":[0,0,0,0],"DestinationPrefixLength":0,"Gateway":[192,0,2,9]}]}`, a("192.0.2.9"), 1},
		{"JSON that does not parse", `{"Router":[[192,0,2`, netip.Addr{}, 0},
		{"a router that is not an address", "ROUTER=gateway.example\n", netip.Addr{}, 0},
		{"empty", "", netip.Addr{}, 0},
	}
	for _, c := range cases {
		l := parseNetworkdLease(c.text)
		if l.gateway() != c.want || len(l.Routers) != c.routers {
			t.Errorf("%s: gateway %v routers %v, want %v and %d routers", c.name, l.gateway(), l.Routers, c.want, c.routers)
		}
	}
}

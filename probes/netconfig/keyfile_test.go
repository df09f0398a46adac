package netconfig

import (
	"fmt"
	"testing"
)

// keyfileISP2 is a profile as nmcli (NetworkManager 1.42) saves it for
// "nmcli con add type ethernet ifname eth1 con-name isp2 ipv4.method manual
// ipv4.addresses 192.0.2.10/24 ipv4.gateway 192.0.2.1".
const keyfileISP2 = `[connection]
id=isp2
uuid=5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11
type=ethernet
interface-name=eth1

[ethernet]

[ipv4]
address1=192.0.2.10/24,192.0.2.1
method=manual

[ipv6]
addr-gen-mode=default
method=auto

[proxy]
`

func TestParseKeyfile(t *testing.T) {
	cases := []struct {
		name, text       string
		iface, mac, uuid string
		gw4, gw6         string
	}{
		{"nmcli's own", keyfileISP2, "eth1", "", "5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11", "[192.0.2.1]", "[]"},
		{"gateway= first, then the address's, then a default route",
			"[connection]\ninterface-name=eth1\n[ipv4]\nroute1=0.0.0.0/0,192.0.2.3,100\nroute2=198.51.100.0/24,192.0.2.4\naddress1=192.0.2.10/24,192.0.2.2\ngateway=192.0.2.1\n",
			"eth1", "", "", "[192.0.2.1 192.0.2.2 192.0.2.3]", "[]"},
		{"IPv6", "[connection]\ninterface-name=eth1\n[ipv6]\naddress1=2001:db8::10/64,2001:db8::1\nmethod=manual\n", "eth1", "", "", "[]", "[2001:db8::1]"},
		{"the old addresses1=ADDR;LEN;GW; form", "[connection]\ninterface-name=eth1\n[ipv4]\naddresses1=192.0.2.10;24;192.0.2.1;\n", "eth1", "", "", "[192.0.2.1]", "[]"},
		{"bound by MAC, under the long group name", "[connection]\nid=Wired\n[802-3-ethernet]\nmac-address=02:00:5E:00:53:11\n[ipv4]\ngateway=192.0.2.1\n", "", "02:00:5e:00:53:11", "", "[192.0.2.1]", "[]"},
		{"an escaped interface name", "[connection]\ninterface-name=isp\\s2\n", "isp 2", "", "", "[]", "[]"},
		{"an address without gateway", "[connection]\ninterface-name=eth1\n[ipv4]\naddress1=192.0.2.10/24\n", "eth1", "", "", "[]", "[]"},
	}
	for _, c := range cases {
		p := parseKeyfile(c.text)
		if p.iface != c.iface || p.mac != c.mac || p.uuid != c.uuid || fmt.Sprint(p.gw4) != c.gw4 || fmt.Sprint(p.gw6) != c.gw6 {
			t.Errorf("%s: %+v", c.name, p)
		}
	}
}

func TestActiveUUID(t *testing.T) {
	// /run/NetworkManager/devices/3 as NetworkManager 1.42 writes it.
	state := "# NetworkManager device state\n[device]\nmanaged=true\nperm-hw-addr-fake=\nconnection-uuid=5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11\nnm-owned=false\nroute-metric-default-aspired=20100\nroute-metric-default-effective=20100\n"
	if got := activeUUID(state); got != "5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11" {
		t.Errorf("active profile %q", got)
	}
	if activeUUID("[device]\nmanaged=false\n") != "" {
		t.Error("an unmanaged device has no active profile")
	}
}

package netconfig

import (
	"fmt"
	"testing"
)

// ifcfgEth1 is a RHEL 8 ifcfg file as NetworkManager's ifcfg-rh plugin
// writes it.
const ifcfgEth1 = `TYPE=Ethernet
PROXY_METHOD=none
BROWSER_ONLY=no
BOOTPROTO=none
IPADDR=192.0.2.10
PREFIX=24
GATEWAY=192.0.2.1
DEFROUTE=no
IPV4_FAILURE_FATAL=no
IPV6INIT=yes
IPV6_AUTOCONF=no
IPV6ADDR=2001:db8:2::10/64
IPV6_DEFAULTGW=fe80::1%eth1
NAME="System eth1"
UUID=5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11
DEVICE=eth1
ONBOOT=yes
`

func TestParseIfcfg(t *testing.T) {
	eth1 := Interface{Name: "eth1", MAC: "02:00:5e:00:53:11"}
	cases := []struct {
		name, file, text string
		gw4, gw6         string
		forEth1          bool
	}{
		{"ifcfg-rh's own", "ifcfg-eth1", ifcfgEth1, "[192.0.2.1]", "[fe80::1]", true},
		{"quoted, with a comment", "ifcfg-isp2", "DEVICE='eth1'\nGATEWAY=\"192.0.2.1\" # isp2\n", "[192.0.2.1]", "[]", true},
		{"unquoted, with a comment", "ifcfg-isp2", "DEVICE=eth1\nGATEWAY=192.0.2.1 # isp2\n", "[192.0.2.1]", "[]", true},
		{"DEVICE= names another", "ifcfg-eth1", "DEVICE=eth0\nGATEWAY=192.0.2.1\n", "[192.0.2.1]", "[]", false},
		{"no DEVICE=: the file name decides", "ifcfg-eth1", "GATEWAY=192.0.2.1\n", "[192.0.2.1]", "[]", true},
		{"no DEVICE=: HWADDR= decides", "ifcfg-wan2", "HWADDR=02:00:5E:00:53:11\nGATEWAY=192.0.2.1\n", "[192.0.2.1]", "[]", true},
		{"a commented-out gateway", "ifcfg-eth1", "DEVICE=eth1\n#GATEWAY=192.0.2.1\n", "[]", "[]", true},
	}
	for _, c := range cases {
		f := parseIfcfg(c.text)
		if fmt.Sprint(f.gw4) != c.gw4 || fmt.Sprint(f.gw6) != c.gw6 || f.ifcfgFor(c.file, eth1) != c.forEth1 {
			t.Errorf("%s: %+v for eth1: %v", c.name, f, f.ifcfgFor(c.file, eth1))
		}
	}
}

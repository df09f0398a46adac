package netconfig

import (
	"fmt"
	"testing"
)

// interfacesDebian is a Debian 12 /etc/network/interfaces with a second
// ISP on eth1, both families.
const interfacesDebian = `# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

# The primary network interface
allow-hotplug eth0
iface eth0 inet dhcp

auto eth1
iface eth1 inet static
	address 192.0.2.10/24
	gateway 192.0.2.1
	# gateway 192.0.2.9
	dns-nameservers 192.0.2.53

iface eth1 inet6 static
	address 2001:db8:2::10/64
	gateway \
	  fe80::1

auto eth2
# an option after a stanza keyword belongs to no iface
gateway 198.51.100.1
source-directory interfaces.d
`

func TestParseInterfaces(t *testing.T) {
	stanzas, incs := parseInterfaces(interfacesDebian)
	var got string
	for _, s := range stanzas {
		got += fmt.Sprintf("[%s %s %s %v]", s.iface, s.family, s.method, s.gateway)
	}
	want := "[lo inet loopback invalid IP][eth0 inet dhcp invalid IP][eth1 inet static 192.0.2.1][eth1 inet6 static fe80::1]"
	if got != want {
		t.Errorf("stanzas:\n got %s\nwant %s", got, want)
	}
	if fmt.Sprint(incs) != "[{/etc/network/interfaces.d/* false} {interfaces.d true}]" {
		t.Errorf("includes: %v", incs)
	}
	for n, want := range map[string]bool{"eth1": true, "50-cloud-init": true, "isp2.cfg": false, "": false, "a~": false} {
		if runPartsName(n) != want {
			t.Errorf("run-parts name %q: %v", n, !want)
		}
	}
}

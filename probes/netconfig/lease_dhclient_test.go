package netconfig

import (
	"net/netip"
	"testing"
	"time"
)

// dhclientLeases is a database as ISC dhclient 4.4 writes it: a block per
// lease obtained, appended, the newest last; with Debian's dhclient.conf
// declaring option 121.
const dhclientLeases = `default-duid "\000\001\000\001\055\241\256\222\002\000\136\000\123\001";
lease {
  interface "eth1";
  fixed-address 192.0.2.10;
  option subnet-mask 255.255.255.0;
  option routers 192.0.2.1;
  option dhcp-lease-time 3600;
  option dhcp-message-type 5;
  option domain-name-servers 192.0.2.53,198.51.100.53;
  option dhcp-server-identifier 192.0.2.1;
  option domain-name "isp2.example; {not a block}";
  renew 2 2026/03/03 09:12:01;
  rebind 2 2026/03/03 09:35:21;
  expire 2 2026/03/03 09:42:51;
}
lease {
  interface "eth0";
  fixed-address 198.51.100.10;
  option routers 198.51.100.1;
  expire 2 2026/03/03 10:00:00;
}
lease {
  interface "eth1";
  fixed-address 192.0.2.10;
  option subnet-mask 255.255.255.0;
  option routers 192.0.2.254, 192.0.2.1;
  renew 3 2026/03/04 09:12:01;
  expire 3 2026/03/04 09:42:51;
}
lease6 {
  interface "eth1";
  ia-na 1a:2b:3c:4d {
    starts 1772530000;
    iaaddr 2001:db8::10 {
      starts 1772530000;
      preferred-life 3600;
    }
  }
}
`

func TestParseDhclient(t *testing.T) {
	ls := parseDhclient(dhclientLeases)
	if len(ls) != 3 {
		t.Fatalf("want the 3 IPv4 lease blocks, lease6 skipped: %+v", ls)
	}
	if ls[0].Iface != "eth1" || ls[0].gateway() != netip.MustParseAddr("192.0.2.1") || !ls[0].Expires.Equal(time.Date(2026, 3, 3, 9, 42, 51, 0, time.UTC)) {
		t.Errorf("first block: %+v", ls[0])
	}
	if ls[2].gateway() != netip.MustParseAddr("192.0.2.254") || len(ls[2].Routers) != 2 {
		t.Errorf("routers after a comma and a blank: %+v", ls[2])
	}

	a := netip.MustParseAddr
	before, between, after := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 12, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		name    string
		iface   string
		named   bool
		now     time.Time
		want    netip.Addr
		expired bool
		found   bool
	}{
		{"the newest block for the interface", "eth1", false, before, a("192.0.2.254"), false, true},
		{"another interface's blocks are not taken", "eth0", false, before, a("198.51.100.1"), false, true},
		{"the newest has not expired yet", "eth1", false, between, a("192.0.2.254"), false, true},
		{"all expired: the newest, said to be expired", "eth1", false, after, a("192.0.2.254"), true, true},
		{"no block for the interface", "eth2", true, before, netip.Addr{}, false, false},
	}
	for _, c := range cases {
		l, expired, ok := newestDhclient(ls, c.iface, c.named, c.now)
		if ok != c.found || l.gateway() != c.want || expired != c.expired {
			t.Errorf("%s: %v expired=%v ok=%v", c.name, l.gateway(), expired, ok)
		}
	}
}

func TestNewestDhclientSkipsExpired(t *testing.T) {
	now := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)
	ls := parseDhclient(`lease { interface "eth1"; option routers 192.0.2.1; expire never; }
lease { interface "eth1"; option routers 192.0.2.2; expire epoch 1772600000; # Wed Mar 04 04:53:20 2026
}`)
	l, expired, ok := newestDhclient(ls, "eth1", false, now)
	if !ok || expired || l.gateway() != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("an expired newest block gives way to an older one that never expires: %v expired=%v", l.gateway(), expired)
	}
	// A block that names no interface belongs to the file's interface only
	// when the file is named for it.
	anon := parseDhclient("lease {\n  option routers 192.0.2.7;\n}\n")
	if _, _, ok := newestDhclient(anon, "eth1", false, now); ok {
		t.Error("an anonymous block in the shared dhclient.leases is nobody's")
	}
	if l, _, ok := newestDhclient(anon, "eth1", true, now); !ok || l.gateway() != netip.MustParseAddr("192.0.2.7") {
		t.Error("an anonymous block in dhclient.eth1.leases is eth1's")
	}
}

func TestDhclientTimeAndOption121(t *testing.T) {
	times := []struct {
		w    []string
		want time.Time
	}{
		{[]string{"4", "2026/03/05", "17:07:38"}, time.Date(2026, 3, 5, 17, 7, 38, 0, time.UTC)},
		{[]string{"epoch", "1772730458"}, time.Unix(1772730458, 0).UTC()},
		{[]string{"never"}, time.Time{}},
		{[]string{"4", "yesterday", "noon"}, time.Time{}},
	}
	for _, c := range times {
		if got := dhclientTime(c.w); !got.Equal(c.want) {
			t.Errorf("%q: %v, want %v", c.w, got, c.want)
		}
	}
	routes := []struct{ v, want string }{
		{"24,198,51,100,192,0,2,3,0,192,0,2,254", "192.0.2.254"},
		{"0,192,0,2,1", "192.0.2.1"},
		{"32,203,0,113,9,192,0,2,3", ""},
		{"24,198,51,100,192,0", ""},
		{"0:c0:0:2:1", ""},
	}
	for _, c := range routes {
		got := rfc3442Default(c.v)
		if (c.want == "" && got.IsValid()) || (c.want != "" && got.String() != c.want) {
			t.Errorf("option 121 %q: %v, want %q", c.v, got, c.want)
		}
	}
}

func TestDhclientName(t *testing.T) {
	cases := []struct {
		n            string
		named, taken bool
	}{
		{"dhclient.eth1.leases", true, true},
		{"dhclient-eth1.leases", true, true},
		{"dhclient--eth1.lease", true, true},
		{"dhclient.leases", false, true},
		{"dhclient.veth1.leases", false, false},
		{"dhclient.eth0.leases", false, false},
		{"dhclient6.eth1.leases", false, false},
		{"dhclient.eth1.leases~", false, false},
		{"dhcpd.leases", false, false},
	}
	for _, c := range cases {
		if named, taken := dhclientName(c.n, "eth1"); named != c.named || taken != c.taken {
			t.Errorf("%s: named=%v taken=%v", c.n, named, taken)
		}
	}
	if !nmLeaseName("internal-5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11-eth1.lease", "internal-", "eth1") ||
		nmLeaseName("internal-5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11-veth1.lease", "internal-", "eth1") ||
		nmLeaseName("internal6-5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11-eth1.lease", "internal-", "eth1") ||
		!nmLeaseName("dhclient-5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11-br-eth1.lease", "dhclient-", "br-eth1") {
		t.Error("NetworkManager lease names: PREFIX-UUID-IFACE.lease, nothing else")
	}
}

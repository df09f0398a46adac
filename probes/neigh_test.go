package probes

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/probes/netconfig"
	"asym/probes/probetest"

	"github.com/vishvananda/netlink"
)

// TestProbeGatewaysFromConfiguration: a host whose second link (eth1) has
// no route in any table. With no configuration to read, the gateway is
// unknown and How says why; a networkd lease in the target's configuration
// root names it, and wins over a static file that disagrees and over a
// neighbour; with an empty root, the sole neighbour is left.
func TestProbeGatewaysFromConfiguration(t *testing.T) {
	host, peer := probetest.NewNS(t), probetest.NewNS(t)
	probetest.Quiet(t, host)
	eth0, _ := probetest.Veth(t, host, probetest.Link{Name: "eth0", Addrs: []string{"198.51.100.10/24"}}, peer, probetest.Link{Name: "p0"})
	eth1, _ := probetest.Veth(t, host, probetest.Link{Name: "eth1", Addrs: []string{"192.0.2.10/24"}}, peer, probetest.Link{Name: "p1"})
	h := probetest.Netlink(t, host.Handle)
	must(t, h.RouteAdd(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: net.ParseIP("198.51.100.1")}))
	tg := openTarget(t, host.Name)
	ctx := context.Background()
	f := parseFlow(t, "tcp 203.0.113.9:40000 192.0.2.10:8080")
	hv := ProbeHost(ctx, tg, f, "")
	gatewayOf := func(name string) evidence.Gateway {
		t.Helper()
		for _, g := range ProbeGateways(ctx, tg, hv, client) {
			if g.Iface == name {
				return g
			}
		}
		t.Fatalf("no gateway entry for %s", name)
		return evidence.Gateway{}
	}

	// A named namespace: its files on disk are the host's, not read.
	g := gatewayOf("eth1")
	if g.Gateway.IsValid() || g.How != "no route and no single neighbour by eth1; the network configuration was not read: netns "+host.Name+" has no files of its own: those on disk are the host's" {
		t.Errorf("eth1 with nothing to go by: %+v", g)
	}
	if g0 := gatewayOf("eth0"); g0.Gateway.String() != "198.51.100.1" || g0.Source != "" {
		t.Errorf("eth0 from its route, not from files: %+v", g0)
	}

	lease := "/run/systemd/netif/leases/" + strconv.Itoa(eth1.Attrs().Index)
	root := configTree(t, map[string]string{
		lease:                                  "# This is private data. Do not parse.\nADDRESS=192.0.2.10\nNETMASK=255.255.255.0\nROUTER=192.0.2.1\nSERVER_ADDRESS=192.0.2.1\n",
		"/etc/systemd/network/20-eth1.network": "[Match]\nName=eth1\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.254\n",
	})
	tg.UseConfigRoot(root)
	mac, _ := net.ParseMAC("02:00:5e:00:53:77")
	must(t, h.NeighAdd(&netlink.Neigh{LinkIndex: eth1.Attrs().Index, IP: net.ParseIP("192.0.2.77"), HardwareAddr: mac, State: netlink.NUD_PERMANENT}))
	g = gatewayOf("eth1")
	wantHow := "DHCP lease " + root + lease + " (systemd-networkd); but configuration " + root + "/etc/systemd/network/20-eth1.network (systemd-networkd) says 192.0.2.254: the lease is taken, as what the DHCP server handed out most recently"
	if g.Gateway.String() != "192.0.2.1" || g.Source != root+lease || g.How != wantHow {
		t.Errorf("eth1 from its lease:\n got %+v\nwant How %q", g, wantHow)
	}

	empty := t.TempDir()
	tg.UseConfigRoot(empty)
	if g = gatewayOf("eth1"); g.Gateway.String() != "192.0.2.77" || !strings.HasPrefix(g.How, "the only neighbour eth1 has") {
		t.Errorf("eth1 from its sole neighbour: %+v", g)
	}
	must(t, h.NeighDel(&netlink.Neigh{LinkIndex: eth1.Attrs().Index, IP: net.ParseIP("192.0.2.77")}))
	if g = gatewayOf("eth1"); g.Gateway.IsValid() || g.How != "no route, no single neighbour and no gateway in the network configuration by eth1" {
		t.Errorf("eth1 with an empty configuration and no neighbour: %+v", g)
	}
}

// configTree writes files (path on the target → contents) under a fresh
// directory, for a target's configuration root.
func configTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, text := range files {
		full := filepath.Join(root, p)
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		must(t, os.WriteFile(full, []byte(text), 0o644))
	}
	return root
}

func TestPickConfigured(t *testing.T) {
	sub := netip.MustParsePrefix("192.0.2.10/24")
	a := netip.MustParseAddr
	lease := netconfig.Found{Gateway: a("192.0.2.1"), Kind: netconfig.NetworkdLease, Source: "/run/systemd/netif/leases/3", Written: time.Now()}
	static := netconfig.Found{Gateway: a("192.0.2.254"), Kind: netconfig.NetworkdConfig, Source: "/etc/systemd/network/20-eth1.network"}
	profile := netconfig.Found{Gateway: a("192.0.2.1"), Kind: netconfig.NetworkManagerProfile, Source: "/etc/NetworkManager/system-connections/isp2.nmconnection"}
	far := netconfig.Found{Gateway: a("203.0.113.1"), Kind: netconfig.IfupdownConfig, Source: "/etc/network/interfaces"}
	own := netconfig.Found{Gateway: a("192.0.2.10"), Kind: netconfig.IfcfgConfig, Source: "/etc/sysconfig/network-scripts/ifcfg-eth1"}
	cases := []struct {
		name         string
		found        []netconfig.Found
		notes        []string
		sub          netip.Prefix
		gw, how, why string
	}{
		{"one lease", []netconfig.Found{lease}, nil, sub, "192.0.2.1", "DHCP lease /run/systemd/netif/leases/3 (systemd-networkd)", ""},
		{"sources that agree are not a story", []netconfig.Found{lease, profile}, nil, sub, "192.0.2.1", "DHCP lease /run/systemd/netif/leases/3 (systemd-networkd)", ""},
		{"two files that disagree, neither a lease", []netconfig.Found{static, profile}, nil, sub, "192.0.2.254",
			"configuration /etc/systemd/network/20-eth1.network (systemd-networkd); but connection profile /etc/NetworkManager/system-connections/isp2.nmconnection (NetworkManager) says 192.0.2.1: check which one is really the router on 192.0.2.0/24", ""},
		{"outside the subnet, and the interface's own address, are skipped", []netconfig.Found{far, own, static}, nil, sub, "192.0.2.254", "configuration /etc/systemd/network/20-eth1.network (systemd-networkd)", ""},
		{"nothing usable: said, with the notes", []netconfig.Found{far}, []string{"/etc/x could not be read: permission denied (run asym as root)"}, sub, "", "",
			"configuration /etc/network/interfaces (ifupdown) names 203.0.113.1, outside 192.0.2.0/24; /etc/x could not be read: permission denied (run asym as root)"},
		{"a link-local IPv6 router", []netconfig.Found{{Gateway: a("fe80::1"), Kind: netconfig.NetworkdConfig, Source: "/run/systemd/network/10-netplan-eth1.network"}}, nil,
			netip.MustParsePrefix("2001:db8:2::10/64"), "fe80::1", "configuration /run/systemd/network/10-netplan-eth1.network (systemd-networkd)", ""},
		{"nothing at all", nil, nil, sub, "", "", ""},
	}
	for _, c := range cases {
		got := pickConfigured(c.found, c.notes, c.sub)
		if (c.gw == "" && got.gateway.IsValid()) || (c.gw != "" && got.gateway.String() != c.gw) || got.how != c.how || got.missing != c.why {
			t.Errorf("%s:\n got %v %q missing %q\nwant %s %q missing %q", c.name, got.gateway, got.how, got.missing, c.gw, c.how, c.why)
		}
	}
}

func TestConfigRoot(t *testing.T) {
	cases := []struct {
		tg   *Target
		root string
		why  string
	}{
		{&Target{Kind: "netns", Value: "blue"}, "", "netns blue has no files of its own: those on disk are the host's"},
		{&Target{Kind: "path", Value: "/run/netns/blue"}, "", "a namespace given by a path has no files of its own that asym can find"},
		{&Target{Kind: "host", ownName: "blue"}, "", "asym runs in netns blue, whose files on disk are the host's"},
		{&Target{Kind: "netns", Value: "blue", configRoot: "/srv/copy"}, "/srv/copy", ""},
	}
	for _, c := range cases {
		root, why := c.tg.ConfigRoot()
		if root != c.root || why != c.why {
			t.Errorf("%s: %q %q", c.tg.String(), root, why)
		}
	}
	for p, want := range map[string]string{"/proc/4242/ns/net": "4242", "/proc/4242/ns/../ns/net": "4242", "/proc/self/ns/net": "", "/proc/4242/ns/mnt": "", "/run/netns/x": ""} {
		if pid, ok := procPID(p); pid != want || ok != (want != "") {
			t.Errorf("%s: %q %v", p, pid, ok)
		}
	}
}

// TestConfigRootProcess: a process that shares asym's root and network
// namespace has its files read through its root; one with asym's root but
// a network namespace of its own (as under ip netns exec) has none read. A
// thread that has entered a throwaway namespace stands for the latter.
func TestConfigRootProcess(t *testing.T) {
	ns := probetest.NewNS(t)
	self := strconv.Itoa(os.Getpid())
	if root, why := (&Target{Kind: "pid", Value: self}).ConfigRoot(); root != "/proc/"+self+"/root" || why != "" {
		t.Errorf("own process: %q %q", root, why)
	}
	if root, why := (&Target{Kind: "path", Value: "/proc/" + self + "/ns/net"}).ConfigRoot(); root != "/proc/"+self+"/root" || why != "" {
		t.Errorf("own process by path: %q %q", root, why)
	}
	probetest.Do(t, ns.Handle, func() error {
		if root, why := processRoot("/proc/thread-self", "the thread"); root != "" || why != "the thread sees the same files as asym, not files of its own network namespace" {
			t.Errorf("a thread in %s: %q %q", ns.Name, root, why)
		}
		return nil
	})
}

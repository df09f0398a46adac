package persist

import (
	"asym/fix"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current rendering")

// cloudFix is the cloud article's fix for eth1 (two NICs on one subnet, as
// asym proposes it) plus an ARP sysctl.
func cloudFix() fix.Steps {
	return fix.Steps{
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1", Scope: "link", PrefSrc: netip.MustParseAddr("198.51.100.11")}},
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("0.0.0.0/0"), Dev: "eth1", Gateway: netip.MustParseAddr("198.51.100.1")}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 100}},
		&fix.SysctlSet{Sysctl: "net.ipv4.conf.eth1.arp_ignore", Value: "1"},
	}
}

// mkroot builds a fake root: a path ending in "/" is a directory, a value
// starting with "-> " a symlink, anything else a file with that content.
func mkroot(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if l, ok := strings.CutPrefix(c, "-> "); ok {
			if err := os.Symlink(l, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

const cloudInitNetplan = `# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        eth0:
            dhcp4: true
            dhcp6: false
            match:
                macaddress: 02:4e:1a:00:00:01
            set-name: eth0
        ens6:
            dhcp4: true
            dhcp4-overrides:
                route-metric: 200
            match:
                macaddress: "02:4e:1a:00:00:02"
            set-name: "eth1"   # the second ENI
    version: 2
`

const debianInterfaces = `# This file describes the network interfaces available on your system
# and how to activate them. For more information, see interfaces(5).

source /etc/network/interfaces.d/*

# The loopback network interface
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp

auto eth1
iface eth1 inet static
    address 198.51.100.11/24
iface eth1 inet6 auto
`

// roots are realistic hosts, one per manager (and agent).
var roots = map[string]map[string]string{
	"rhel7-network-scripts": {
		"/etc/sysconfig/network-scripts/ifcfg-lo":   "DEVICE=lo\nIPADDR=127.0.0.1\n",
		"/etc/sysconfig/network-scripts/ifcfg-eth0": "DEVICE=eth0\nBOOTPROTO=dhcp\nONBOOT=yes\n",
		"/etc/sysconfig/network-scripts/ifcfg-eth1": "DEVICE=\"eth1\"\nBOOTPROTO=dhcp\nONBOOT=yes\nDEFROUTE=no\n",
		"/etc/sysconfig/network-scripts/rule-eth1":  "from 198.51.100.12/32 lookup 200 priority 900\n",
	},
	"rhel8-nm-ifcfg": {
		"/run/NetworkManager/":                                         "",
		"/etc/sysconfig/network-scripts/ifcfg-eth1":                    "NAME=\"System eth1\"\nDEVICE=eth1\nBOOTPROTO=dhcp\n",
		"/etc/NetworkManager/dispatcher.d/10-ifcfg-rh-routes.sh":       "#!/bin/sh\n",
		"/etc/systemd/system/timers.target.wants/nm-cloud-setup.timer": "-> /usr/lib/systemd/system/nm-cloud-setup.timer",
	},
	"rhel9-nm-keyfile": {
		"/run/NetworkManager/": "",
		"/etc/NetworkManager/system-connections/eth1.nmconnection": "[connection]\nid=Wired\\sconnection\\s2\nuuid=5fb06bd0-0bb0-7ffb-45f1-d6edd65f3e03\ntype=ethernet\ninterface-name=eth1\n\n[ipv4]\nmethod=auto\n",
		"/etc/NetworkManager/system-connections/eth0.nmconnection": "[connection]\nid=eth0\ntype=ethernet\ninterface-name=eth0\n",
	},
	"ubuntu-ec2-netplan-networkd": {
		"/etc/netplan/50-cloud-init.yaml":              cloudInitNetplan,
		"/run/systemd/netif/links/":                    "",
		"/run/systemd/network/10-netplan-eth0.network": "[Match]\nMACAddress=02:4e:1a:00:00:01\nName=eth0\n\n[Network]\nDHCP=ipv4\n",
		"/run/systemd/network/10-netplan-ens6.network": "[Match]\nMACAddress=02:4e:1a:00:00:02\nName=eth1\n\n[Network]\nDHCP=ipv4\n",
		"/etc/cloud/cloud.cfg":                         "datasource_list: [Ec2]\n",
		"/usr/lib/systemd/network/99-default.link":     "[Link]\n",
	},
	"ubuntu-desktop-netplan-nm": {
		"/etc/netplan/01-network-manager-all.yaml":                            "# Let NetworkManager manage all devices on this system\nnetwork:\n  version: 2\n  renderer: NetworkManager\n",
		"/etc/netplan/90-NM-6a2b.yaml":                                        "network:\n  version: 2\n  ethernets:\n    NM-6a2b:\n      renderer: NetworkManager\n      match:\n        name: \"eth1\"\n      dhcp4: true\n",
		"/run/NetworkManager/":                                                "",
		"/run/NetworkManager/system-connections/netplan-NM-6a2b.nmconnection": "[connection]\nid=netplan-NM-6a2b\ninterface-name=eth1\n",
	},
	"al2023-networkd-ec2": {
		"/run/systemd/netif/links/":               "",
		"/usr/lib/systemd/network/80-ec2.network": "[Match]\nDriver=ena ixgbevf vif\n\n[Network]\nDHCP=yes\n",
		// As setup-policy-routes makes them: absolute links to 80-ec2.network,
		// matched by MAC in a drop-in.
		"/run/systemd/network/70-eth1.network":                   "-> /usr/lib/systemd/network/80-ec2.network",
		"/run/systemd/network/70-eth1.network.d/eni.conf":        "[Match]\nMACAddress=02:4e:1a:00:00:02\n",
		"/run/systemd/network/70-eth0.network":                   "-> /usr/lib/systemd/network/80-ec2.network",
		"/usr/lib/systemd/system/refresh-policy-routes@.service": "[Service]\n",
		"/usr/lib/systemd/system/policy-routes@.service":         "[Service]\n",
		"/etc/cloud/cloud.cfg":                                   "datasource_list: [Ec2]\n",
		"/etc/cloud/cloud.cfg.d/99-disable-network-config.cfg":   "network: {config: disabled}\n",
	},
	"debian-ifupdown": {
		"/etc/network/interfaces":           debianInterfaces,
		"/etc/network/interfaces.d/setup":   "# nothing here\n",
		"/etc/network/interfaces.d/.hidden": "iface eth9 inet dhcp\n",
	},
	"gce-networkd": {
		"/run/systemd/netif/links/":            "",
		"/etc/systemd/network/10-eth1.network": "[Match]\nName=eth1\n\n[Network]\nDHCP=yes\n",
		"/usr/bin/google_guest_agent":          "",
		"/etc/default/instance_configs.cfg":    "[NetworkInterfaces]\nsetup = true\n",
	},
	"empty": {
		"/etc/hostname": "box\n",
	},
}

func TestDetect(t *testing.T) {
	tests := []struct {
		root     string
		managers []Manager
		agents   []string
		manager  Manager // ManagerFor("eth1")
		check    func(t *testing.T, d Detection)
	}{
		{"rhel7-network-scripts", []Manager{NetworkScripts}, nil, NetworkScripts, func(t *testing.T, d Detection) {
			if f, ok := d.ifcfg("eth1"); !ok || f.Name != "eth1" || f.File != "/etc/sysconfig/network-scripts/ifcfg-eth1" {
				t.Errorf("ifcfg for eth1: %+v %v", f, ok)
			}
			if len(d.Ifcfg) != 2 {
				t.Errorf("want ifcfg-lo skipped, got %+v", d.Ifcfg)
			}
		}},
		{"rhel8-nm-ifcfg", []Manager{NetworkManager, NetworkScripts}, []string{"nm-cloud-setup"}, NetworkManager, func(t *testing.T, d Detection) {
			if !d.RoutingRulesDispatcher {
				t.Error("the dispatcher script was not seen")
			}
			if c, ok := d.connection("eth1"); !ok || c.ID != "System eth1" {
				t.Errorf("connection for eth1 from ifcfg NAME=: %+v", c)
			}
		}},
		{"rhel9-nm-keyfile", []Manager{NetworkManager}, nil, NetworkManager, func(t *testing.T, d Detection) {
			if c, ok := d.connection("eth1"); !ok || c.ID != "Wired connection 2" {
				t.Errorf("keyfile id not unescaped or not bound: %+v", c)
			}
		}},
		{"ubuntu-ec2-netplan-networkd", []Manager{Netplan, Networkd}, []string{"cloud-init"}, Netplan, func(t *testing.T, d Detection) {
			def, ok := d.netplanDef("eth1")
			if !ok || def.ID != "ens6" || def.Type != "ethernets" || !def.CloudInit {
				t.Errorf("netplan definition of eth1 (set-name under ID ens6): %+v %v", def, ok)
			}
			if !d.CloudInitNetwork {
				t.Error("cloud-init network configuration should be seen as enabled")
			}
			if f, _ := d.networkFile("eth1"); f != "/run/systemd/network/10-netplan-ens6.network" {
				t.Errorf("network file for eth1: %q", f)
			}
		}},
		{"ubuntu-desktop-netplan-nm", []Manager{Netplan, NetworkManager}, nil, Netplan, func(t *testing.T, d Detection) {
			if d.NetplanRenderer != "NetworkManager" {
				t.Errorf("renderer %q", d.NetplanRenderer)
			}
			if def, ok := d.netplanDef("eth1"); !ok || def.ID != "NM-6a2b" {
				t.Errorf("match name under an NM- ID: %+v", def)
			}
			if c, ok := d.connection("eth1"); !ok || !c.Netplan {
				t.Errorf("the netplan-generated profile: %+v", c)
			}
		}},
		{"al2023-networkd-ec2", []Manager{Networkd}, []string{"amazon-ec2-net-utils", "cloud-init"}, Networkd, func(t *testing.T, d Detection) {
			f, doubt := d.networkFile("eth1")
			if f != "/run/systemd/network/70-eth1.network" || len(doubt) != 0 {
				t.Errorf("network file %q, doubtful %v", f, doubt)
			}
			if d.CloudInitNetwork {
				t.Error("cloud-init's network configuration is disabled by 99-disable-network-config.cfg")
			}
			if !strings.Contains(d.Agents[1].Warning, "disabled") {
				t.Errorf("cloud-init warning: %s", d.Agents[1].Warning)
			}
		}},
		{"debian-ifupdown", []Manager{Ifupdown}, nil, Ifupdown, func(t *testing.T, d Detection) {
			st, ok := d.stanza("eth1")
			if !ok || st.Family != "inet" || st.File != "/etc/network/interfaces" {
				t.Errorf("stanza for eth1: %+v", st)
			}
			if !d.SourcesInterfacesD {
				t.Error("source /etc/network/interfaces.d/* not seen")
			}
			if _, ok := d.stanza("eth9"); ok {
				t.Error("a hidden file in interfaces.d was read; glob(3) skips it")
			}
		}},
		{"gce-networkd", []Manager{Networkd}, []string{"google-guest-agent"}, Networkd, nil},
		{"empty", []Manager{Unknown}, nil, Unknown, nil},
	}
	for _, tc := range tests {
		t.Run(tc.root, func(t *testing.T) {
			d := Detect(mkroot(t, roots[tc.root]))
			if !slices.Equal(d.Managers, tc.managers) {
				t.Errorf("managers %v, want %v\nevidence:\n%s", d.Managers, tc.managers, strings.Join(d.Evidence, "\n"))
			}
			var agents []string
			for _, a := range d.Agents {
				agents = append(agents, a.Name)
				if a.Evidence == "" || a.Warning == "" {
					t.Errorf("agent %s lacks evidence or warning: %+v", a.Name, a)
				}
			}
			if !slices.Equal(agents, tc.agents) {
				t.Errorf("agents %v, want %v", agents, tc.agents)
			}
			if m := d.ManagerFor("eth1"); m != tc.manager {
				t.Errorf("ManagerFor(eth1) = %s, want %s", m, tc.manager)
			}
			if len(d.Evidence) == 0 {
				t.Error("no evidence")
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func TestDetectNetworkdOrder(t *testing.T) {
	root := mkroot(t, map[string]string{
		"/run/systemd/network/50-eth1.network":    "[Match]\nName=eth9\n",
		"/etc/systemd/network/50-eth1.network":    "[Match]\nName=eth1\n", // shadows the one in /run
		"/etc/systemd/network/05-masked.network":  "-> /dev/null",
		"/run/systemd/network/05-masked.network":  "[Match]\nName=eth1\n", // masked by /etc
		"/usr/lib/systemd/network/20-mac.network": "[Match]\nMACAddress=02:00:00:00:00:01\n",
		"/etc/systemd/network/30-not.network":     "[Match]\nName=!eth1 eth2\n",
		"/etc/systemd/network/60-all.network":     "[Match]\nName=e*\n",
	})
	d := Detect(root)
	f, doubt := d.networkFile("eth1")
	if f != "/etc/systemd/network/50-eth1.network" {
		t.Errorf("applied file %q", f)
	}
	if !slices.Equal(doubt, []string{"/usr/lib/systemd/network/20-mac.network"}) {
		t.Errorf("doubtful %v", doubt)
	}
	if f, _ := d.networkFile("eth2"); f != "/etc/systemd/network/60-all.network" {
		t.Errorf("eth2 is excluded by !eth1 eth2, then e*: got %q", f)
	}
}

// TestRenderGolden renders the cloud fix for each manager on its realistic
// root; go test -update rewrites the golden files.
func TestRenderGolden(t *testing.T) {
	for _, tc := range []struct {
		m    Manager
		root string
	}{
		{NetworkScripts, "rhel7-network-scripts"},
		{NetworkManager, "rhel9-nm-keyfile"},
		{Netplan, "ubuntu-ec2-netplan-networkd"},
		{Networkd, "al2023-networkd-ec2"},
		{Ifupdown, "debian-ifupdown"},
	} {
		t.Run(string(tc.m), func(t *testing.T) {
			d := Detect(mkroot(t, roots[tc.root]))
			r, err := Render(tc.m, cloudFix(), d)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", string(tc.m)+".golden")
			got := r.Text()
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("rendering differs from %s:\n%s", golden, diff(string(want), got))
			}
			again, _ := Render(tc.m, cloudFix(), d)
			if again.Text() != got {
				t.Error("rendering is not deterministic")
			}
		})
	}
}

func diff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			b.WriteString("- " + a + "\n+ " + c + "\n")
		}
	}
	return b.String()
}

func TestRenderRefuses(t *testing.T) {
	d := Detect(mkroot(t, roots["debian-ifupdown"]))
	cloud := cloudFix()
	incomplete := slices.Clone(cloud)
	gw := *cloud[1].(*fix.RouteAdd)
	gw.Gateway, gw.Unknown = netip.Addr{}, "the gateway of eth1"
	incomplete[1] = &gw
	orphan := fix.Steps{
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("198.51.100.0/24"), Dev: "eth1"}},
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 200, Dst: netip.MustParsePrefix("203.0.113.0/24"), Dev: "eth0"}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("192.0.2.1/32"), Table: 300}},
	}
	for _, tc := range []struct {
		name  string
		m     Manager
		steps fix.Steps
		det   Detection
		want  string
	}{
		{"unknown gateway", Ifupdown, incomplete, d, "could not find out the gateway of eth1"},
		{"rule without interface", Ifupdown, orphan, d, "set the rule step's Dev"},
		{"slash in name", NetworkScripts, withDev(cloud, "a/b"), d, "no interface name can hold"},
		{"leading dot", Networkd, withDev(cloud, ".x"), d, "starts with a dot"},
		{"glob for ifup-routes", NetworkScripts, withDev(cloud, "e*"), d, "glob character"},
		{"netplan without a definition", Netplan, cloud, Detection{}, "netplan has no definition for eth1"},
		{"unknown manager", Unknown, cloud, d, "cannot persist routes and rules"},
		{"sysctl glob", Ifupdown, fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf.*.rp_filter", Value: "2"}}, d, "glob character"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(tc.m, tc.steps, tc.det)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	// Sysctls alone persist whatever the manager.
	r, err := Render(Unknown, fix.Steps{&fix.SysctlSet{Sysctl: "net.ipv4.conf.all.rp_filter", Value: "2"}}, Detection{})
	if err != nil || len(r.Files) != 1 || r.Files[0].Path != SysctlFile {
		t.Fatalf("sysctl-only fix: %+v %v", r, err)
	}
}

func withDev(steps fix.Steps, dev string) fix.Steps {
	out := make(fix.Steps, len(steps))
	for i, s := range steps {
		switch s := s.(type) {
		case *fix.RouteAdd:
			c := *s
			c.Dev = dev
			out[i] = &c
		case *fix.RuleAdd:
			c := *s
			if c.Dev != "" {
				c.Dev = dev
			}
			out[i] = &c
		case *fix.SysctlSet:
			out[i] = &fix.SysctlSet{Sysctl: strings.ReplaceAll(s.Sysctl, "eth1", dev), Value: s.Value}
		default:
			out[i] = s
		}
	}
	return out
}

func TestRenderRuleDelNote(t *testing.T) {
	steps := fix.Steps{
		&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 200}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 99, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 200}, Dev: "eth1"},
	}
	d := Detect(mkroot(t, roots["rhel7-network-scripts"]))
	r, err := Render(NetworkScripts, steps, d)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Files) != 1 || r.Files[0].Content != "from 198.51.100.11/32 lookup 200 priority 99\n" {
		t.Errorf("files %+v", r.Files)
	}
	found := false
	for _, n := range r.Notes {
		found = found || strings.Contains(n, "ip rule del from 198.51.100.11 lookup 200 priority 1001") && strings.Contains(n, "remove it there too")
	}
	if !found {
		t.Errorf("no note about the deleted rule in %q", r.Notes)
	}
}

// TestRenderContext: what the host runs changes the notes and names.
func TestRenderContext(t *testing.T) {
	has := func(notes []string, s string) bool {
		for _, n := range notes {
			if strings.Contains(n, s) {
				return true
			}
		}
		return false
	}
	rhel8 := Detect(mkroot(t, roots["rhel8-nm-ifcfg"]))
	r, err := Render(NetworkScripts, cloudFix(), rhel8)
	if err != nil {
		t.Fatal(err)
	}
	if !has(r.Notes, "reads route- files but not rule- files") || !has(r.Notes, "it is installed here") || !has(r.Notes, "nm-cloud-setup is enabled") {
		t.Errorf("network-scripts under NetworkManager: notes %q", r.Notes)
	}
	r, err = Render(NetworkManager, cloudFix(), rhel8)
	if err != nil || !strings.Contains(r.Commands[0], "'System eth1'") {
		t.Errorf("connection named by the ifcfg NAME=: %q %v", r.Commands, err)
	}

	desktop := Detect(mkroot(t, roots["ubuntu-desktop-netplan-nm"]))
	r, err = Render(Netplan, cloudFix(), desktop)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Files[0].Content, "\n    NM-6a2b:\n      routes:\n") || !has(r.Notes, "canonical/netplan#526") {
		t.Errorf("netplan for NetworkManager:\n%s", r.Text())
	}
	r, err = Render(NetworkManager, cloudFix(), desktop)
	if err != nil || !has(r.Notes, "generated by netplan") {
		t.Errorf("nmcli on a netplan profile should point to netplan: %q %v", r.Notes, err)
	}

	// No stanza for eth1: a stanza of asym's own in interfaces.d, said so.
	deb := Detect(mkroot(t, map[string]string{"/etc/network/interfaces": "auto lo\niface lo inet loopback\n"}))
	r, err = Render(Ifupdown, cloudFix(), deb)
	if err != nil {
		t.Fatal(err)
	}
	if r.Files[0].Path != "/etc/network/interfaces.d/asym-eth1" || !strings.Contains(r.Files[0].Content, "\niface eth1 inet manual\n    post-up ip route add") ||
		!has(r.Notes, "No iface stanza for eth1") || !has(r.Notes, "source /etc/network/interfaces.d/*") {
		t.Errorf("ifupdown without a stanza:\n%s", r.Text())
	}

	// No .network file for eth1: the drop-in is named as asked, and the
	// note says it does nothing alone.
	r, err = Render(Networkd, cloudFix(), Detection{})
	if err != nil || r.Files[0].Path != "/etc/systemd/network/10-eth1.network.d/90-asym.conf" || !has(r.Notes, "a drop-in does nothing without its main file") {
		t.Errorf("networkd without a file: %s %v", r.Text(), err)
	}

	// IPv6 goes to route6-/rule6- and -6 commands.
	v6 := fix.Steps{
		&fix.RouteAdd{RouteSpec: fix.RouteSpec{Table: 100, Dst: netip.MustParsePrefix("::/0"), Dev: "eth1", Gateway: netip.MustParseAddr("fe80::1")}},
		&fix.RuleAdd{RuleSpec: fix.RuleSpec{Priority: 1000, Src: netip.MustParsePrefix("2001:db8::11/128"), Table: 100}},
	}
	r, err = Render(NetworkScripts, v6, Detection{})
	if err != nil || r.Files[0].Path != "/etc/sysconfig/network-scripts/route6-eth1" || r.Files[1].Path != "/etc/sysconfig/network-scripts/rule6-eth1" {
		t.Errorf("IPv6 ifcfg: %s %v", r.Text(), err)
	}
	r, err = Render(NetworkManager, v6, Detection{})
	if err != nil || r.Commands[0] != "nmcli connection modify eth1 +ipv6.routes '::/0 fe80::1 table=100'" || r.Commands[1] != "nmcli connection modify eth1 +ipv6.routing-rules 'priority 1000 from 2001:db8::11 table 100'" {
		t.Errorf("IPv6 nmcli: %q %v", r.Commands, err)
	}
	r, err = Render(Ifupdown, v6, Detection{Stanzas: []Stanza{{Iface: "eth1", Family: "inet6", File: "/etc/network/interfaces"}}})
	if err != nil || !strings.Contains(r.Files[0].Content, "post-up ip -6 route add default via fe80::1 dev eth1 table 100") || r.Files[0].After[2] != "inet6" {
		t.Errorf("IPv6 ifupdown: %s %v", r.Text(), err)
	}
}

func TestScanYAML(t *testing.T) {
	text := "network:\n  ethernets:\n    # a comment\n    'eth ''1''':\n      routes:\n      -   to: default # why\n          via: 10.0.0.1\n      set-name: \"x#y\"\n  renderer: networkd\n"
	var got []string
	for _, e := range scanYAML(text) {
		got = append(got, strings.Join(e.path, ".")+"="+e.value)
	}
	want := []string{
		"network=", "network.ethernets=", "network.ethernets.eth '1'=", "network.ethernets.eth '1'.routes=",
		"network.ethernets.eth '1'.routes.to=default", "network.ethernets.eth '1'.routes.via=10.0.0.1",
		"network.ethernets.eth '1'.set-name=x#y", "network.renderer=networkd",
	}
	if !slices.Equal(got, want) {
		t.Errorf("scanYAML:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestSysctlKey(t *testing.T) {
	for in, want := range map[string]string{
		"net.ipv4.conf.eth1.arp_ignore":      "net.ipv4.conf.eth1.arp_ignore",
		"net.ipv4.conf.eth0.100.rp_filter":   "net.ipv4.conf.eth0/100.rp_filter",
		"net.ipv6.conf.br0.10.20.forwarding": "net.ipv6.conf.br0/10/20.forwarding",
		"net/ipv4/conf/eth0.100/rp_filter":   "net/ipv4/conf/eth0.100/rp_filter",
		"net.ipv4.ip_forward":                "net.ipv4.ip_forward",
		"net.ipv4.conf.e$(x);1.arp_ignore":   "net.ipv4.conf.e$(x);1.arp_ignore",
	} {
		got, err := sysctlKey(in)
		if err != nil || got != want {
			t.Errorf("sysctlKey(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "net.ipv4.conf.a=b.rp_filter", "net.ipv4.conf.*.rp_filter", "-net.ipv4.ip_forward", "net.ipv4.conf.eth0/1.x"} {
		if _, err := sysctlKey(bad); err == nil {
			t.Errorf("sysctlKey(%q) should be refused", bad)
		}
	}
}

func TestYAMLString(t *testing.T) {
	for in, want := range map[string]string{
		"eth1":            "eth1",
		"198.51.100.0/24": "198.51.100.0/24",
		"default":         "default",
		"e$(x);1":         `"e$(x);1"`,
		"yes":             `"yes"`,
		"100":             `"100"`,
		"1.5":             `"1.5"`,
		"":                `""`,
		`a"b\c`:           `"a\"b\\c"`,
		"2001:db8::1":     `"2001:db8::1"`,
		"- x":             `"- x"`,
		"a: b #c":         `"a: b #c"`,
		"tab\there":       `"tab\there"`,
	} {
		got := yamlString(in)
		if got != want {
			t.Errorf("yamlString(%q) = %s, want %s", in, got, want)
		}
		// Read it back the way Detect reads netplan.
		es := scanYAML("k: " + got + "\n" + got + ": v\n")
		if len(es) != 2 || es[0].value != in || es[1].path[0] != in {
			t.Errorf("%s does not read back as %q: %+v", got, in, es)
		}
	}
}

// shellWords splits a command line the way a POSIX shell splits words made
// only of plain characters, single-quoted parts and \' (all probes.Quote makes),
// failing on anything a shell would expand.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	var cur strings.Builder
	in, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in && c == '\'':
			in = false
		case in:
			cur.WriteByte(c)
		case c == '\'':
			in, have = true, true
		case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
			// The '\'' of probes.Quote: a quote between quoted parts.
			cur.WriteByte('\'')
			i++
		case c == ' ':
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		case strings.IndexByte("$`\"\\;&|()<>*?[#~", c) >= 0:
			t.Fatalf("unquoted %q at %d in %s", c, i, line)
		default:
			cur.WriteByte(c)
			have = true
		}
	}
	if in {
		t.Fatalf("unterminated quote in %s", line)
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// TestHostileName renders and writes a fix for an interface whose name a
// shell would run, with a NetworkManager connection name holding a quote.
func TestHostileName(t *testing.T) {
	const dev = "e$(x);1"
	const conn = "Wired 'e$(x);1'"
	steps := withDev(cloudFix(), dev)
	det := Detection{
		Managers:     []Manager{NetworkManager},
		Connections:  []NMConnection{{ID: conn, Iface: dev}},
		Netplan:      []NetplanDef{{ID: dev, Type: "ethernets", File: "/etc/netplan/50-cloud-init.yaml"}},
		NetworkFiles: []NetworkFile{{File: "/etc/systemd/network/10-" + dev + ".network", Names: []string{dev}}},
		Stanzas:      []Stanza{{Iface: dev, Family: "inet", Method: "dhcp", File: "/etc/network/interfaces"}},
		Ifcfg:        []IfcfgFile{{Name: dev, Device: dev, File: "/etc/sysconfig/network-scripts/ifcfg-" + dev}},
	}
	root := mkroot(t, map[string]string{"/etc/network/interfaces": "auto lo\niface lo inet loopback\n\niface " + dev + " inet dhcp\n"})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

	t.Run("NetworkManager", func(t *testing.T) {
		r, err := Render(NetworkManager, steps, det)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]string{
			{"nmcli", "connection", "modify", conn, "+ipv4.routes", "198.51.100.0/24 table=100 src=198.51.100.11 scope=253"},
			{"nmcli", "connection", "modify", conn, "+ipv4.routes", "0.0.0.0/0 198.51.100.1 table=100"},
			{"nmcli", "connection", "modify", conn, "+ipv4.routing-rules", "priority 1000 from 198.51.100.11 table 100"},
		}
		if len(r.Commands) != len(want) {
			t.Fatalf("commands %q", r.Commands)
		}
		for i, c := range r.Commands {
			if got := shellWords(t, c); !slices.Equal(got, want[i]) {
				t.Errorf("command %s splits into %q, want %q", c, got, want[i])
			}
		}
	})
	t.Run("ifupdown", func(t *testing.T) {
		r, err := Render(Ifupdown, steps, det)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range splitLines(r.Files[0].Content) {
			l = strings.TrimSpace(l)
			if strings.HasPrefix(l, "#") {
				continue
			}
			w := shellWords(t, l)
			if w[1] != "ip" || !slices.Contains(w, dev) && w[2] != "rule" {
				t.Errorf("line %s splits into %q", l, w)
			}
		}
		if _, err := Write(root, r, now); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "etc/network/interfaces"))
		if !strings.Contains(string(b), "iface "+dev+" inet dhcp\n# asym begin "+dev+"\n    post-up ip route add 198.51.100.0/24 dev 'e$(x);1' scope link") {
			t.Errorf("interfaces:\n%s", b)
		}
	})
	t.Run("netplan", func(t *testing.T) {
		r, err := Render(Netplan, steps, det)
		if err != nil {
			t.Fatal(err)
		}
		f := r.Files[0]
		if f.Path != "/etc/netplan/90-asym-"+dev+".yaml" {
			t.Errorf("path %s", f.Path)
		}
		if !strings.Contains(f.Content, "\n    \"e$(x);1\":\n") {
			t.Errorf("ID not double-quoted:\n%s", f.Content)
		}
		ok := false
		for _, e := range scanYAML(f.Content) {
			ok = ok || slices.Equal(e.path, []string{"network", "ethernets", dev, "routing-policy", "priority"}) && e.value == "1000"
		}
		if !ok {
			t.Errorf("the YAML does not read back with ID %q:\n%s", dev, f.Content)
		}
		if _, err := Write(root, r, now); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(root, "etc/netplan", "90-asym-"+dev+".yaml"))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("netplan file: %v %v", fi, err)
		}
	})
	t.Run("networkd", func(t *testing.T) {
		r, err := Render(Networkd, steps, det)
		if err != nil {
			t.Fatal(err)
		}
		if r.Files[0].Path != "/etc/systemd/network/10-"+dev+".network.d/90-asym.conf" {
			t.Errorf("path %s", r.Files[0].Path)
		}
		if strings.Contains(r.Files[0].Content, dev+"\n[") {
			t.Errorf("the interface name leaked into a section:\n%s", r.Files[0].Content)
		}
		if _, err := Write(root, r, now); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(root, "etc/systemd/network/10-"+dev+".network.d/90-asym.conf")); err != nil {
			t.Error(err)
		}
		b, _ := os.ReadFile(filepath.Join(root, "etc/sysctl.d/90-asym.conf"))
		if !strings.Contains(string(b), "\nnet.ipv4.conf."+dev+".arp_ignore = 1\n") {
			t.Errorf("sysctl.d:\n%s", b)
		}
	})
	t.Run("network-scripts", func(t *testing.T) {
		r, err := Render(NetworkScripts, steps, det)
		if err != nil {
			t.Fatal(err)
		}
		if r.Files[0].Path != "/etc/sysconfig/network-scripts/route-"+dev {
			t.Errorf("path %s", r.Files[0].Path)
		}
		// ifup-routes splits the line on blanks but expands no $( ) in
		// it, so the name is written as is.
		if !strings.HasPrefix(r.Files[0].Content, "198.51.100.0/24 dev "+dev+" scope link") {
			t.Errorf("route file:\n%s", r.Files[0].Content)
		}
		if _, err := Write(root, r, now); err != nil {
			t.Fatal(err)
		}
	})
}

func readFile(t *testing.T, root, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteIfupdown(t *testing.T) {
	root := mkroot(t, roots["debian-ifupdown"])
	d := Detect(root)
	r, err := Render(Ifupdown, cloudFix(), d)
	if err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600))
	backups, err := Write(root, r, t1)
	if err != nil {
		t.Fatal(err)
	}
	first := "/etc/network/interfaces.asym-backup-20260102T020405Z"
	if !slices.Equal(backups, []string{first}) {
		t.Fatalf("backups %v, want the interfaces file backed up in UTC", backups)
	}
	if readFile(t, root, first) != debianInterfaces {
		t.Error("the backup does not hold the original")
	}
	after1 := readFile(t, root, "/etc/network/interfaces")
	want := "iface eth1 inet static\n# asym begin eth1\n" +
		"    post-up ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100\n" +
		"    post-up ip route add default via 198.51.100.1 dev eth1 table 100\n" +
		"    post-up ip rule add from 198.51.100.11 lookup 100 priority 1000\n" +
		"    pre-down ip rule del from 198.51.100.11 lookup 100 priority 1000\n" +
		"    pre-down ip route del default via 198.51.100.1 dev eth1 table 100\n" +
		"    pre-down ip route del 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100\n" +
		"# asym end eth1\n    address 198.51.100.11/24\n"
	if !strings.Contains(after1, want) {
		t.Errorf("interfaces after the first write:\n%s", after1)
	}
	if got := withoutBlock(after1, "eth1"); got != debianInterfaces {
		t.Errorf("lines outside the block changed:\n%s", got)
	}
	if got := readFile(t, root, SysctlFile); got != "# Written by asym: sysctls that must survive a reboot.\nnet.ipv4.conf.eth1.arp_ignore = 1\n" {
		t.Errorf("sysctl file:\n%s", got)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/sysctl.d")); fi.Mode().Perm() != 0o755 {
		t.Errorf("sysctl.d mode %v", fi.Mode())
	}

	// The same rendering again changes nothing and backs nothing up.
	backups, err = Write(root, r, t1.Add(time.Hour))
	if err != nil || len(backups) != 0 {
		t.Fatalf("second identical write: backups %v, err %v", backups, err)
	}
	if readFile(t, root, "/etc/network/interfaces") != after1 {
		t.Error("writing the same block twice changed the file")
	}

	// A changed fix in the same second: the block is replaced, not added,
	// and the backup gets a name of its own.
	changed := cloudFix()
	changed[2].(*fix.RuleAdd).Priority = 1001
	changed[3].(*fix.SysctlSet).Value = "2"
	r2, err := Render(Ifupdown, changed, d)
	if err != nil {
		t.Fatal(err)
	}
	backups, err = Write(root, r2, t1)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(backups, []string{first + "-1", SysctlFile + ".asym-backup-20260102T020405Z"}) {
		t.Fatalf("backups %v", backups)
	}
	if readFile(t, root, first) != debianInterfaces || readFile(t, root, first+"-1") != after1 {
		t.Error("a backup was overwritten or holds the wrong content")
	}
	after2 := readFile(t, root, "/etc/network/interfaces")
	if strings.Count(after2, "# asym begin eth1") != 1 || !strings.Contains(after2, "priority 1001") || strings.Contains(after2, "priority 1000") {
		t.Errorf("block not replaced:\n%s", after2)
	}
	if withoutBlock(after2, "eth1") != debianInterfaces {
		t.Error("content outside the block was lost")
	}
	if got := readFile(t, root, SysctlFile); !strings.Contains(got, "arp_ignore = 2\n") || strings.Contains(got, "arp_ignore = 1") {
		t.Errorf("sysctl key not replaced:\n%s", got)
	}
}

func withoutBlock(s, dev string) string {
	var out []string
	in := false
	for _, l := range splitLines(s) {
		switch strings.TrimSpace(l) {
		case "# asym begin " + dev:
			in = true
			continue
		case "# asym end " + dev:
			in = false
			continue
		}
		if !in {
			out = append(out, l)
		}
	}
	return joinLines(out)
}

func TestWriteNetworkScripts(t *testing.T) {
	root := mkroot(t, roots["rhel7-network-scripts"])
	r, err := Render(NetworkScripts, cloudFix(), Detect(root))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	backups, err := Write(root, r, now)
	if err != nil {
		t.Fatal(err)
	}
	// route-eth1 is new: nothing to back up.
	if !slices.Equal(backups, []string{"/etc/sysconfig/network-scripts/rule-eth1.asym-backup-20260102T030405Z"}) {
		t.Fatalf("backups %v", backups)
	}
	const rules = "from 198.51.100.12/32 lookup 200 priority 900\nfrom 198.51.100.11/32 lookup 100 priority 1000\n"
	if got := readFile(t, root, "/etc/sysconfig/network-scripts/rule-eth1"); got != rules {
		t.Errorf("rule-eth1:\n%s", got)
	}
	if got := readFile(t, root, "/etc/sysconfig/network-scripts/route-eth1"); got != "198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100\ndefault via 198.51.100.1 dev eth1 table 100\n" {
		t.Errorf("route-eth1:\n%s", got)
	}
	if fi, _ := os.Stat(filepath.Join(root, "etc/sysconfig/network-scripts/route-eth1")); fi.Mode().Perm() != 0o644 {
		t.Errorf("route-eth1 mode %v", fi.Mode())
	}
	// Appending the same lines again adds nothing.
	backups, err = Write(root, r, now.Add(time.Second))
	if err != nil || len(backups) != 0 || readFile(t, root, "/etc/sysconfig/network-scripts/rule-eth1") != rules {
		t.Fatalf("second append: %v %v", backups, err)
	}
}

func TestWriteModes(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	root := mkroot(t, map[string]string{"/etc/network/interfaces.d/50-cloud-init": "auto eth1\niface eth1 inet dhcp\n"})
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := Rendered{Files: []FileChange{
		{Path: "/etc/netplan/90-asym-eth1.yaml", Mode: "create", Content: "network:\n  version: 2\n"},
		{Path: "/etc/systemd/network/10-eth1.network.d/90-asym.conf", Mode: "create", Content: "[Route]\n"},
		{Path: "/etc/network/interfaces.d/50-cloud-init", Mode: "replace-block", Content: "# asym begin eth1\n    post-up true\n# asym end eth1\n", Begin: "# asym begin eth1", End: "# asym end eth1", After: []string{"iface", "eth1", "inet"}},
	}}
	backups, err := Write(root, r, now)
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{
		"etc/netplan/90-asym-eth1.yaml":                      0o600,
		"etc/netplan":                                        0o755,
		"etc/systemd/network/10-eth1.network.d":              0o755,
		"etc/systemd/network/10-eth1.network.d/90-asym.conf": 0o644,
		"etc/systemd":                                        0o755,
	} {
		fi, err := os.Stat(filepath.Join(root, p))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, want)
		}
	}
	// ifupdown sources interfaces.d/*: the backup there must be hidden.
	if !slices.Equal(backups, []string{"/etc/network/interfaces.d/.50-cloud-init.asym-backup-20260102T030405Z"}) {
		t.Errorf("backups %v", backups)
	}
	ents, _ := os.ReadDir(filepath.Join(root, "etc/network/interfaces.d"))
	for _, e := range ents {
		if strings.Contains(e.Name(), "asym-tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestWriteRefuses(t *testing.T) {
	root := mkroot(t, map[string]string{
		"/etc/network/interfaces":                   "-> interfaces.real",
		"/etc/network/interfaces.real":              "iface eth1 inet dhcp\n",
		"/etc/sysconfig/network-scripts/ifcfg-eth1": "DEVICE=eth1\n",
		"/etc/network/other":                        "iface eth0 inet dhcp\n",
	})
	now := time.Now()
	block := FileChange{Mode: "replace-block", Content: "# asym begin eth1\n# asym end eth1\n", Begin: "# asym begin eth1", End: "# asym end eth1", After: []string{"iface", "eth1", "inet"}}
	for _, tc := range []struct {
		name string
		fc   FileChange
		want string
	}{
		{"symlink", withPath(block, "/etc/network/interfaces"), "symbolic link"},
		{"dot-dot", FileChange{Path: "/etc/../../x", Mode: "create"}, "not a clean absolute"},
		{"relative", FileChange{Path: "etc/x", Mode: "create"}, "not a clean absolute"},
		{"stanza gone", withPath(block, "/etc/network/other"), "no line starting"},
		{"missing file", withPath(block, "/etc/network/none"), "does not exist"},
		{"mode", FileChange{Path: "/etc/x", Mode: "merge"}, "unknown mode"},
		{"directory", FileChange{Path: "/etc/network", Mode: "create"}, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The first change is fine; the bad one after it must stop
			// both before anything is written.
			r := Rendered{Files: []FileChange{{Path: "/etc/new-file", Mode: "create", Content: "x\n"}, tc.fc}}
			_, err := Write(root, r, now)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
			if _, err := os.Stat(filepath.Join(root, "etc/new-file")); err == nil {
				t.Error("a file was written although the change as a whole was refused")
			}
		})
	}
	if readFile(t, root, "/etc/network/interfaces.real") != "iface eth1 inet dhcp\n" {
		t.Error("the symlink's target changed")
	}
}

func withPath(fc FileChange, p string) FileChange {
	fc.Path = p
	return fc
}

// TestWriteStaysInRoot: a symlink inside the fake root that points at the
// real /etc is not followed.
func TestWriteStaysInRoot(t *testing.T) {
	root := mkroot(t, map[string]string{"/etc/sysctl.d": "-> /etc"})
	_, err := Write(root, Rendered{Files: []FileChange{{Path: SysctlFile, Mode: "set", Content: "a = 1\n"}}}, time.Now())
	if err == nil {
		t.Fatal("wrote through a symlink that leaves the root")
	}
	if _, err := os.Stat("/etc/90-asym.conf"); err == nil {
		t.Fatal("wrote into the real /etc")
	}
}

func TestSetKeys(t *testing.T) {
	cur := "# mine\nnet.ipv4.conf.eth1.arp_ignore=0\nkernel.x = 1\nnet.ipv4.conf.eth1.arp_ignore = 3\n"
	got := setKeys(cur, "# header\nnet.ipv4.conf.eth1.arp_ignore = 1\nnet.ipv4.conf.eth1.rp_filter = 2\n")
	want := "# mine\nnet.ipv4.conf.eth1.arp_ignore = 1\nkernel.x = 1\n# net.ipv4.conf.eth1.arp_ignore = 3 (replaced by asym)\nnet.ipv4.conf.eth1.rp_filter = 2\n"
	if got != want {
		t.Errorf("setKeys:\n%s\nwant:\n%s", got, want)
	}
}

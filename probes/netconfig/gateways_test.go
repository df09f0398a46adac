package netconfig

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const uuidISP2 = "5f0bd8a4-0f0e-4b7c-9d0c-2b8e2b6c4a11"

// writeTree writes files (path on the target → contents) under a fresh
// root and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, text := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// age sets a file's modification time d before now.
func age(t *testing.T, root, p string, d time.Duration) {
	t.Helper()
	when := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(root, p), when, when); err != nil {
		t.Fatal(err)
	}
}

func describe(fs []Found) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Gateway.String()+" from "+f.Describe())
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

var eth1 = Interface{Name: "eth1", Index: 3, MAC: "02:00:5e:00:53:11"}

// TestGatewaysEveryManager: a host on which every manager has said
// something about eth1 (and about eth0, which must not be taken).
func TestGatewaysEveryManager(t *testing.T) {
	root := writeTree(t, map[string]string{
		"/run/systemd/netif/leases/3":                                  networkdLease252,
		"/run/systemd/netif/leases/2":                                  "ROUTER=198.51.100.1\n",
		"/var/lib/NetworkManager/internal-" + uuidISP2 + "-eth1.lease": "# This is private data. Do not parse.\nADDRESS=192.0.2.10\n",
		"/var/lib/NetworkManager/dhclient-" + uuidISP2 + "-eth1.lease": "lease {\n  interface \"eth1\";\n  option routers 192.0.2.2;\n  expire 4 2099/01/01 00:00:00;\n}\n",
		"/var/lib/dhcp/dhclient.eth1.leases":                           "lease {\n  interface \"eth1\";\n  option routers 192.0.2.3;\n  expire 3 2020/01/01 00:00:00;\n}\n",
		"/var/lib/dhcp/dhclient.eth0.leases":                           "lease {\n  interface \"eth0\";\n  option routers 198.51.100.1;\n}\n",
		"/etc/systemd/network/10-eth0.network":                         "[Match]\nName=eth0\n[Network]\nGateway=198.51.100.1\n",
		"/etc/systemd/network/20-eth1.network":                         "[Match]\nName=eth1\n[Network]\nGateway=192.0.2.4\nGateway=2001:db8:2::1\n",
		"/etc/systemd/network/30-all.network":                          "[Network]\nGateway=192.0.2.99\n",
		"/etc/NetworkManager/system-connections/isp2.nmconnection":     keyfileISP2,
		"/etc/NetworkManager/system-connections/isp2.nmconnection~":    strings.Replace(keyfileISP2, "192.0.2.1", "192.0.2.98", 1),
		"/etc/network/interfaces":                                      "source interfaces.d/*\nauto eth0\niface eth0 inet dhcp\n",
		"/etc/network/interfaces.d/eth1":                               "iface eth1 inet static\n  address 192.0.2.10/24\n  gateway 192.0.2.6\n",
		"/etc/sysconfig/network-scripts/ifcfg-eth1":                    "DEVICE=eth1\nGATEWAY=192.0.2.7\n",
	})
	age(t, root, "/run/systemd/netif/leases/3", time.Hour)
	age(t, root, "/var/lib/NetworkManager/dhclient-"+uuidISP2+"-eth1.lease", 2*time.Hour)

	found, notes := Gateways(context.Background(), root, eth1, false)
	sameLines(t, "IPv4 gateways of eth1", describe(found), []string{
		"192.0.2.1 from DHCP lease " + root + "/run/systemd/netif/leases/3 (systemd-networkd)",
		"192.0.2.2 from DHCP lease " + root + "/var/lib/NetworkManager/dhclient-" + uuidISP2 + "-eth1.lease (dhclient)",
		"192.0.2.4 from configuration " + root + "/etc/systemd/network/20-eth1.network (systemd-networkd)",
		"192.0.2.1 from connection profile " + root + "/etc/NetworkManager/system-connections/isp2.nmconnection (NetworkManager)",
		"192.0.2.6 from configuration " + root + "/etc/network/interfaces.d/eth1 (ifupdown)",
		"192.0.2.7 from configuration " + root + "/etc/sysconfig/network-scripts/ifcfg-eth1 (network-scripts)",
		"192.0.2.3 from DHCP lease " + root + "/var/lib/dhcp/dhclient.eth1.leases (dhclient): the lease expired 2020-01-01 00:00 UTC",
	})
	if len(notes) != 0 {
		t.Errorf("every file was readable: %q", notes)
	}
	if !found[0].Kind.Lease() || found[2].Kind.Lease() || !found[6].Expired {
		t.Errorf("kinds: %+v", found)
	}

	found, _ = Gateways(context.Background(), root, eth1, true)
	sameLines(t, "IPv6 gateways of eth1", describe(found), []string{
		"2001:db8:2::1 from configuration " + root + "/etc/systemd/network/20-eth1.network (systemd-networkd)",
	})
}

// TestGatewaysNetworkd: systemd-networkd's order — the first file by name
// across its directories, /etc over /run over /usr/lib for the same name,
// masks, drop-ins, and links with absolute targets read inside the root.
func TestGatewaysNetworkd(t *testing.T) {
	root := writeTree(t, map[string]string{
		// Masked by an empty file of the same name in /etc.
		"/run/systemd/network/10-netplan-eth1.network": netplanGateway4,
		"/etc/systemd/network/10-netplan-eth1.network": "",
		// Masked by a link to /dev/null.
		"/run/systemd/network/15-eth1.network": "[Match]\nName=eth1\n[Network]\nGateway=192.0.2.15\n",
		// Matches by MAC, given in its drop-in (amazon-ec2-net-utils' shape),
		// and is reached through an absolute link.
		"/usr/lib/systemd/network/80-ec2.network":         "[Network]\nDHCP=yes\n[Route]\nGateway=192.0.2.1\nTable=10001\n",
		"/run/systemd/network/70-eth1.network.d/eni.conf": "[Match]\nMACAddress=02:00:5E:00:53:11\n[Route]\nDestination=0.0.0.0/0\nGateway=192.0.2.70\n",
		// Would match too, but comes later.
		"/etc/systemd/network/90-eth1.network": "[Match]\nName=eth1\n[Network]\nGateway=192.0.2.90\n",
		// The real file system's /usr/lib must never be read.
		"/outside.network": "[Network]\nGateway=192.0.2.66\n",
	})
	mustLink(t, "/dev/null", filepath.Join(root, "/etc/systemd/network/15-eth1.network"))
	mustLink(t, "/usr/lib/systemd/network/80-ec2.network", filepath.Join(root, "/run/systemd/network/70-eth1.network"))

	found, notes := Gateways(context.Background(), root, eth1, false)
	sameLines(t, "networkd", describe(found), []string{
		"192.0.2.1 from configuration " + root + "/run/systemd/network/70-eth1.network (systemd-networkd)",
		"192.0.2.70 from configuration " + root + "/run/systemd/network/70-eth1.network.d/eni.conf (systemd-networkd)",
	})
	if len(notes) != 0 {
		t.Errorf("notes: %q", notes)
	}
	// Without the MAC, asym cannot tell, and says so.
	found, _ = Gateways(context.Background(), root, Interface{Name: "eth1", Index: 3}, false)
	if len(found) != 2 || !strings.Contains(found[0].Note, "MACAddress=, which asym cannot check") {
		t.Errorf("a MAC match asym cannot test: %q", describe(found))
	}
}

// TestGatewaysNetworkManagerActive: of two profiles for eth1, the one the
// device state names counts.
func TestGatewaysNetworkManagerActive(t *testing.T) {
	other := strings.NewReplacer(uuidISP2, "0b5e7f0e-2c1d-4a4e-8f43-6f7d1c2b3a40", "192.0.2.1", "192.0.2.250", "id=isp2", "id=isp2-old").Replace(keyfileISP2)
	files := map[string]string{
		"/etc/NetworkManager/system-connections/isp2.nmconnection":         keyfileISP2,
		"/run/NetworkManager/system-connections/isp2-old.nmconnection":     other,
		"/etc/NetworkManager/system-connections/wired-by-mac.nmconnection": "[connection]\nid=Wired\n[ethernet]\nmac-address=02:00:5E:00:53:99\n[ipv4]\ngateway=192.0.2.251\n",
	}
	root := writeTree(t, files)
	found, _ := Gateways(context.Background(), root, eth1, false)
	sameLines(t, "without device state", describe(found), []string{
		"192.0.2.1 from connection profile " + root + "/etc/NetworkManager/system-connections/isp2.nmconnection (NetworkManager): one of 2 profiles for eth1",
		"192.0.2.250 from connection profile " + root + "/run/NetworkManager/system-connections/isp2-old.nmconnection (NetworkManager): one of 2 profiles for eth1",
	})

	files["/run/NetworkManager/devices/3"] = "[device]\nmanaged=true\nconnection-uuid=" + uuidISP2 + "\n"
	root = writeTree(t, files)
	found, _ = Gateways(context.Background(), root, eth1, false)
	sameLines(t, "with device state", describe(found), []string{
		"192.0.2.1 from connection profile " + root + "/etc/NetworkManager/system-connections/isp2.nmconnection (NetworkManager)",
	})
}

// TestGatewaysBounds: what the reader refuses, and says it refused.
func TestGatewaysBounds(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "stolen.leases"), []byte("lease {\n interface \"eth1\";\n option routers 192.0.2.66;\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	big := "[connection]\ninterface-name=eth1\n[ipv4]\ngateway=192.0.2.67\n#" + strings.Repeat("x", maxFileBytes)
	root := writeTree(t, map[string]string{
		"/etc/NetworkManager/system-connections/big.nmconnection": big,
		"/etc/sysconfig/network-scripts/ifcfg-eth1":               "DEVICE=eth1\nGATEWAY=192.0.2.7\n",
	})
	// A relative link that climbs out of the root.
	rel, err := filepath.Rel(filepath.Join(root, "var/lib/dhcp"), filepath.Join(outside, "stolen.leases"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var/lib/dhcp"), 0o755); err != nil {
		t.Fatal(err)
	}
	mustLink(t, rel, filepath.Join(root, "var/lib/dhcp/dhclient.eth1.leases"))
	// An absolute link: read as if the root were /, so it names a file
	// inside the root that is not there, never the real one.
	mustLink(t, filepath.Join(outside, "stolen.leases"), filepath.Join(root, "var/lib/dhcp/dhclient.leases"))
	// A directory reached through a link out of the root.
	if err := os.WriteFile(filepath.Join(outside, "isp2.nmconnection"), []byte("[connection]\ninterface-name=eth1\n[ipv4]\ngateway=192.0.2.68\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	relDir, err := filepath.Rel(filepath.Join(root, "run/NetworkManager"), outside)
	if err != nil {
		t.Fatal(err)
	}
	mustLink(t, relDir, filepath.Join(root, "run/NetworkManager/system-connections"))
	// A FIFO where a lease should be: opening it must not block.
	if err := os.MkdirAll(filepath.Join(root, "run/systemd/netif/leases"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "run/systemd/netif/leases/3"), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	found, notes := Gateways(ctx, root, eth1, false)
	sameLines(t, "what is left", describe(found), []string{
		"192.0.2.7 from configuration " + root + "/etc/sysconfig/network-scripts/ifcfg-eth1 (network-scripts)",
	})
	sameLines(t, "notes", notes, []string{
		root + "/run/systemd/netif/leases/3 was not read: it is not a regular file",
		root + "/var/lib/dhcp/dhclient.eth1.leases was not read: a symbolic link on its path leads out of " + root,
		fmt.Sprintf("%s/etc/NetworkManager/system-connections/big.nmconnection was not read: it holds %d bytes, more than the 262144 a configuration file or lease can need", root, len(big)),
		root + "/run/NetworkManager/system-connections was not read: a symbolic link on its path leads out of " + root,
	})

	cancelled, stop := context.WithCancel(context.Background())
	stop()
	found, notes = Gateways(cancelled, root, eth1, false)
	if len(found) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "was cut short (context canceled)") {
		t.Errorf("a context that has ended reads nothing and says so: %q %q", describe(found), notes)
	}

	if _, notes := Gateways(context.Background(), filepath.Join(root, "nonexistent"), eth1, false); len(notes) != 1 {
		t.Errorf("a root that is not there is said: %q", notes)
	}
}

// TestReadUnreadable: a file asym may not read is said, not skipped in
// silence. As root, the capabilities that override file permissions are
// dropped on the reading thread alone.
func TestReadUnreadable(t *testing.T) {
	root := writeTree(t, map[string]string{"/etc/sysconfig/network-scripts/ifcfg-eth1": "DEVICE=eth1\nGATEWAY=192.0.2.7\n"})
	if err := os.Chmod(filepath.Join(root, "/etc/sysconfig/network-scripts/ifcfg-eth1"), 0); err != nil {
		t.Fatal(err)
	}
	rt, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	tr := &tree{ctx: context.Background(), root: root, rt: rt}
	var found []Found
	withoutFileCapabilities(t, func() { found = tr.ifcfg(eth1) })
	if len(found) != 0 {
		t.Errorf("read anyway: %q", describe(found))
	}
	sameLines(t, "notes", tr.notes, []string{root + "/etc/sysconfig/network-scripts/ifcfg-eth1 could not be read: permission denied (run asym as root)"})
}

// withoutFileCapabilities runs fn on a thread that has lost
// CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (capabilities are per thread).
// The thread stays locked, so the runtime discards it afterwards.
func withoutFileCapabilities(t *testing.T, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if os.Geteuid() == 0 {
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			var data [2]unix.CapUserData
			if err := unix.Capget(&hdr, &data[0]); err != nil {
				t.Errorf("capget: %v", err)
				return
			}
			data[0].Effective &^= 1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				t.Errorf("capset: %v", err)
				return
			}
		}
		fn()
	}()
	<-done
}

func mustLink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

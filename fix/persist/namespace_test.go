package persist

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"asym/fix"
)

// TestRenderNamespace: a fix for a namespace that is not the host's is a
// script of commands entering it, for what makes it, with notes saying
// whose network it is; never a file of the host's.
func TestRenderNamespace(t *testing.T) {
	steps := append(cloudFix(),
		&fix.RuleDel{RuleSpec: fix.RuleSpec{Priority: 1001, Src: netip.MustParsePrefix("198.51.100.11/32"), Table: 200}},
		&fix.ARPAnnounce{Dev: "eth1", Addr: netip.MustParseAddr("198.51.100.11")},
	)
	for _, tc := range []struct {
		name   string
		ns     Namespace
		m      Manager
		script []string
		notes  []string
	}{
		{"named", Namespace{Kind: "netns", Value: "asym-lab-host"}, NamespaceScript, []string{
			"ip -n asym-lab-host route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
			"ip -n asym-lab-host route add default via 198.51.100.1 dev eth1 table 100",
			"ip -n asym-lab-host rule add from 198.51.100.11 lookup 100 priority 1000",
			"ip netns exec asym-lab-host sysctl -w net.ipv4.conf.eth1.arp_ignore=1",
			"ip -n asym-lab-host rule del from 198.51.100.11 lookup 200 priority 1001",
		}, []string{"netns asym-lab-host is not the host's network namespace", "runs ip netns add asym-lab-host", "/etc/sysctl.d configures the host's namespace only",
			"asym removed \u201cip -n asym-lab-host rule del from 198.51.100.11 lookup 200 priority 1001\u201d at runtime"}},
		{"hostile name", Namespace{Kind: "netns", Value: "n$(id);x"}, NamespaceScript, []string{
			"ip -n 'n$(id);x' route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
			"ip -n 'n$(id);x' route add default via 198.51.100.1 dev eth1 table 100",
			"ip -n 'n$(id);x' rule add from 198.51.100.11 lookup 100 priority 1000",
			"ip netns exec 'n$(id);x' sysctl -w net.ipv4.conf.eth1.arp_ignore=1",
			"ip -n 'n$(id);x' rule del from 198.51.100.11 lookup 200 priority 1001",
		}, []string{"runs ip netns add 'n$(id);x'"}},
		{"container", Namespace{Kind: "pid", Value: "4242"}, ContainerRuntime, []string{
			"nsenter -t 4242 -n ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
			"nsenter -t 4242 -n ip route add default via 198.51.100.1 dev eth1 table 100",
			"nsenter -t 4242 -n ip rule add from 198.51.100.11 lookup 100 priority 1000",
			"nsenter -t 4242 -n sysctl -w net.ipv4.conf.eth1.arp_ignore=1",
			"nsenter -t 4242 -n ip rule del from 198.51.100.11 lookup 200 priority 1001",
		}, []string{"pid 4242 runs in a container's network namespace", "CNI", "lost when the container restarts", "with the new pid"}},
		{"namespace file", Namespace{Kind: "path", Value: "/run/docker/netns/0a1b"}, NamespaceScript, []string{
			"nsenter --net=/run/docker/netns/0a1b ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
			"nsenter --net=/run/docker/netns/0a1b ip route add default via 198.51.100.1 dev eth1 table 100",
			"nsenter --net=/run/docker/netns/0a1b ip rule add from 198.51.100.11 lookup 100 priority 1000",
			"nsenter --net=/run/docker/netns/0a1b sysctl -w net.ipv4.conf.eth1.arp_ignore=1",
			"nsenter --net=/run/docker/netns/0a1b ip rule del from 198.51.100.11 lookup 200 priority 1001",
		}, []string{"path /run/docker/netns/0a1b is not the host's network namespace", "a container runtime"}},
		{"asym in a container", Namespace{Kind: "own"}, ContainerRuntime, []string{
			"ip route add 198.51.100.0/24 dev eth1 scope link src 198.51.100.11 table 100",
			"ip route add default via 198.51.100.1 dev eth1 table 100",
			"ip rule add from 198.51.100.11 lookup 100 priority 1000",
			"sysctl -w net.ipv4.conf.eth1.arp_ignore=1",
			"ip rule del from 198.51.100.11 lookup 200 priority 1001",
		}, []string{"asym runs in a network namespace that is not the host's", "lost when the container restarts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := RenderNamespace(tc.ns, steps)
			if err != nil {
				t.Fatal(err)
			}
			if r.Manager != tc.m || !r.ForNamespace() || len(r.Files) != 0 || len(r.Commands) != 0 {
				t.Errorf("want %q, a script and no file or command: %+v", tc.m, r)
			}
			if got := strings.Join(r.Script, "\n"); got != strings.Join(tc.script, "\n") {
				t.Errorf("script:\n%s\nwant:\n%s", got, strings.Join(tc.script, "\n"))
			}
			notes := strings.Join(r.Notes, "\n")
			for _, want := range tc.notes {
				if !strings.Contains(notes, want) {
					t.Errorf("the notes must say %q:\n%s", want, notes)
				}
			}
			for _, host := range []string{"/etc/systemd", "/etc/sysconfig", "/etc/network", "/etc/netplan", "networkd", "NetworkManager", "netplan", "nmcli"} {
				if strings.Contains(r.Text(), host) {
					t.Errorf("a namespace's rendering names the host's %q:\n%s", host, r.Text())
				}
			}
			if !strings.Contains(r.Text(), "\n== script\n"+strings.Join(tc.script, "\n")+"\n") {
				t.Errorf("the text must hold the script:\n%s", r.Text())
			}
		})
	}
}

func TestRenderNamespaceRefuses(t *testing.T) {
	ns := Namespace{Kind: "netns", Value: "asym-x"}
	gw := *cloudFix()[1].(*fix.RouteAdd)
	gw.Gateway, gw.Unknown = netip.Addr{}, "the gateway of eth1"
	if _, err := RenderNamespace(ns, fix.Steps{&gw}); err == nil || !strings.Contains(err.Error(), "could not find out the gateway of eth1") {
		t.Errorf("an incomplete step: %v", err)
	}
	if _, err := RenderNamespace(ns, fix.Steps{&fix.ARPAnnounce{Dev: "eth1", Addr: netip.MustParseAddr("198.51.100.11")}}); err == nil || !strings.Contains(err.Error(), "nothing to keep") {
		t.Errorf("an announcement alone: %v", err)
	}
}

// TestWriteRefusesNamespace: a namespace's rendering is never written,
// even under a root that looks like a host's.
func TestWriteRefusesNamespace(t *testing.T) {
	root := mkroot(t, roots["gce-networkd"])
	r, err := RenderNamespace(Namespace{Kind: "netns", Value: "asym-x"}, cloudFix())
	if err != nil {
		t.Fatal(err)
	}
	r.Files = []FileChange{{Path: SysctlFile, Mode: "set", Content: "a = 1\n"}} // as if someone added one
	if _, err := Write(root, r, time.Now()); err == nil || !strings.Contains(err.Error(), "does not write") {
		t.Fatalf("want a refusal: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, SysctlFile)); err == nil {
		t.Error("a file was written for a namespace")
	}
}

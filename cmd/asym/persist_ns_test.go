package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"asym/probes/probetest"
)

// TestPersistInNamespace (issue #15): for a target that is not the host's
// network namespace, the persistence advice is for what makes that
// namespace (a script of ip -n NAME commands; for a container, nsenter
// commands that its restart loses), never the host's network manager;
// --persist writes nothing into the host's /etc and says why, unless a
// root is given explicitly.
func TestPersistInNamespace(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	env := upScenario(t, "two-nics-strict")
	c := env.Checks[0]
	flowWords := strings.Fields(c.Flow)
	hostEtc := asymFilesIn(t, "/etc")

	code, out := asymExec(t, append([]string{"fix", "--netns", c.Target}, flowWords...)...)
	if code != 0 || !strings.Contains(out, "To keep it: netns "+c.Target+" is not the host's network, which the host's network manager does not configure. For the script that creates the namespace:") {
		t.Fatalf("the dry run must say the target is a namespace: %d\n%s", code, out)
	}
	for _, want := range []string{
		"  ip -n " + c.Target + " rule add from 198.51.100.11 lookup 100 priority 1000\n",
		"  ip -n " + c.Target + " route add default via 198.51.100.1 dev eth1 table 100\n",
		"  ip netns exec " + c.Target + " sysctl -w net.ipv4.conf.eth1.arp_ignore=1\n",
		"runs ip netns add " + c.Target,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the advice must hold %q:\n%s", want, out)
		}
	}
	_, advice, _ := strings.Cut(out, "To keep it")
	for _, host := range []string{"systemd-networkd", "NetworkManager", "netplan", "/etc/systemd", "Write these files", "arping"} {
		if strings.Contains(advice, host) {
			t.Errorf("the advice for a namespace names %q:\n%s", host, out)
		}
	}

	code, out = asymExec(t, append([]string{"fix", "--netns", c.Target, "--persist"}, flowWords...)...)
	if code != 2 || !strings.Contains(out, "nothing was written: netns "+c.Target+" is not the host's network") ||
		!strings.Contains(out, "ip -n "+c.Target+" rule add") {
		t.Fatalf("--persist on a namespace must refuse, show the script and exit 2: %d\n%s", code, out)
	}
	if now := asymFilesIn(t, "/etc"); now != hostEtc {
		t.Fatalf("--persist on a namespace wrote into the host's /etc:\nbefore: %s\nafter:  %s", hostEtc, now)
	}

	// A root given explicitly (a container's root file system) is written.
	root := t.TempDir()
	for p, content := range map[string]string{
		"run/systemd/netif/links/.keep":       "",
		"etc/systemd/network/10-eth1.network": "[Match]\nName=eth1\n\n[Network]\nDHCP=yes\n",
	} {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte(content), 0o644)
	}
	code, out = asymExec(t, append([]string{"fix", "--netns", c.Target, "--persist", "--root", root}, flowWords...)...)
	if code != 0 || !strings.Contains(out, "Wrote the fix for systemd-networkd under "+root) {
		t.Fatalf("--persist --root on a namespace: %d\n%s", code, out)
	}
	if b, err := os.ReadFile(filepath.Join(root, "etc/systemd/network/10-eth1.network.d/90-asym.conf")); err != nil || !strings.Contains(string(b), "[RoutingPolicyRule]") {
		t.Fatalf("the drop-in was not written under the root: %v\n%s", err, b)
	}
	if !strings.Contains(out, "configure it only if what runs in it reads them") {
		t.Errorf("the output must say the files are for the namespace only if it reads them:\n%s", out)
	}
	if now := asymFilesIn(t, "/etc"); now != hostEtc {
		t.Fatalf("--persist --root wrote into the host's /etc:\nbefore: %s\nafter:  %s", hostEtc, now)
	}

	// A process in it stands for a container: its runtime owns the network.
	sleeper := exec.Command("ip", "netns", "exec", c.Target, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	pid := strconv.Itoa(sleeper.Process.Pid)
	waitInNamespace(t, sleeper.Process.Pid, c.Target)
	code, out = asymExec(t, append([]string{"fix", "--pid", pid}, flowWords...)...)
	if code != 0 || !strings.Contains(out, "is not the host's network, which the host's network manager does not configure. For the container runtime:") || !strings.Contains(out, "lost when the container restarts") ||
		!strings.Contains(out, "  nsenter -t "+pid+" -n ip rule add from 198.51.100.11 lookup 100 priority 1000\n") {
		t.Fatalf("the advice for a container: %d\n%s", code, out)
	}
}

// asymFilesIn lists the files under dir that asym may have written (its
// own names and backups), with their sizes.
func asymFilesIn(t *testing.T, dir string) string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(d.Name(), "asym") {
			return nil
		}
		if info, err := d.Info(); err == nil {
			found = append(found, p+":"+strconv.FormatInt(info.Size(), 10)+":"+info.ModTime().String())
		}
		return nil
	})
	sort.Strings(found)
	return strings.Join(found, " ")
}

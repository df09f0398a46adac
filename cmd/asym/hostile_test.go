package main

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"asym/probes/probetest"
)

// TestHostileInterfaceNames: Linux allows $ ; ( ) and backquotes in
// interface names. A two-NIC host named so is diagnosed; every command asym
// shows parses in sh back to the literal name (so pasting it is safe), and
// the fix is applied through netlink: a name that would run a command in a
// shell runs nothing.
func TestHostileInterfaceNames(t *testing.T) {
	probetest.RequireRoot(t)
	fixEnv(t)
	names := []string{"e$(id);0", "e`id`1"}
	host, peer := probetest.NewNS(t), probetest.NewNS(t)
	h, p := probetest.Netlink(t, host.Handle), probetest.Netlink(t, peer.Handle)
	for i, name := range names {
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name, Namespace: netlink.NsFd(host.Handle)}, PeerName: fmt.Sprintf("p%d", i), PeerNamespace: netlink.NsFd(peer.Handle)}
		if err := p.LinkAdd(v); err != nil {
			t.Fatalf("veth %q: %v", name, err)
		}
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := netlink.ParseAddr(fmt.Sprintf("198.51.100.%d/24", 10+i))
		if err := h.AddrAdd(l, a); err != nil {
			t.Fatal(err)
		}
		h.LinkSetUp(l)
		pl, _ := p.LinkByName(fmt.Sprintf("p%d", i))
		p.LinkSetUp(pl)
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Gw: net.ParseIP("198.51.100.1"), Priority: 100 + i}); err != nil {
			t.Fatal(err)
		}
	}
	flowArgs := []string{"tcp", "203.0.113.9:40000", "198.51.100.11:8080"}
	code, out := asymRun(t, append([]string{"check", "--netns", host.Name}, flowArgs...)...)
	if code != 1 || !strings.Contains(out, "reply_wrong_egress") {
		t.Fatalf("check: %d\n%s", code, out)
	}
	code, out = asymRun(t, append([]string{"fix", "--netns", host.Name}, flowArgs...)...)
	if code != 0 {
		t.Fatalf("fix plan: %d\n%s", code, out)
	}
	var cmds []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "ip netns exec ") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) < 3 || !strings.Contains(out, "'e`id`1'") {
		t.Fatalf("the plan must show quoted commands:\n%s", out)
	}
	for _, c := range cmds {
		// sh parses the command into words without running it: printf
		// prints each word on its own line; an unquoted $(id) or `id` would
		// print uid=….
		script := "printf '%s\\n' " + c
		got, err := exec.Command("sh", "-c", script).CombinedOutput()
		if err != nil {
			t.Fatalf("sh cannot parse %q: %v %s", c, err, got)
		}
		words := strings.Split(strings.TrimSpace(string(got)), "\n")
		found := false
		for _, w := range words {
			for _, n := range names {
				if w == n || strings.Contains(w, "."+n+".") {
					found = true
				}
			}
			if strings.Contains(w, "uid=") {
				t.Fatalf("pasting %q ran a command: %q", c, w)
			}
		}
		if !found && (strings.Contains(c, " dev ") || strings.Contains(c, "sysctl")) {
			t.Errorf("%q does not carry an interface name as one literal word: %q", c, words)
		}
	}
	code, out = asymRun(t, append([]string{"fix", "--netns", host.Name, "--apply"}, flowArgs...)...)
	if code != 0 || !strings.Contains(out, "after:  no findings") {
		t.Fatalf("apply: %d\n%s", code, out)
	}
	rules, _ := h.RuleList(netlink.FAMILY_V4)
	ok := false
	for _, r := range rules {
		if r.Src != nil && r.Src.IP.String() == "198.51.100.11" {
			ok = true
		}
	}
	if !ok {
		t.Fatal("the source rule was not added")
	}
	if code, out = asymRun(t, "fix", "--netns", host.Name, "--rollback"); code != 0 {
		t.Fatalf("rollback: %s", out)
	}
}

package playbook

import (
	"slices"
	"strings"
	"testing"

	"asym/evidence"
	"asym/flow"
)

func TestHandOffTracers(t *testing.T) {
	const filter = "'host 203.0.113.10 and host 198.51.100.11 and tcp port 40000 and tcp port 8080'"
	pwru := "pwru --output-tuple " + filter + "   # kernel drop reasons (needs BTF: present)"
	retis := func(collectors string) string {
		return "retis collect -c " + collectors + " -f " + filter + "   # the flow through the stack: drop reasons, conntrack state (needs BTF: present)"
	}
	cases := []struct {
		name  string
		edit  func(e *evidence.Evidence)
		want  []string // among the hand-off commands, in this order
		never []string // substrings no hand-off command has
	}{
		{"BTF and conntrack: pwru, and retis with its conntrack collector", func(e *evidence.Evidence) {},
			[]string{pwru, retis("skb,skb-drop,skb-tracking,ct")}, nil},
		{"BTF without conntrack: retis would refuse a ct collector it cannot start", func(e *evidence.Evidence) {
			e.Conntrack = &evidence.ConntrackView{Report: evidence.Report{Probe: "conntrack", Status: evidence.StatusUnavailable, Reason: "module not loaded"}}
		}, []string{pwru, retis("skb,skb-drop,skb-tracking")}, nil},
		{"the drop witness saw the flow dropped: pwru starts from the reason", func(e *evidence.Evidence) {
			e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: evidence.ProbeLive, Status: evidence.StatusOK},
				Drops: []evidence.Drop{{Reason: "IP_RPFILTER", Location: "ip_rcv_finish_core", Iface: "eth1"}, {Reason: "IP_RPFILTER"}}}
		}, []string{pwru + "; asym saw IP_RPFILTER ×2 (ip_rcv_finish_core on eth1)", retis("skb,skb-drop,skb-tracking,ct")}, nil},
		{"no BTF: neither eBPF tracer can run", func(e *evidence.Evidence) { e.Host.BTF = false },
			nil, []string{"pwru", "retis"}},
		{"no host view: no tracer offered", func(e *evidence.Evidence) { e.Host = nil },
			nil, []string{"pwru", "retis"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := server2nic()
			e.Host.BTF = true
			c.edit(e)
			got := HandOff(e, []string{"ip", "netns", "exec", "asym-x"})
			// The capture and conntrack commands are always there, prefixed
			// for the target; the tracers see every namespace and are not.
			if !slices.Contains(got, "ip netns exec asym-x tcpdump -ni eth1 "+filter) {
				t.Errorf("no tcpdump on eth1 in %q", got)
			}
			i := 0
			for _, g := range got {
				if i < len(c.want) && g == c.want[i] {
					i++
				}
				for _, n := range c.never {
					if strings.Contains(g, n) {
						t.Errorf("%q offered: %q", n, g)
					}
				}
			}
			if i < len(c.want) {
				t.Errorf("missing %q in\n%s", c.want[i], strings.Join(got, "\n"))
			}
		})
	}

	// The filter is the flow's, whatever the flow: IPv6 and UDP too.
	e := server2nic()
	e.Host.BTF = true
	e.Flow, _ = flow.ParseString("udp [2001:db8::10]:5353 [2001:db8::1]:53")
	got := strings.Join(HandOff(e, nil), "\n")
	if !strings.Contains(got, "retis collect -c skb,skb-drop,skb-tracking,ct -f 'host 2001:db8::10 and host 2001:db8::1 and udp port 5353 and udp port 53'") {
		t.Errorf("IPv6 UDP flow:\n%s", got)
	}
}

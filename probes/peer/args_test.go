package peer

import (
	"slices"
	"testing"
	"time"

	"asym/flow"
)

func TestArgs(t *testing.T) {
	f6 := mustFlow("tcp [2001:db8::1]:40000 [2001:db8::2]:80")
	icmp6 := mustFlow("icmp 2001:db8::1 2001:db8::2")
	for _, tc := range []struct {
		name string
		o    Options
		want []string
	}{
		{"ip netns exec passes words as they are",
			Options{Prefix: []string{"ip", "netns", "exec", "server"}, Flow: f6},
			[]string{"ip", "netns", "exec", "server", "asym", "collect", "--json", "--timeout", "3s", "--", "tcp", "[2001:db8::1]:40000", "[2001:db8::2]:80"}},
		{"ssh quotes what asym appends, not the prefix",
			Options{Prefix: []string{"ssh", "-o", "ProxyJump bastion", "db1", "sudo"}, Exe: "/opt/asym tools/asym", Flow: f6, Watch: 5 * time.Second, ProbeTimeout: 500 * time.Millisecond},
			[]string{"ssh", "-o", "ProxyJump bastion", "db1", "sudo", "'/opt/asym tools/asym'", "collect", "--json", "--timeout", "500ms", "--watch", "5s", "--", "tcp", "'[2001:db8::1]:40000'", "'[2001:db8::2]:80'"}},
		{"ssh found by its basename anywhere in the prefix",
			Options{Prefix: []string{"sudo", "-u", "ops", "/usr/bin/ssh", "db1"}, Flow: flow4},
			[]string{"sudo", "-u", "ops", "/usr/bin/ssh", "db1", "asym", "collect", "--json", "--timeout", "3s", "--", "tcp", "192.0.2.10:40000", "198.51.100.20:8080"}},
		{"a word that merely contains ssh is not ssh",
			Options{Prefix: []string{"sshpass-wrapper", "db1"}, Exe: "my asym", Flow: f6},
			[]string{"sshpass-wrapper", "db1", "my asym", "collect", "--json", "--timeout", "3s", "--", "tcp", "[2001:db8::1]:40000", "[2001:db8::2]:80"}},
		{"icmp has no ports",
			Options{Prefix: []string{"ssh", "db1"}, Flow: icmp6, Watch: time.Minute},
			[]string{"ssh", "db1", "asym", "collect", "--json", "--timeout", "3s", "--watch", "1m0s", "--", "icmpv6", "2001:db8::1", "2001:db8::2"}},
	} {
		if got := Args(tc.o); !slices.Equal(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestArgsFlowRoundTrips: the flow's words, as the peer's asym reads them,
// are the flow, and --watch is there exactly when there is a window.
func TestArgsFlowRoundTrips(t *testing.T) {
	for _, s := range []string{
		"tcp 192.0.2.10:40000 198.51.100.20:8080",
		"udp [2001:db8::1]:5353 [2001:db8::2]:53",
		"icmp 192.0.2.1 192.0.2.2",
		"icmp 2001:db8::1 2001:db8::2",
	} {
		f := mustFlow(s)
		for _, watch := range []time.Duration{0, 3 * time.Second} {
			argv := Args(Options{Prefix: []string{"ip", "netns", "exec", "x"}, Flow: f, Watch: watch})
			got, err := flow.Parse(argv[len(argv)-3:])
			if err != nil || got != f {
				t.Errorf("%s: the peer reads %q as %s, %v", s, argv[len(argv)-3:], got, err)
			}
			if has := slices.Contains(argv, "--watch"); has != (watch > 0) {
				t.Errorf("%s watch %v: --watch present = %v in %q", s, watch, has, argv)
			}
		}
	}
}

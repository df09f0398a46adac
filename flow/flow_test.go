package flow

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	good := []struct{ in, want string }{
		{"tcp 198.51.100.7:43122 203.0.113.10:443", "tcp 198.51.100.7:43122 203.0.113.10:443"},
		{"TCP 198.51.100.7 203.0.113.10:443", "tcp 198.51.100.7 203.0.113.10:443"},
		{"udp [2001:db8::1]:53 [2001:db8::2]:5353", "udp [2001:db8::1]:53 [2001:db8::2]:5353"},
		{"tcp 2001:db8::1 [2001:db8::2]:22", "tcp 2001:db8::1 [2001:db8::2]:22"},
		{"icmp 192.0.2.1 192.0.2.2", "icmp 192.0.2.1 192.0.2.2"},
		{"icmp 2001:db8::1 2001:db8::2", "icmpv6 2001:db8::1 2001:db8::2"},
		{"tcp ::ffff:192.0.2.1:80 192.0.2.2:80", ""}, // bare v6 with colons: no port possible
	}
	for _, c := range good {
		f, err := ParseString(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: want an error, got %v", c.in, f)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if f.String() != c.want {
			t.Errorf("%q: got %q, want %q", c.in, f.String(), c.want)
		}
		if g, err := ParseString(f.String()); err != nil || g != f {
			t.Errorf("%q does not round-trip: %v %v", f.String(), g, err)
		}
	}

	bad := []struct{ in, says string }{
		{"sctp 192.0.2.1:1 192.0.2.2:2", "unknown protocol"},
		{"tcp 192.0.2.1:1", "three words"},
		{"tcp 192.0.2.300:1 192.0.2.2:2", "not an IP address"},
		{"tcp 192.0.2.1:0 192.0.2.2:2", "1 to 65535"},
		{"tcp 192.0.2.1:70000 192.0.2.2:2", "1 to 65535"},
		{"tcp 192.0.2.1:x 192.0.2.2:2", "1 to 65535"},
		{"icmp 192.0.2.1:1 192.0.2.2", "has no ports"},
		{"tcp 192.0.2.1:1 [2001:db8::2]:2", "different IP versions"},
		{"tcp 192.0.2.1:1 192.0.2.1:2", "same address"},
		{"tcp 0.0.0.0:1 192.0.2.2:2", "unicast"},
		{"tcp [2001:db8::1:1 192.0.2.2:2", "missing ]"},
		{"tcp [fe80::1%eth0]:1 [fe80::2]:2", "not an IP address"},
	}
	for _, c := range bad {
		_, err := ParseString(c.in)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: got error %v, want one that says %q", c.in, err, c.says)
		}
	}
}

func TestReverse(t *testing.T) {
	f, _ := ParseString("tcp 192.0.2.1:40000 203.0.113.9:443")
	if got := f.Reverse().String(); got != "tcp 203.0.113.9:443 192.0.2.1:40000" {
		t.Fatal(got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"tcp 198.51.100.7:43122 203.0.113.10:443", "udp [2001:db8::1]:53 [2001:db8::2]:53", "icmp 192.0.2.1 192.0.2.2", "tcp [::1 x:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		fl, err := ParseString(s)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\x1b\x00") {
				t.Fatalf("error echoes control characters: %q", err)
			}
			return
		}
		// Whatever parses must print back to itself.
		again, err := ParseString(fl.String())
		if err != nil || again != fl {
			t.Fatalf("%q parsed to %v which does not round-trip (%v)", s, fl, err)
		}
	})
}

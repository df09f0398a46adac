package evidence

import (
	"testing"

	"asym/flow"
)

// TestTcpdumpFilter checks the pcap-filter expression handed to people
// with a report: the flow both ways, the ports it has, icmp6 for IPv6.
func TestTcpdumpFilter(t *testing.T) {
	parseFlow := func(t *testing.T, s string) flow.Flow {
		t.Helper()
		f, err := flow.ParseString(s)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, c := range []struct{ flow, want string }{
		{"tcp 203.0.113.10:40000 198.51.100.11:8080", "host 203.0.113.10 and host 198.51.100.11 and tcp port 40000 and tcp port 8080"},
		{"tcp 203.0.113.10 198.51.100.11:8080", "host 203.0.113.10 and host 198.51.100.11 and tcp port 8080"},
		{"tcp 203.0.113.10 198.51.100.11", "host 203.0.113.10 and host 198.51.100.11 and tcp"},
		{"udp 192.0.2.1:53 192.0.2.2:53", "host 192.0.2.1 and host 192.0.2.2 and udp port 53"},
		{"udp [2001:db8::1]:5353 [2001:db8::2]:53", "host 2001:db8::1 and host 2001:db8::2 and udp port 5353 and udp port 53"},
		{"icmp 192.0.2.1 192.0.2.2", "host 192.0.2.1 and host 192.0.2.2 and icmp"},
		{"icmp 2001:db8::1 2001:db8::2", "host 2001:db8::1 and host 2001:db8::2 and icmp6"},
	} {
		if got := TcpdumpFilter(parseFlow(t, c.flow)); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.flow, got, c.want)
		}
	}
	if got := TcpdumpFilter(flow.Flow{}); got != "" {
		t.Errorf("an empty flow renders %q", got)
	}
}

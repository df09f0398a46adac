// Package flow is the one failing flow asym diagnoses: a protocol and two
// endpoints, parsed from what a person types at 02:13.
package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Proto is the flow's transport protocol.
type Proto uint8

// Protocol numbers as the kernel uses them (IPPROTO_*).
const (
	TCP    Proto = 6
	UDP    Proto = 17
	ICMP   Proto = 1
	ICMPv6 Proto = 58
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	case ICMPv6:
		return "icmpv6"
	}
	return "proto-" + strconv.Itoa(int(p))
}

// HasPorts says whether the protocol carries ports.
func (p Proto) HasPorts() bool { return p == TCP || p == UDP }

// Flow is one direction of a conversation, as the initiator sent it: Src is
// the side that opened it, Dst the side that answers. Ports are 0 when not
// given (and always 0 for ICMP).
type Flow struct {
	Proto Proto
	Src   netip.AddrPort
	Dst   netip.AddrPort
}

// Is6 reports whether the flow is IPv6.
func (f Flow) Is6() bool { return f.Src.Addr().Is6() }

// Reverse is the reply direction: what the answering side sends back.
func (f Flow) Reverse() Flow { return Flow{Proto: f.Proto, Src: f.Dst, Dst: f.Src} }

// String renders the flow the way it is typed: "tcp 192.0.2.1:40000 203.0.113.9:443".
func (f Flow) String() string {
	return f.Proto.String() + " " + endpoint(f.Src) + " " + endpoint(f.Dst)
}

// Arrow renders the flow for headings: "tcp 192.0.2.1:40000 → 203.0.113.9:443".
func (f Flow) Arrow() string {
	return f.Proto.String() + " " + endpoint(f.Src) + " → " + endpoint(f.Dst)
}

func endpoint(ap netip.AddrPort) string {
	if ap.Port() == 0 {
		return ap.Addr().String()
	}
	return ap.String()
}

// Parse reads a flow from its three words: PROTO SRC DST.
// Every error is a sentence that says what to type instead.
func Parse(args []string) (Flow, error) {
	if len(args) != 3 {
		return Flow{}, fmt.Errorf("a flow is three words, PROTO SRC DST (for example: tcp 198.51.100.7:43122 203.0.113.10:443); got %d", len(args))
	}
	var f Flow
	switch strings.ToLower(args[0]) {
	case "tcp":
		f.Proto = TCP
	case "udp":
		f.Proto = UDP
	case "icmp", "icmpv6", "icmp6", "ping":
		f.Proto = ICMP
	default:
		return Flow{}, fmt.Errorf("unknown protocol %q: use tcp, udp or icmp", clip(args[0]))
	}
	var err error
	if f.Src, err = parseEndpoint("source", args[1], f.Proto); err != nil {
		return Flow{}, err
	}
	if f.Dst, err = parseEndpoint("destination", args[2], f.Proto); err != nil {
		return Flow{}, err
	}
	if f.Src.Addr().Is4() != f.Dst.Addr().Is4() {
		return Flow{}, fmt.Errorf("source %s and destination %s are of different IP versions: give two IPv4 or two IPv6 addresses", f.Src.Addr(), f.Dst.Addr())
	}
	if f.Proto == ICMP && f.Src.Addr().Is6() {
		f.Proto = ICMPv6
	}
	if f.Src.Addr() == f.Dst.Addr() {
		return Flow{}, fmt.Errorf("source and destination are the same address %s: a flow needs two ends", f.Src.Addr())
	}
	return f, nil
}

// ParseString splits s on white space and parses it.
func ParseString(s string) (Flow, error) { return Parse(strings.Fields(s)) }

func parseEndpoint(role, s string, proto Proto) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, fmt.Errorf("the %s is empty: give an address such as 192.0.2.10:443 or [2001:db8::1]:443", role)
	}
	host, portText, hasPort, err := splitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("the %s %q is not ip[:port]: %v", role, clip(s), err)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || addr.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("the %s %q is not an IP address: write it as 192.0.2.10:443 or [2001:db8::1]:443", role, clip(s))
	}
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() {
		return netip.AddrPort{}, fmt.Errorf("the %s %s cannot be one end of a flow: give a unicast address", role, addr)
	}
	var port uint16
	if hasPort {
		if !proto.HasPorts() {
			return netip.AddrPort{}, fmt.Errorf("the %s %q has a port, but %s has no ports: leave the port out", role, clip(s), proto)
		}
		n, err := strconv.ParseUint(portText, 10, 16)
		if err != nil || n == 0 {
			return netip.AddrPort{}, fmt.Errorf("the %s port %q is not a number from 1 to 65535", role, clip(portText))
		}
		port = uint16(n)
	}
	return netip.AddrPortFrom(addr, port), nil
}

// splitHostPort accepts "1.2.3.4", "1.2.3.4:80", "2001:db8::1", "[2001:db8::1]" and "[2001:db8::1]:80".
func splitHostPort(s string) (host, port string, hasPort bool, err error) {
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return "", "", false, errors.New("missing ]")
		}
		host, rest := s[1:end], s[end+1:]
		switch {
		case rest == "":
			return host, "", false, nil
		case strings.HasPrefix(rest, ":"):
			return host, rest[1:], true, nil
		}
		return "", "", false, errors.New("unexpected text after ]")
	}
	switch strings.Count(s, ":") {
	case 0:
		return s, "", false, nil
	case 1:
		i := strings.LastIndex(s, ":")
		return s[:i], s[i+1:], true, nil
	}
	// Bare IPv6 without brackets: no port possible.
	return s, "", false, nil
}

// clip keeps hostile or huge input out of error messages.
func clip(s string) string {
	const max = 64
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

type flowJSON struct {
	Proto string `json:"proto"`
	Src   string `json:"src"`
	Dst   string `json:"dst"`
}

// MarshalJSON writes {"proto":"tcp","src":"192.0.2.1:40000","dst":"203.0.113.9:443"}.
func (f Flow) MarshalJSON() ([]byte, error) {
	return json.Marshal(flowJSON{f.Proto.String(), endpoint(f.Src), endpoint(f.Dst)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (f *Flow) UnmarshalJSON(b []byte) error {
	var j flowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	g, err := Parse([]string{j.Proto, j.Src, j.Dst})
	if err != nil {
		return err
	}
	*f = g
	return nil
}

package evidence

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"asym/flow"
)

// Quote makes one word safe to paste into a POSIX shell, whatever it holds:
// interface names may contain $ ; ( ) and backquotes.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("@%+=:,./-_", c)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Command joins words into a command line, quoting each.
func Command(words ...string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
	}
	return strings.Join(q, " ")
}

// RemoteArgv appends words to a --peer prefix, each quoted when ssh will
// hand them to a remote shell: ssh joins its arguments with spaces into one
// command line for that shell, where an IPv6 endpoint such as
// [2001:db8::1]:80 is a glob pattern. The prefix's own words are the
// person's, passed as typed (as their own shell would pass them to ssh).
func RemoteArgv(prefix, words []string) []string {
	argv := append([]string(nil), prefix...)
	quote := false
	for _, w := range prefix {
		if filepath.Base(w) == "ssh" {
			quote = true
		}
	}
	for _, w := range words {
		if quote {
			w = Quote(w)
		}
		argv = append(argv, w)
	}
	return argv
}

// RemoteCommand renders words to run on the peer as one line a person can
// paste here: the --peer prefix, then the words, quoted for the remote shell
// when ssh carries them and again for the local one.
func RemoteCommand(prefix []string, words ...string) string {
	return Command(RemoteArgv(prefix, words)...)
}

// Clean strips terminal control sequences from text that came from the
// kernel, a person or another host (interface names may hold an ESC; a
// peer's stderr anything): C0 and C1 controls and DEL become visible
// escapes, tabs become spaces.
func Clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			fmt.Fprintf(&b, "\\x%02x", r)
		case r == '\u2028' || r == '\u2029' || r == '\ufeff' || (r >= '\u202a' && r <= '\u202e') || (r >= '\u2066' && r <= '\u2069'):
			// Line separators and bidi overrides can reorder what is shown.
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// TcpdumpFilter renders the pcap-filter expression a person would give
// tcpdump for the same flow, e.g. "host 203.0.113.10 and host 198.51.100.11
// and tcp port 40000 and tcp port 8080". It is the flow's own packets only:
// ICMP errors sent by routers on the path, which the capture's own filter
// also keeps, carry other addresses and would need "or icmp" on top.
func TcpdumpFilter(f flow.Flow) string {
	src, dst := f.Src.Addr().Unmap(), f.Dst.Addr().Unmap()
	if !src.IsValid() || !dst.IsValid() {
		return ""
	}
	parts := []string{"host " + src.String(), "host " + dst.String()}
	switch f.Proto {
	case flow.TCP, flow.UDP:
		p := f.Proto.String()
		sp, dp := f.Src.Port(), f.Dst.Port()
		if sp != 0 {
			parts = append(parts, p+" port "+strconv.Itoa(int(sp)))
		}
		if dp != 0 && dp != sp {
			parts = append(parts, p+" port "+strconv.Itoa(int(dp)))
		}
		if sp == 0 && dp == 0 {
			parts = append(parts, p)
		}
	case flow.ICMP, flow.ICMPv6:
		if src.Is6() {
			parts = append(parts, "icmp6")
		} else {
			parts = append(parts, "icmp")
		}
	default:
		parts = append(parts, "proto "+strconv.Itoa(int(f.Proto)))
	}
	return strings.Join(parts, " and ")
}

// ProtoName names an IP protocol number as iproute2 and nft do.
func ProtoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "ipv6-icmp"
	case 132:
		return "sctp"
	}
	return strconv.Itoa(int(p))
}

// The reserved routing tables (include/uapi/linux/rtnetlink.h rt_class_t).
const (
	TableDefault = 253
	TableMain    = 254
	TableLocal   = 255
)

// TableName renders a table id the way ip does for the reserved ones.
func TableName(id int) string {
	switch id {
	case TableMain:
		return "main"
	case TableLocal:
		return "local"
	case TableDefault:
		return "default"
	}
	return strconv.Itoa(id)
}

// HostOrPrefix writes a host prefix (/32, /128) as its bare address, the
// way iproute2 prints it.
func HostOrPrefix(p netip.Prefix) string {
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

package netconfig

// ifupdown's /etc/network/interfaces (interfaces(5)): iface stanzas with
// their gateway, and the source / source-directory lines that pull in
// other files (Debian's default sources /etc/network/interfaces.d/*).

import (
	"net/netip"
	"strings"
)

// stanza is one "iface NAME FAMILY METHOD" stanza.
type stanza struct {
	iface, family, method string
	gateway               netip.Addr
}

// include is a source (a pattern) or source-directory line.
type include struct {
	pattern string
	dir     bool
}

// parseInterfaces reads the stanzas and include lines of one file. An
// option line belongs to the iface stanza above it; any other stanza
// keyword (auto, allow-*, mapping, source…) ends it.
func parseInterfaces(text string) ([]stanza, []include) {
	var out []stanza
	var incs []include
	cur := -1
	for _, l := range lines(text) {
		w := strings.Fields(l)
		if len(w) == 0 || strings.HasPrefix(w[0], "#") {
			continue
		}
		switch {
		case w[0] == "iface" && len(w) >= 4:
			out = append(out, stanza{iface: w[1], family: w[2], method: w[3]})
			cur = len(out) - 1
		case w[0] == "source" || w[0] == "source-directory":
			if len(w) >= 2 {
				incs = append(incs, include{pattern: w[1], dir: w[0] == "source-directory"})
			}
			cur = -1
		case w[0] == "auto" || w[0] == "mapping" || w[0] == "rename" || w[0] == "iface" || strings.HasPrefix(w[0], "allow-") || strings.HasPrefix(w[0], "no-"):
			cur = -1
		case w[0] == "gateway" && len(w) >= 2 && cur >= 0:
			if a := addrs(w[1:2]); len(a) == 1 {
				out[cur].gateway = a[0]
			}
		}
	}
	return out, incs
}

// runPartsName: source-directory reads only the files run-parts(8) would
// run, names of letters, digits, underscores and hyphens.
func runPartsName(n string) bool {
	return n != "" && strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
}

package netconfig

// ISC dhclient's lease database (dhclient.leases(5)): ifupdown's
// /var/lib/dhcp/dhclient.IFACE.leases, RHEL's /var/lib/dhclient/, and
// NetworkManager's /var/lib/NetworkManager/dhclient-UUID-IFACE.lease.
// dhclient appends a lease block every time it gets one, so the newest is
// the last one for the interface:
//
//	lease {
//	  interface "eth1";
//	  fixed-address 192.0.2.10;
//	  option routers 192.0.2.1;
//	  expire 4 2026/03/05 17:07:38;
//	}

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// dhclientLease is one lease block.
type dhclientLease struct {
	dhcpLease
	Iface string // empty when the block names none
	// Expires is when the lease runs out, zero when it does not say (or
	// says "never").
	Expires time.Time
}

// parseDhclient returns the IPv4 lease blocks of a dhclient lease file in
// file order. lease6 blocks carry no router (IPv6 learns its gateway from
// router advertisements) and are skipped.
func parseDhclient(text string) []dhclientLease {
	var out []dhclientLease
	depth, inLease := 0, false
	var cur dhclientLease
	var stmt []string
	for _, tok := range dhclientTokens(text) {
		switch tok {
		case "{":
			if depth == 0 && len(stmt) == 1 && stmt[0] == "lease" {
				inLease, cur = true, dhclientLease{}
			}
			depth++
			stmt = nil
		case "}":
			depth--
			if depth <= 0 {
				if inLease {
					out = append(out, cur)
				}
				depth, inLease = 0, false
			}
			stmt = nil
		case ";":
			if inLease && depth == 1 {
				cur.statement(stmt)
			}
			stmt = nil
		default:
			stmt = append(stmt, tok)
		}
	}
	return out
}

// statement takes in one statement of a lease block.
func (l *dhclientLease) statement(w []string) {
	switch {
	case len(w) == 2 && w[0] == "interface":
		l.Iface = w[1]
	case len(w) >= 3 && w[0] == "option" && w[1] == "routers":
		l.Routers = addrs(strings.Split(strings.Join(w[2:], ""), ","))
	case len(w) >= 3 && w[0] == "option" && w[1] == "rfc3442-classless-static-routes":
		l.DefaultVia = rfc3442Default(strings.Join(w[2:], ""))
	case len(w) >= 2 && w[0] == "expire":
		l.Expires = dhclientTime(w[1:])
	}
}

// rfc3442Default finds the default route in option 121 as Debian's and
// RHEL's dhclient.conf declare it (array of unsigned integer 8):
// "24,192,0,2,192,0,2,1,0,192,0,2,1" is width, the significant octets of
// the destination, then the router's four octets, over and over.
func rfc3442Default(v string) netip.Addr {
	var b []int
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 || n > 255 {
			return netip.Addr{}
		}
		b = append(b, n)
	}
	for i := 0; i < len(b); {
		width := b[i]
		if width > 32 {
			return netip.Addr{}
		}
		gw := i + 1 + (width+7)/8
		if gw+4 > len(b) {
			return netip.Addr{}
		}
		if width == 0 {
			a, _ := addr4(b[gw : gw+4])
			return a
		}
		i = gw + 4
	}
	return netip.Addr{}
}

// dhclientTime reads a date as dhclient writes it: "4 2026/03/05
// 17:07:38" (weekday, then UTC), "epoch 1772730458" (with db-time-format
// local), or "never". Zero when it is none of these.
func dhclientTime(w []string) time.Time {
	switch {
	case len(w) == 2 && w[0] == "epoch":
		if n, err := strconv.ParseInt(w[1], 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	case len(w) == 3:
		if t, err := time.Parse("2006/01/02 15:04:05", w[1]+" "+w[2]); err == nil {
			return t
		}
	}
	return time.Time{}
}

// dhclientTokens splits a lease file into words, quoted strings (without
// their quotes) and the punctuation { } ;, dropping # comments.
func dhclientTokens(text string) []string {
	var out []string
	word := strings.Builder{}
	flush := func() {
		if word.Len() > 0 {
			out = append(out, word.String())
			word.Reset()
		}
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '"':
			flush()
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			out = append(out, strings.ReplaceAll(text[i+1:min(j, len(text))], `\"`, `"`))
			i = j
		case c == '#':
			flush()
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			flush()
			out = append(out, string(c))
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			flush()
		default:
			word.WriteByte(c)
		}
	}
	flush()
	return out
}

// newestDhclient picks the lease to believe for iface among a file's
// blocks: the last one for the interface that has not expired, or, when
// all have, the last one marked expired (it may be all there is, and the
// server likely hands out the same again). named says the file's name is
// for this interface, so that a block naming none counts as its own.
func newestDhclient(ls []dhclientLease, iface string, named bool, now time.Time) (l dhclientLease, expired, ok bool) {
	var lastExpired *dhclientLease
	for i := len(ls) - 1; i >= 0; i-- {
		if ls[i].Iface != iface && (ls[i].Iface != "" || !named) {
			continue
		}
		if ls[i].Expires.IsZero() || ls[i].Expires.After(now) {
			return ls[i], false, true
		}
		if lastExpired == nil {
			lastExpired = &ls[i]
		}
	}
	if lastExpired != nil {
		return *lastExpired, true, true
	}
	return dhclientLease{}, false, false
}

package evidence

import (
	"asym/flow"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// PacketDir is which way a captured packet crossed its interface.
type PacketDir string

const (
	DirIn  PacketDir = "in"  // received (PACKET_HOST, BROADCAST, MULTICAST, OTHERHOST)
	DirOut PacketDir = "out" // sent (PACKET_OUTGOING)
)

// TCPFlags are the flag bits of a TCP header (byte 13), as the kernel and
// the wire carry them.
type TCPFlags uint8

const (
	TCPFin TCPFlags = 1 << iota
	TCPSyn
	TCPRst
	TCPPsh
	TCPAck
	TCPUrg
	TCPEce
	TCPCwr
)

// Has reports whether every flag of want is set.
func (f TCPFlags) Has(want TCPFlags) bool { return f&want == want }

// String renders the flags the way tcpdump does: "S", "S.", ".", "R."…
func (f TCPFlags) String() string {
	const letters = "FSRP.UEW"
	var b []byte
	for i := range 8 {
		if f&(1<<i) != 0 {
			b = append(b, letters[i])
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return string(b)
}

// ICMP message types asym reads (RFC 792, RFC 4443).
const (
	ICMPv4Unreachable  = 3
	ICMPv4TimeExceeded = 11
	ICMPv4FragNeeded   = 4 // the code of "fragmentation needed and DF set" under type 3
	ICMPv6TooBig       = 2
	ICMPv6TimeExceeded = 3
	ICMPv6Unreachable  = 1
)

// ICMPMessage is an ICMP header, read from the wire.
type ICMPMessage struct {
	V6   bool  `json:"v6,omitempty"`
	Type uint8 `json:"type"`
	Code uint8 `json:"code"`
	// MTU is the next-hop MTU of an IPv4 fragmentation-needed (RFC 1191) or
	// an IPv6 packet-too-big; 0 otherwise or when the router left it out.
	MTU int `json:"mtu,omitempty"`
}

// TooBig reports whether the message says a packet was too big for a link:
// IPv4 destination unreachable / fragmentation needed, or IPv6 packet too big.
func (m *ICMPMessage) TooBig() bool {
	if m == nil {
		return false
	}
	if m.V6 {
		return m.Type == ICMPv6TooBig
	}
	return m.Type == ICMPv4Unreachable && m.Code == ICMPv4FragNeeded
}

// Error reports whether the message is an error about another packet
// (unreachable, too big, time exceeded), which quotes that packet.
func (m *ICMPMessage) Error() bool {
	if m == nil {
		return false
	}
	if m.V6 {
		return m.Type < 128
	}
	return m.Type == ICMPv4Unreachable || m.Type == ICMPv4TimeExceeded || m.Type == 4 || m.Type == 5 || m.Type == 12
}

// CapturedPacket is one packet of the flow, as it crossed an interface of the target.
type CapturedPacket struct {
	Time  time.Time `json:"time"` // the kernel's timestamp (SO_TIMESTAMPNS); when read, if it gave none
	Iface string    `json:"iface"`
	Dir   PacketDir `json:"dir"`
	// OtherHost marks a frame addressed to another host's MAC (a bridge or
	// switch flooding it here): it crossed the interface but was not sent
	// to this host, so analyzers must not read it as the flow arriving.
	OtherHost bool           `json:"other_host,omitempty"`
	Src       netip.AddrPort `json:"src"` // the packet's own addresses: for an ICMP error, the router's and the receiver's
	Dst       netip.AddrPort `json:"dst"`
	Proto     uint8          `json:"proto"`
	// TCP is the TCP header's flags (TCP packets only, when the header was
	// captured); Flags is the same as tcpdump prints it, for people.
	TCP   TCPFlags `json:"tcp_flags,omitempty"`
	Flags string   `json:"flags,omitempty"` // "S", "S.", ".", "P.", "F.", "R", "R."; "none" for none
	// ICMPMsg is the ICMP header (ICMP packets only); ICMP says it in words:
	// "echo request id 7 seq 1", "unreachable (frag needed, mtu 1400)", …
	ICMPMsg *ICMPMessage `json:"icmp_msg,omitempty"`
	ICMP    string       `json:"icmp,omitempty"`
	Len     int          `json:"len"` // IP total length
	// The frame's Ethernet addresses, "02:00:00:00:00:01", on Ethernet
	// links: for a packet going out, DstMAC is the next hop it was handed
	// to (the gateway, or the neighbour itself when on-link); for one coming
	// in, SrcMAC is the hop that sent it. Empty on links without them.
	SrcMAC string `json:"src_mac,omitempty"`
	DstMAC string `json:"dst_mac,omitempty"`
	// Reply is true when the packet goes from the flow's Dst to its Src.
	// An ICMP error goes back to the source of the packet it quotes, so it
	// counts as a reply when it quotes a packet of the flow's own direction.
	Reply bool `json:"reply"`
	// As is the form of the flow the packet belongs to when it is not the
	// typed one: the flow as NAT translated it, or as sent from another
	// source address. Reply is relative to that form. Nil for the typed flow.
	As   *flow.Flow `json:"as,omitempty"`
	Text string     `json:"text"` // tcpdump-like: "12:00:01.000001 eth1 In  IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], length 0"
}

// IsICMP reports whether the packet is an ICMP message rather than one of
// the flow's own segments.
func (p CapturedPacket) IsICMP() bool { return p.ICMPMsg != nil || p.ICMP != "" }

// SYN reports a bare SYN (the request opening a connection).
func (p CapturedPacket) SYN() bool { return p.TCP&(TCPSyn|TCPAck|TCPRst|TCPFin) == TCPSyn }

// SYNACK reports a SYN-ACK (the server's answer).
func (p CapturedPacket) SYNACK() bool { return p.TCP&(TCPSyn|TCPAck|TCPRst|TCPFin) == TCPSyn|TCPAck }

// RST reports whether the RST flag is set.
func (p CapturedPacket) RST() bool { return p.TCP.Has(TCPRst) }

// UnmarshalJSON reads a packet, filling the typed fields from the text
// ones when they are absent: evidence recorded, or collected by a peer,
// before the typed fields existed.
func (p *CapturedPacket) UnmarshalJSON(b []byte) error {
	type plain CapturedPacket
	if err := json.Unmarshal(b, (*plain)(p)); err != nil {
		return err
	}
	if p.TCP == 0 && p.Flags != "" && p.Flags != "none" {
		p.TCP = parseTCPFlags(p.Flags)
	}
	if p.ICMPMsg == nil && p.ICMP != "" {
		p.ICMPMsg = parseICMPWords(p.ICMP, p.Src.Addr().Is6())
	}
	return nil
}

func parseTCPFlags(s string) TCPFlags {
	var f TCPFlags
	for _, c := range s {
		if i := strings.IndexRune("FSRP.UEW", c); i >= 0 {
			f |= 1 << i
		}
	}
	return f
}

// parseICMPWords reads back the words the capture writes for the ICMP
// errors analyzers care about; other messages keep only that they are ICMP.
func parseICMPWords(s string, v6 bool) *ICMPMessage {
	m := &ICMPMessage{V6: v6}
	echo := func(v4, v6type uint8) uint8 {
		if v6 {
			return v6type
		}
		return v4
	}
	switch {
	case strings.HasPrefix(s, "echo request"):
		m.Type = echo(8, 128)
	case strings.HasPrefix(s, "echo reply"):
		m.Type = echo(0, 129)
	case strings.HasPrefix(s, "type "):
		var t, c int
		if n, _ := fmt.Sscanf(s, "type %d code %d", &t, &c); n == 2 {
			m.Type, m.Code = uint8(t), uint8(c)
		}
	case strings.HasPrefix(s, "unreachable (frag needed"):
		m.Type, m.Code = ICMPv4Unreachable, ICMPv4FragNeeded
	case strings.HasPrefix(s, "packet too big"):
		m.Type = ICMPv6TooBig
	case strings.HasPrefix(s, "unreachable"):
		m.Type = ICMPv4Unreachable
		if v6 {
			m.Type = ICMPv6Unreachable
		}
	case strings.HasPrefix(s, "time exceeded"):
		m.Type = ICMPv4TimeExceeded
		if v6 {
			m.Type = ICMPv6TimeExceeded
		}
	}
	if i := strings.Index(s, "mtu "); i >= 0 {
		m.MTU, _ = strconv.Atoi(strings.TrimRight(s[i+4:], ")"))
	}
	return m
}

package evidence

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"asym/flow"
)

// Drop is one packet of the flow that the kernel freed as dropped in the
// target namespace, with the kernel's own reason: the kfree_skb
// tracepoint's enum skb_drop_reason (Linux 5.17 and later), seen by the
// drop witness (probes/drops).
type Drop struct {
	Time time.Time `json:"time"`
	// Reason is the reason's name in the running kernel's BTF without its
	// SKB_DROP_REASON_ prefix: "IP_RPFILTER", "NETFILTER_DROP",
	// "NEIGH_FAILED". ReasonCode is its value on this kernel; values move
	// between kernels, so compare names, never codes.
	Reason     string `json:"reason"`
	ReasonCode int    `json:"reason_code"`
	// Location is the kernel function that freed the packet
	// ("ip_rcv_finish_core"), from /proc/kallsyms; empty when the address
	// could not be named. Text carries the offset as well.
	Location string `json:"location,omitempty"`
	// Iface is the device the packet was on when it was dropped: where it
	// arrived, or the one it was to leave by. Empty when it had none yet
	// (a packet this host made, dropped before routing).
	Iface string `json:"iface,omitempty"`
	// NetnsInode is the network namespace the drop is attributed to (the
	// device's, else the socket's): the inode `ls -iL /proc/PID/ns/net`
	// shows, the target's own for every drop asym reports.
	NetnsInode uint64 `json:"netns_inode"`
	// The packet's own addresses and protocol: for an ICMP error about the
	// flow, the router's and the receiver's (Quoted is then true).
	Src   netip.AddrPort `json:"src"`
	Dst   netip.AddrPort `json:"dst"`
	Proto uint8          `json:"proto"`
	TCP   TCPFlags       `json:"tcp_flags,omitempty"`
	// ICMPMsg is the ICMP header of an ICMP packet.
	ICMPMsg *ICMPMessage `json:"icmp_msg,omitempty"`
	// Quoted marks an ICMP error whose quoted packet is the flow's: the
	// kernel dropped the message about the flow, not the flow's packet.
	Quoted bool `json:"quoted,omitempty"`
	Len    int  `json:"len"` // IP total length
	// Reply is true when the packet goes from the flow's Dst to its Src
	// (as for CapturedPacket: an ICMP error counts as a reply when it
	// quotes a packet of the flow's own direction).
	Reply bool `json:"reply"`
	// As is the form of the flow the packet belongs to when it is not the
	// typed one (NAT, another source); Reply is relative to it.
	As *flow.Flow `json:"as,omitempty"`
	// Text is one line for people: "08:45:41.638940 eth1 IP
	// 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], length 0 dropped:
	// IP_RPFILTER in ip_rcv_finish_core+0x2d5".
	Text string `json:"text"`
}

// SYN reports a bare SYN.
func (d Drop) SYN() bool { return d.TCP&(TCPSyn|TCPAck|TCPRst|TCPFin) == TCPSyn }

// SYNACK reports a SYN-ACK.
func (d Drop) SYNACK() bool { return d.TCP&(TCPSyn|TCPAck|TCPRst|TCPFin) == TCPSyn|TCPAck }

// What names the dropped packet for a sentence: "the SYN", "the SYN-ACK",
// "an ICMP fragmentation-needed about the flow", "a 1500-byte packet of
// the reply".
func (d Drop) What() string {
	switch {
	case d.Quoted && d.ICMPMsg.TooBig():
		return "an ICMP fragmentation-needed about the flow"
	case d.Quoted:
		return "an ICMP error about the flow"
	case d.SYN():
		return "the SYN"
	case d.SYNACK():
		return "the SYN-ACK"
	}
	way := "request"
	if d.Reply {
		way = "reply"
	}
	return fmt.Sprintf("a %d-byte packet of the %s", d.Len, way)
}

// Where says where the kernel dropped it, for a sentence: "on eth1", or
// "before it had an interface".
func (d Drop) Where() string {
	if d.Iface == "" {
		return "before it had an interface"
	}
	return "on " + d.Iface
}

// In names the function that dropped it: "in ip_rcv_finish_core", or ""
// when unknown.
func (d Drop) In() string {
	if d.Location == "" {
		return ""
	}
	return "in " + d.Location
}

// Sentence is the drop in one phrase: "the kernel dropped the SYN on eth1:
// IP_RPFILTER, in ip_rcv_finish_core".
func (d Drop) Sentence() string {
	s := fmt.Sprintf("the kernel dropped %s %s: %s", d.What(), d.Where(), d.Reason)
	if in := d.In(); in != "" {
		s += ", " + in
	}
	return s
}

// DropUpdate is one batch of the drop witness (one per interval at most).
type DropUpdate struct {
	// Hook says how the witness is attached ("tp_btf/kfree_skb", or the
	// fallback "raw_tp/kfree_skb"); set in the first update.
	Hook  string `json:"hook,omitempty"`
	Drops []Drop // the flow's drops in the target namespace, in order
	// Lost counts drops of the flow the kernel could not hand over (the
	// ring buffer was full): never seen. Skipped counts drops seen and not
	// delivered, beyond the batch cap while nobody read.
	Lost    int
	Skipped int
	// Unattributed counts drops of packets with the flow's addresses that
	// had neither a device nor a socket, so no namespace: they may be
	// another namespace's (the lab's routers share the kernel) and are not
	// reported as this one's.
	Unattributed int
	// Err is why the witness does not run ("kernel drop witness is
	// unavailable: …"), in its only update.
	Err error
}

// DropCounts sums drops by reason, for a line: "IP_RPFILTER ×3,
// NETFILTER_DROP ×1", in the order the reasons first appear.
func DropCounts(ds []Drop) string {
	var order []string
	n := map[string]int{}
	for _, d := range ds {
		if n[d.Reason] == 0 {
			order = append(order, d.Reason)
		}
		n[d.Reason]++
	}
	parts := make([]string, len(order))
	for i, r := range order {
		parts[i] = fmt.Sprintf("%s ×%d", r, n[r])
	}
	return strings.Join(parts, ", ")
}

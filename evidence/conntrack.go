package evidence

import "net/netip"

// ConntrackEntry is one conntrack entry that belongs to the flow, flattened
// for people and analyzers.
type ConntrackEntry struct {
	// MatchedAs says in which of the entry's two directions the flow travels:
	// "original" (the flow is the entry's original tuple: it goes the way the
	// first packet went) or "reply" (the flow is the entry's reply tuple, e.g.
	// the entry was created by the other side, or the flow was given after
	// NAT). When NAT rewrote the far end, the flow equals neither tuple
	// exactly; it is then matched through its reverse and Lines say so.
	MatchedAs string         `json:"matched_as"`
	Proto     uint8          `json:"proto"`
	OrigSrc   netip.AddrPort `json:"orig_src"`
	OrigDst   netip.AddrPort `json:"orig_dst"`
	ReplySrc  netip.AddrPort `json:"reply_src"`
	ReplyDst  netip.AddrPort `json:"reply_dst"`
	// TCPState is conntrack's TCP state: "SYN_SENT", "SYN_RECV",
	// "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT",
	// "CLOSE", "SYN_SENT2" or "NONE"; empty for other protocols.
	TCPState  string `json:"tcp_state,omitempty"`
	Unreplied bool   `json:"unreplied"` // no SEEN_REPLY status bit: the reply never came back through this host
	Assured   bool   `json:"assured"`
	SrcNAT    bool   `json:"src_nat"` // status bits SRC_NAT / DST_NAT
	DstNAT    bool   `json:"dst_nat"`
	Timeout   uint32 `json:"timeout"` // seconds left
	Mark      uint32 `json:"mark"`
	Zone      uint16 `json:"zone"`
	// Packet counters stay 0 unless net.netfilter.nf_conntrack_acct=1 in the namespace.
	PacketsOrig  uint64 `json:"packets_orig"`
	PacketsReply uint64 `json:"packets_reply"`
	// Text is the entry as one line of `conntrack -L`, e.g.
	// tcp      6 117 SYN_SENT src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 [UNREPLIED] src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0 use=1
	Text string `json:"text"`
}

// ConntrackStats are conntrack's per-CPU statistics (`conntrack -S`),
// summed over CPUs: the kernel counts each event on the CPU that saw it.
type ConntrackStats struct {
	CPUs          int    `json:"cpus"`
	Found         uint64 `json:"found"`
	Invalid       uint64 `json:"invalid"` // packets conntrack could not track; a ruleset may drop them (ct state invalid)
	Ignore        uint64 `json:"ignore"`
	Insert        uint64 `json:"insert"`
	InsertFailed  uint64 `json:"insert_failed"`
	Drop          uint64 `json:"drop"`
	EarlyDrop     uint64 `json:"early_drop"`
	Error         uint64 `json:"error"`
	SearchRestart uint64 `json:"search_restart"`
}

// ConntrackView is what conntrack knows about the flow in the target
// namespace, and how busy the table is.
type ConntrackView struct {
	Report
	Entries []ConntrackEntry `json:"entries"`   // entries for the flow; empty when none
	Looked  bool             `json:"looked_up"` // false when the flow lacks what a lookup needs; Lines say why
	Stats   ConntrackStats   `json:"stats"`
	Count   uint32           `json:"count"` // entries in the table
	Max     uint32           `json:"max"`   // nf_conntrack_max
}

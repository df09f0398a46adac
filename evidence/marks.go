package evidence

// MarkTarget is which mark a firewall rule sets.
type MarkTarget string

const (
	MarkPacket MarkTarget = "packet" // meta mark (skb->mark): what routing by fwmark sees
	MarkConn   MarkTarget = "conn"   // ct mark: kept with the connection, for its later packets
)

// MarkRule is a firewall rule that sets a packet's mark or its
// connection's mark: what policy routing by fwmark rests on.
type MarkRule struct {
	Family   string     `json:"family"`
	Table    string     `json:"table"`
	Chain    string     `json:"chain"`
	Hook     string     `json:"hook,omitempty"`
	Priority int        `json:"priority"`
	Handle   uint64     `json:"handle"`
	Sets     MarkTarget `json:"sets"`
	// Copy says the value comes from the other mark: a restore (packet ←
	// conn, CONNMARK --restore-mark) or a save (conn ← packet).
	Copy  bool   `json:"copy,omitempty"`
	Value uint32 `json:"value,omitempty"`
	// Conditions asym read; Partial: others it did not (it may not apply).
	Iif      string `json:"iif,omitempty"`
	IifIndex int    `json:"iif_index,omitempty"` // an iif given by index (nft iif), named in Iif by the probe
	Oif      string `json:"oif,omitempty"`
	CtStates uint32 `json:"ct_states,omitempty"` // ct state bits the rule requires (CtState*), 0 = any
	Partial  bool   `json:"partial,omitempty"`
	Packets  uint64 `json:"packets,omitempty"`
	Text     string `json:"text"`
}

// Conntrack states a rule can select (nft ct state bits).
const (
	CtStateInvalid     uint32 = 1
	CtStateEstablished uint32 = 2
	CtStateRelated     uint32 = 4
	CtStateNew         uint32 = 8
)

// MarkState is the marks a packet carries through the rules of one hook.
type MarkState struct {
	Packet, Conn uint32
	Restored     bool // a rule copied the connection's mark onto the packet
}

// Through runs the mark rules of one hook over a packet: arriving on iif
// (prerouting; "" when it is sent by this host), in connection state
// state (CtStateNew for a connection's first packet, CtStateEstablished
// after), starting from the marks it has. Rules run in hook priority, then
// listing order; a partial rule is taken to apply (it may: what it does is
// what matters here).
func Through(rules []MarkRule, hook, iif string, state uint32, in MarkState) MarkState {
	out := in
	for _, r := range rules {
		if r.Hook != hook || (r.Iif != "" && r.Iif != iif) || (r.CtStates != 0 && r.CtStates&state == 0) {
			continue
		}
		switch {
		case r.Sets == MarkPacket && r.Copy:
			out.Packet, out.Restored = out.Conn, true
		case r.Sets == MarkPacket:
			out.Packet = r.Value
		case r.Sets == MarkConn && r.Copy:
			out.Conn = out.Packet
		default:
			out.Conn = r.Value
		}
	}
	return out
}

// MarksView is what the marks do to the flow on this host, and the routes
// the kernel picks with the marks the packets really carry.
type MarksView struct {
	Report
	Rules []MarkRule `json:"rules,omitempty"`
	// The marks: of the request as routing sees it, of its connection, and
	// of the reply as routing sees it (after any restore on its way).
	Request  uint32 `json:"request_mark,omitempty"`
	Conn     uint32 `json:"conn_mark,omitempty"`
	Reply    uint32 `json:"reply_mark,omitempty"`
	Restored bool   `json:"restored,omitempty"` // a rule gives the reply its connection's mark back
	// The kernel's answers with those marks. ReplyRestored is the reply's
	// route as if the connection's mark were restored onto it (asked only
	// when it is not): what the mark routing was meant to do.
	RequestRoute  *RouteDecision `json:"request_route,omitempty"`
	ReversePath   *RouteDecision `json:"reverse_path,omitempty"` // the way back with the request's mark: what rp_filter asks when src_valid_mark is on
	ReplyRoute    *RouteDecision `json:"reply_route,omitempty"`
	ReplyRestored *RouteDecision `json:"reply_restored,omitempty"`
	// SrcValidMark is the effective src_valid_mark on the request's
	// ingress (-1 unknown): without it, the reverse-path check ignores marks.
	SrcValidMark int `json:"src_valid_mark"`
}

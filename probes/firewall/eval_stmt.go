package firewall

// Statements that change what the rules after them see: NAT rewrites the
// packet's addresses and ends its chain with accept (nft_nat_eval sets the
// verdict nf_nat_setup_info returns), notrack takes its connection away,
// and x_tables targets carried by nft_compat do either.

import (
	"net/netip"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// translation is what a NAT statement rewrites: the destination (DNAT,
// redirect) or the source (SNAT, masquerade), to an address and a port
// when it names them.
type translation struct {
	dest      bool
	addr      netip.Addr // invalid: the address is not known (a range, an interface's)
	port      uint16
	keepAddr  bool // the statement leaves the address (a port-only redirect)
	portKnown bool
	keepPort  bool // the statement leaves the port
}

// translate applies a NAT statement to the packet when it certainly runs;
// when it may, the fields it would rewrite become unknown.
func (p *packet) translate(t translation, reach tri) {
	if reach == no {
		return
	}
	addr, port := &p.src, &p.sport
	known := &p.sportKnown
	if t.dest {
		addr, port, known = &p.dst, &p.dport, &p.dportKnown
	}
	switch {
	case reach == yes && !t.keepAddr:
		*addr = t.addr
	case reach == maybe && !t.keepAddr:
		*addr = netip.Addr{}
	}
	switch {
	case t.keepPort:
	case reach == yes && t.portKnown:
		*port, *known = t.port, true
	default:
		*known = false
	}
	p.translated = true
	p.headers()
}

func (ev *evaluator) nat(n *expr.NAT) {
	t := translation{dest: n.Type == expr.NATTypeDestNAT, keepAddr: n.RegAddrMin == 0, keepPort: n.RegProtoMin == 0}
	if !t.keepAddr {
		t.addr = ev.regAddr(n.RegAddrMin, n.RegAddrMax)
	}
	if !t.keepPort {
		t.port, t.portKnown = ev.regPort(n.RegProtoMin, n.RegProtoMax)
	}
	ev.p.translate(t, ev.reach)
	ev.give("accept", "")
}

// masq rewrites the source to the outgoing interface's address, which the
// walk does not know.
func (ev *evaluator) masq(m *expr.Masq) {
	t := translation{keepPort: m.RegProtoMin == 0}
	if !t.keepPort {
		t.port, t.portKnown = ev.regPort(m.RegProtoMin, m.RegProtoMax)
	}
	ev.p.translate(t, ev.reach)
	ev.give("accept", "")
}

// redir rewrites the destination to this host (the incoming interface's
// address, which the walk does not know) and a port.
func (ev *evaluator) redir(r *expr.Redir) {
	t := translation{dest: true, keepPort: r.RegisterProtoMin == 0}
	if !t.keepPort {
		t.port, t.portKnown = ev.regPort(r.RegisterProtoMin, r.RegisterProtoMax)
	}
	ev.p.translate(t, ev.reach)
	ev.give("accept", "")
}

// regAddr reads a NAT address; a range (min and max differ) gives no one
// address.
func (ev *evaluator) regAddr(min, max uint32) netip.Addr {
	n := 4
	if ev.p.v6 {
		n = 16
	}
	lo, ok, _ := ev.r.load(min, n)
	if !ok {
		return netip.Addr{}
	}
	if max != 0 && max != min {
		if hi, ok, _ := ev.r.load(max, n); !ok || string(hi) != string(lo) {
			return netip.Addr{}
		}
	}
	a, _ := netip.AddrFromSlice(lo)
	return a.Unmap()
}

// regPort reads a NAT port (network order).
func (ev *evaluator) regPort(min, max uint32) (uint16, bool) {
	lo, ok, _ := ev.r.load(min, 2)
	if !ok {
		return 0, false
	}
	if max != 0 && max != min {
		if hi, ok, _ := ev.r.load(max, 2); !ok || string(hi) != string(lo) {
			return 0, false
		}
	}
	return uint16(lo[0])<<8 | uint16(lo[1]), true
}

// notrack takes the packet's connection away: the rules after it see ct
// state untracked, and conntrack leaves it alone.
func (ev *evaluator) notrack() { ev.p.untrack(ev.reach) }

func (p *packet) untrack(reach tri) {
	switch reach {
	case yes:
		p.ct = ctView{present: no, state: known32(ctUntracked)}
	case maybe:
		p.ct.present, p.ct.state = maybe, value32{}
	}
}

// ctUntracked is the ct state bit of an untracked packet.
const ctUntracked = expr.CtStateBitUNTRACKED

// xtMatch evaluates an x_tables match of iptables-nft on its raw info.
func (ev *evaluator) xtMatch(m *expr.Match) {
	data, err := xt.Marshal(xt.TableFamily(ev.fam), m.Rev, m.Info)
	if err != nil {
		ev.cond(maybe, "-m "+m.Name)
		return
	}
	t, why := xtMatchEval(ev.p, m.Name, uint8(m.Rev), data)
	ev.cond(t, why)
}

// xtTarget runs an x_tables target of iptables-nft on its raw info.
func (ev *evaluator) xtTarget(t *expr.Target) {
	data, err := xt.Marshal(xt.TableFamily(ev.fam), t.Rev, t.Info)
	if err != nil {
		data = nil
	}
	if v := xtTargetEval(ev.p, t.Name, uint8(t.Rev), data, ev.reach); v != "" {
		ev.give(v, "")
	}
}

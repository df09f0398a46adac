package firewall

// Where the flow crosses this host: which hooks each direction crosses,
// through which interfaces, and what its connection looks like to the
// rules on the way.

import (
	"net/netip"

	"asym/evidence"
	"asym/flow"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Crossing is what the First step found out about the flow on this host:
// this host's role and the interfaces each direction comes in by and
// leaves by. The zero Crossing knows nothing: every hook is walked, and no
// interface is known.
type Crossing struct {
	Role           evidence.Role
	Request, Reply Leg
}

// Leg is one direction: the interface it arrives on and the one it leaves
// by ("" when unknown, or when this host sends or receives it itself), and
// the interface the way back to its source leaves by (the reverse-path
// lookup of a packet that arrives), which a fib rule asks for.
type Leg struct{ In, Out, Back string }

// CrossingOf builds the crossing from the First step's views; nil views
// leave what they would tell unknown.
func CrossingOf(h *evidence.HostView, req, rep *evidence.PathView) Crossing {
	var c Crossing
	if h == nil || !h.OK() {
		return c
	}
	c.Role = h.Role
	c.Request, c.Reply = legOf(req), legOf(rep)
	return c
}

func legOf(p *evidence.PathView) Leg {
	if p == nil || !p.OK() {
		return Leg{}
	}
	l := Leg{In: p.Ingress, Out: p.Egress}
	if p.ReversePath != nil && !p.ReversePath.Failed() {
		l.Back = p.ReversePath.Dev
	}
	return l
}

// hookStep is one hook a packet crosses and the interfaces it has there.
type hookStep struct {
	hook     string
	iif, oif ifRef
	back     ifRef // where the way back to its source leaves: unknown when not known
}

// steps are the hooks one direction crosses, in order. A packet this host
// sends crosses output and postrouting with no input interface; one it
// receives, prerouting and input with no output interface; one it
// forwards, prerouting, forward and postrouting, with its input interface
// still known in postrouting (ip_output hands the hook skb->dev, the
// device it came in on).
func (c Crossing) steps(dir evidence.Direction, ifr func(string) ifRef) []hookStep {
	leg := c.Request
	if dir == evidence.DirReply {
		leg = c.Reply
	}
	in, out, back := ifr(leg.In), ifr(leg.Out), ifr(leg.Back)
	sends := c.Role == evidence.RoleClient && dir == evidence.DirRequest || c.Role == evidence.RoleServer && dir == evidence.DirReply
	switch {
	case c.Role == "":
		var unknown ifRef
		return []hookStep{{"prerouting", unknown, unknown, unknown}, {"input", unknown, unknown, unknown}, {"forward", unknown, unknown, unknown},
			{"output", unknown, unknown, unknown}, {"postrouting", unknown, unknown, unknown}}
	case sends:
		return []hookStep{{"output", noIface, out, ifRef{}}, {"postrouting", noIface, out, ifRef{}}}
	case c.Role == evidence.RoleMiddle:
		return []hookStep{{"prerouting", in, noIface, back}, {"forward", in, out, back}, {"postrouting", in, out, back}}
	}
	return []hookStep{{"prerouting", in, noIface, back}, {"input", in, noIface, back}}
}

// errorSteps are the hooks an ICMP error this host sends about the
// request crosses: output and postrouting, out by the interface the
// request came in on (where its source is).
func (c Crossing) errorSteps(ifr func(string) ifRef) []hookStep {
	out := ifr(c.Request.In)
	if c.Role == "" {
		out = ifRef{}
	}
	return []hookStep{{"output", noIface, out, ifRef{}}, {"postrouting", noIface, out, ifRef{}}}
}

// caseOf prepares the packet of one case of the walk: its tuple, its TCP
// flags, and its connection as conntrack would give it. first is the
// request as the request's walk left it (translated by NAT or not), for the
// reply's cases.
func caseOf(f flow.Flow, c evidence.PathCase, first *packet) packet {
	switch c {
	case evidence.PathFirst:
		p := newPacket(f)
		p.tcpFlags, p.hasFlags = tcpSYN, f.Proto == flow.TCP
		p.ct = ctView{present: yes, state: known32(expr.CtStateBitNEW), dir: 0, mark: known32(0), orig: f, reply: f.Reverse()}
		return p
	case evidence.PathICMPError:
		p := newPacket(flow.Flow{Proto: flow.ICMP, Src: f.Dst, Dst: f.Src})
		p.src, p.sport, p.dport = netip.Addr{}, 0, 0 // the router picks its own address
		p.icmpType, p.icmpCode = 3, 4                // destination unreachable, fragmentation needed
		if f.Is6() {
			p.proto, p.icmpType, p.icmpCode = unix.IPPROTO_ICMPV6, 2, 0 // packet too big
		}
		p.ct = ctView{present: maybe}
		return p
	}
	p := first.reply()
	p.tcpFlags, p.hasFlags = tcpSYN|tcpACK, f.Proto == flow.TCP
	p.mark, p.translated = known32(0), false
	if c == evidence.PathTracked {
		p.ct = ctView{present: yes, state: known32(expr.CtStateBitESTABLISHED), dir: 1, mark: first.ct.mark, orig: f, reply: first.tuple().Reverse()}
		return p
	}
	// No state: conntrack calls a TCP SYN-ACK or an ICMP echo reply that
	// answers nothing invalid (nf_conntrack_proto_tcp.c: sNO → sIV for a
	// SYN-ACK; icmp_new accepts only requests), and takes a UDP reply for
	// a new connection of its own.
	if f.Proto == flow.UDP {
		t := p.tuple()
		p.ct = ctView{present: yes, state: known32(expr.CtStateBitNEW), dir: 0, mark: known32(0), orig: t, reply: t.Reverse()}
		return p
	}
	p.ct = ctView{present: no, state: known32(expr.CtStateBitINVALID)}
	return p
}

package firewall

// Walking one packet hook after hook: the base chains of each hook in
// priority order, and what the kernel does to the packet between them
// (conntrack at priority -200, NAT undone on a tracked reply).

import (
	"asym/evidence"
	"asym/flow"

	"github.com/google/nftables/expr"
)

// Hook priorities the walk needs (include/uapi/linux/netfilter_ipv4.h).
const (
	priConntrack = -200 // NF_IP_PRI_CONNTRACK: before it a packet has no connection
	priNATDst    = -100 // NF_IP_PRI_NAT_DST
	priNATSrc    = 100  // NF_IP_PRI_NAT_SRC
)

// hookChains gives the base chains of a hook, in priority order.
type hookChains func(hook string) []*pathChain

// undoNAT is what the kernel undoes on a tracked reply of a translated
// connection: its destination becomes the request's source again where
// the request's source was translated (at NAT_DST in prerouting or
// output), its source the request's destination (at NAT_SRC in
// postrouting or input).
type undoNAT struct {
	orig     flow.Flow // the request before NAT
	dst, src bool      // still to undo
}

// run walks the packet through the hooks of steps. natOnly walks only the
// NAT chains (to find the NAT rules that would translate the packet were
// it a new connection).
func (w *walk) run(steps []hookStep, chains hookChains, undo *undoNAT, natOnly bool) {
	for _, s := range steps {
		if w.anyHook {
			w.alive = yes
		}
		w.path.Hooks = append(w.path.Hooks, s.hook)
		w.p.hook, w.p.iif, w.p.oif, w.p.back = s.hook, s.iif, s.oif, s.back
		for _, c := range chains(s.hook) {
			if w.alive == no {
				return
			}
			// What the kernel did to the packet before this chain (its
			// connection, NAT undone) decides whether a NAT chain runs.
			w.beforeChain(c, undo)
			if natOnly && !c.nat || c.nat && !w.natRuns() {
				continue
			}
			n := len(w.path.Hits)
			fall := w.chain(c, 0, w.alive)
			w.policy(c, fall, n)
		}
	}
}

// beforeChain gives the packet what the kernel did to it before chain c:
// no connection yet before conntrack's hook (a ct state match there sees
// invalid, nft_ct_get_eval without a ct), its connection after; a reply's
// NAT undone where conntrack undoes it.
func (w *walk) beforeChain(c *pathChain, undo *undoNAT) {
	p := w.p
	p.priority = c.priority
	untracked := p.ct.state.known && p.ct.state.v == ctUntracked
	early := (p.hook == "prerouting" || p.hook == "output") && c.priority < priConntrack
	switch {
	case untracked: // notrack: conntrack leaves it alone from here on
		w.early = false
	case early && !w.early:
		w.saved, w.early = p.ct, true
		p.ct = ctView{present: no, state: known32(expr.CtStateBitINVALID)}
	case !early && w.early:
		p.ct, w.early = w.saved, false
	}
	if undo == nil {
		return
	}
	if undo.dst && (p.hook == "prerouting" || p.hook == "output") && c.priority > priNATDst {
		p.dst, p.dport, p.dportKnown, undo.dst = undo.orig.Src.Addr(), undo.orig.Src.Port(), true, false
		p.headers()
	}
	if undo.src && (p.hook == "postrouting" || p.hook == "input") && c.priority > priNATSrc {
		p.src, p.sport, p.sportKnown, undo.src = undo.orig.Dst.Addr(), undo.orig.Dst.Port(), true, false
		p.headers()
	}
}

// natRuns says whether NAT chains see the packet: only a connection's
// first packet (nf_nat_inet_fn runs them for a new conntrack without a NAT
// binding); an established, related, invalid or untracked one never.
func (w *walk) natRuns() bool {
	st := w.p.ct.state
	return w.p.ct.present != no && (!st.known || st.v == expr.CtStateBitNEW)
}

// walkCase runs one case of the flow through the hooks and returns the
// walk (its packet as it leaves the last hook, for the reply's cases).
func walkCase(b *budget, f flow.Flow, cr Crossing, c evidence.PathCase, dir evidence.Direction, steps []hookStep, chains hookChains, first *walk) *walk {
	var request *packet // the request as its walk left it, for the reply's cases
	if first != nil {
		request = first.p
	}
	p := caseOf(f, c, request)
	p.headers()
	w := newWalk(b, &p, dir, c)
	w.anyHook = cr.Role == ""
	if len(steps) > 0 {
		w.p.iif, w.p.oif = steps[0].iif, steps[0].oif
	}
	w.path.Packet = p.String()
	w.path.CtState = ctStateName(p.ct.state)
	var undo *undoNAT
	if c == evidence.PathTracked && first != nil && first.p.translated {
		undo = &undoNAT{orig: f, dst: first.p.src != f.Src.Addr() || first.p.sport != f.Src.Port(),
			src: first.p.dst != f.Dst.Addr() || first.p.dport != f.Dst.Port()}
	}
	w.run(steps, chains, undo, false)
	return w
}

package playbook

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"asym/evidence"
	"asym/fix"
	"asym/flow"
)

// Analyzers over live evidence: packets of the flow with the interface and
// direction they crossed, conntrack events and counter changes. They name
// the same findings as the routing analyzers (their evidence lines join the
// finding's) and stand alone where routing alone could not tell.

func live(e *evidence.Evidence) *evidence.LiveEvidence {
	if e.Live == nil || !e.Live.OK() {
		return nil
	}
	return e.Live
}

// firstPacket returns the first packet that matches. Frames flooded to
// this host for another host's MAC are never evidence of the flow's path.
func firstPacket(l *evidence.LiveEvidence, match func(p evidence.CapturedPacket) bool) (evidence.CapturedPacket, bool) {
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			return p, true
		}
	}
	return evidence.CapturedPacket{}, false
}

func countPackets(l *evidence.LiveEvidence, match func(p evidence.CapturedPacket) bool) int {
	n := 0
	for _, p := range l.Packets {
		if !p.OtherHost && match(p) {
			n++
		}
	}
	return n
}

// liveWrongEgress: the request came in on one interface and the reply left
// by another, seen on the wire.
func liveWrongEgress(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == evidence.RoleClient {
		return nil
	}
	in, ok := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	if !ok {
		return nil
	}
	out, ok := firstPacket(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == "out" && p.Iface != in.Iface })
	if !ok {
		return nil
	}
	return []Finding{{
		ID:       "reply_wrong_egress",
		Title:    fmt.Sprintf("Packets show it: the request came in on %s, the reply left by %s", in.Iface, out.Iface),
		Evidence: []Line{{Probe: "live", Text: in.Text}, {Probe: "live", Text: out.Text}},
	}}
}

// liveRPFilterDrop: requests arrive, nothing answers, and the reverse-path
// counter climbs by about as much.
func liveRPFilterDrop(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) == evidence.RoleClient {
		return nil
	}
	n := l.Deltas["TcpExt:IPReversePathFilter"]
	reqs := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	replies := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == "out" })
	if n <= 0 || reqs == 0 || replies > 0 {
		return nil
	}
	in, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	return []Finding{{
		ID:    "rp_filter_strict_drop",
		Title: fmt.Sprintf("%d requests arrived on %s, none was answered, and the reverse-path filter dropped %d packets", reqs, in.Iface, n),
		Evidence: []Line{{Probe: "live", Text: in.Text},
			{Probe: "live", Text: fmt.Sprintf("%d requests in, 0 replies out, TcpExt IPReversePathFilter %+d over the window", reqs, n)}},
	}}
}

// liveSilentConntrack: the reply arrives here, conntrack records nothing of
// the flow, and invalid climbs: a stateful drop of a flow this host never
// saw begin.
func liveSilentConntrack(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || len(l.Events) > 0 || l.Deltas["nf_conntrack:invalid"] <= 0 {
		return nil
	}
	rep, ok := firstPacket(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == "in" })
	if !ok {
		return nil
	}
	forwarded := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == "out" })
	if forwarded > 0 {
		return nil
	}
	ev := []Line{{Probe: "live", Text: rep.Text},
		{Probe: "live", Text: fmt.Sprintf("no conntrack event for the flow; nf_conntrack invalid %+d; the reply never left", l.Deltas["nf_conntrack:invalid"])}}
	for k, v := range l.Deltas {
		if len(k) > 5 && k[:5] == "rule:" && v > 0 {
			ev = append(ev, Line{Probe: "live", Text: fmt.Sprintf("%s counter %+d", k[5:], v)})
		}
	}
	return []Finding{{
		ID:       "ct_invalid_drop",
		Title:    "The reply arrives and vanishes: no conntrack entry, invalid climbs (the silent-conntrack signature)",
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Make both directions of the flow cross the same stateful device",
			Advice: "The request crossed another device than this one. Pin the route so both directions cross the same stateful device, or share state.",
			Prove:  []string{proveConntrack(e)}},
	}}
}

// liveSynUnanswered: a TCP SYN goes (or comes) again and again and no SYN-ACK
// is seen on this host.
func liveSynUnanswered(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || e.Flow.Proto != 6 {
		return nil
	}
	syns := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Flags == "S" })
	synacks := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Flags == "S." })
	if syns < 2 || synacks > 0 {
		return nil
	}
	syn, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Flags == "S" })
	where := "the reply is dropped before it reaches this host, or takes another way back"
	if role(e) == evidence.RoleServer {
		where = "this host does not answer: it drops the SYN or cannot route the SYN-ACK"
	}
	return []Finding{{
		ID:       "syn_unanswered",
		Title:    fmt.Sprintf("The SYN was seen %d times (retransmits) and no SYN-ACK: %s", syns, where),
		Evidence: []Line{{Probe: "live", Text: syn.Text}, {Probe: "live", Text: fmt.Sprintf("%d SYN, 0 SYN-ACK over the window", syns)}},
		Fix: &fix.Fix{Summary: "Follow the SYN-ACK", Advice: "Capture on the other end: if it sends the SYN-ACK, the return path loses it; compare the route back on both ends.",
			Prove: []string{proveCapture(e) + "   # on the other end", proveRoute(e, true) + "   # on the other end"}},
	}}
}

// HandOff lists ready-to-run commands of deeper tools for the flow: a
// capture on the interfaces involved, conntrack events, and pwru and retis
// (eBPF tracers of the packet's way through the kernel) where it has BTF.
func HandOff(e *evidence.Evidence, prefix []string) []string {
	return HandOffVia(e, fix.Prefixed(prefix), fix.Prefixed(nil))
}

// HandOffVia is HandOff with the commands rendered by render, and the
// tracers (which see every namespace of the kernel) by host.
func HandOffVia(e *evidence.Evidence, render, host fix.Render) []string {
	f := e.Flow
	ifaces := []string{}
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil {
			continue
		}
		for _, i := range []string{p.Ingress, p.Egress} {
			if i != "" && !contains(ifaces, i) {
				ifaces = append(ifaces, i)
			}
		}
	}
	pre := func(w ...string) string { return render(w) }
	var out []string
	filter := evidence.TcpdumpFilter(f)
	if len(ifaces) == 0 {
		out = append(out, pre("tcpdump", "-ni", "any", filter))
	}
	for _, i := range ifaces {
		out = append(out, pre("tcpdump", "-ni", i, filter))
	}
	ct := []string{"conntrack", "-E", "-p", f.Proto.String(), "--orig-src", f.Src.Addr().String(), "--orig-dst", f.Dst.Addr().String()}
	if f.Proto.HasPorts() && f.Src.Port() != 0 && f.Dst.Port() != 0 {
		ct = append(ct, "--sport", fmt.Sprint(f.Src.Port()), "--dport", fmt.Sprint(f.Dst.Port()))
	}
	out = append(out, pre(ct...))
	if e.Host != nil && e.Host.BTF {
		out = append(out, host([]string{"pwru", "--output-tuple", filter})+"   # kernel drop reasons (needs BTF: present)")
		// retis fails when a collector named with -c cannot start, and ct
		// needs nf_conntrack: ask for it only where conntrack answered.
		collectors := "skb,skb-drop,skb-tracking"
		if ok(e.Conntrack) {
			collectors += ",ct"
		}
		out = append(out, host([]string{"retis", "collect", "-c", collectors, "-f", filter})+"   # the flow through the stack: drop reasons, conntrack state (needs BTF: present)")
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// ---- MTU black hole, from packets ----

// mtuLarge is the IP length above which a packet may not cross every link:
// IPv6 guarantees 1280 bytes on every link (RFC 8200 section 5) and IPv4
// links below that are rare, while a full Ethernet-sized packet (1500)
// does not fit a tunnel, PPPoE (1492) or a 1280-byte link.
const mtuLarge = 1280

// mtuTimerGap tells a retransmission from a burst: TCP sends the same
// segment again only when its retransmission timer fires, after at least
// 200 ms on Linux (TCP_RTO_MIN, include/net/tcp.h) and longer elsewhere,
// while the segments of a burst leave microseconds apart.
const mtuTimerGap = 150 * time.Millisecond

// mtuStall is the packet proof of a path MTU black hole, visible on the
// host that sends the large segments (or a router they cross): a TCP
// segment longer than mtuLarge sent again, after the retransmission timer,
// at the same length on the same interface, nothing from the other end
// between the copies and no packet of that length ever answered, while
// smaller packets of that direction were.
type mtuStall struct {
	reply            bool                      // the direction of the large segments
	copies           []evidence.CapturedPacket // the same length again after a timer, in order: 2 or more
	answered, answer evidence.CapturedPacket   // the largest smaller packet of that direction the other end answered, and its answer
	frag             []evidence.CapturedPacket // ICMP fragmentation-needed / packet-too-big about that direction
	fragMTU          int                       // the smallest MTU they report; 0 when none says
	left             int                       // packets of that length and direction that left this host
	stalls           int                       // chains like copies in the window (a retried flow stalls each time)
}

// dst is where the large segments go.
func (s *mtuStall) dst(e *evidence.Evidence) netip.Addr {
	if s.reply {
		return e.Flow.Src.Addr()
	}
	return e.Flow.Dst.Addr()
}

// length is the IP length of the segment that vanishes.
func (s *mtuStall) length() int { return s.copies[0].Len }

// fragNeeded returns the ICMP errors that say a packet of the flow's
// direction reply was too big for a link (IPv4 fragmentation needed, IPv6
// packet too big), and the smallest MTU they report. Capture marks an error
// Reply when it quotes a request, so errors about direction reply have the
// opposite Reply.
func fragNeeded(l *evidence.LiveEvidence, reply bool) ([]evidence.CapturedPacket, int) {
	var out []evidence.CapturedPacket
	low := 0
	for _, p := range l.Packets {
		if p.OtherHost || p.Reply == reply || !(strings.HasPrefix(p.ICMP, "unreachable (frag needed") || strings.HasPrefix(p.ICMP, "packet too big")) {
			continue
		}
		out = append(out, p)
		if i := strings.Index(p.ICMP, "mtu "); i >= 0 {
			digits := strings.TrimRight(p.ICMP[i+4:], ")")
			if m, err := strconv.Atoi(digits); err == nil && m > 0 && (low == 0 || m < low) {
				low = m
			}
		}
	}
	return out, low
}

// findMTUStall looks for the proof in either direction of a TCP flow; nil
// when the packets do not show it, or when an ICMP fragmentation-needed
// arrived and the segments did shrink (path MTU discovery works: whatever
// stalls the flow, it is not a black hole).
func findMTUStall(e *evidence.Evidence) *mtuStall {
	l := live(e)
	if l == nil || e.Flow.Proto != flow.TCP {
		return nil
	}
	var best *mtuStall
	for _, reply := range []bool{false, true} {
		if s := mtuStallIn(l, reply); s != nil && (best == nil || len(s.copies) > len(best.copies)) {
			best = s
		}
	}
	return best
}

func mtuStallIn(l *evidence.LiveEvidence, reply bool) *mtuStall {
	// The flow's own TCP packets, in the order the capture saw them;
	// indices below are into this slice.
	var pk []evidence.CapturedPacket
	for _, p := range l.Packets {
		if !p.OtherHost && p.ICMP == "" && p.Proto == uint8(flow.TCP) {
			pk = append(pk, p)
		}
	}
	fromPeer := func(i int) bool { return pk[i].Reply != reply }
	// next[i] is the first packet of the other end after i, or -1.
	next := make([]int, len(pk))
	for i, n := len(pk)-1, -1; i >= 0; i-- {
		next[i] = n
		if fromPeer(i) {
			n = i
		}
	}

	// Chains of one length on one interface, one way: a copy joins the
	// chain when nothing came from the other end since the last one; it
	// counts as sent again when the retransmission timer separates them,
	// and stands in for the last one when it belongs to the same burst.
	type key struct {
		iface string
		dir   evidence.PacketDir
		n     int
	}
	chains := map[key][]int{}
	var proofs [][]int
	// Whether a copy was finally answered (ordinary loss, not the size) is
	// decided below for every packet of that length at once.
	closeChain := func(c []int) {
		if len(c) >= 2 {
			proofs = append(proofs, c)
		}
	}
	for i, p := range pk {
		if fromPeer(i) || p.Len <= mtuLarge {
			continue
		}
		k := key{p.Iface, p.Dir, p.Len}
		c := chains[k]
		switch {
		case len(c) == 0:
			chains[k] = []int{i}
		case next[c[len(c)-1]] >= 0 && next[c[len(c)-1]] < i:
			closeChain(c)
			chains[k] = []int{i}
		case p.Time.Sub(pk[c[len(c)-1]].Time) >= mtuTimerGap:
			chains[k] = append(c, i)
		default:
			c[len(c)-1] = i // the same burst
		}
	}
	for _, c := range chains {
		closeChain(c)
	}
	if len(proofs) == 0 {
		return nil
	}
	// answered: the other end spoke right after packet i (its reset is no
	// answer; a FIN may acknowledge data, so it is one).
	answered := func(i int) bool {
		return !fromPeer(i) && i+1 < len(pk) && fromPeer(i+1) && !strings.Contains(pk[i+1].Flags, "R")
	}
	// The stall shown is the longest; among equals, one that a smaller
	// answered packet precedes (a window that opens mid-connection misses
	// the first one's handshake), so the evidence reads in the order it
	// happened; then the earliest.
	answeredBefore := func(c []int) bool {
		for i := 0; i < c[0]; i++ {
			if answered(i) && pk[i].Len < pk[c[0]].Len {
				return true
			}
		}
		return false
	}
	best := proofs[0]
	for _, c := range proofs[1:] {
		switch {
		case len(c) != len(best):
			if len(c) > len(best) {
				best = c
			}
		case answeredBefore(c) != answeredBefore(best):
			if answeredBefore(c) {
				best = c
			}
		case c[0] < best[0]:
			best = c
		}
	}
	s := &mtuStall{reply: reply}
	for _, i := range best {
		s.copies = append(s.copies, pk[i])
	}
	n := s.length()
	for _, c := range proofs {
		if p := pk[c[0]]; p.Len == n && p.Iface == s.copies[0].Iface && p.Dir == s.copies[0].Dir {
			s.stalls++
		}
	}

	// Smaller packets of the same direction must have been answered. If
	// nothing was answered, everything vanishes and it is not the size; if
	// a packet of this very length was answered, a copy finally got through
	// or that size passes: loss, not a black hole. (A longer one says
	// nothing: with TSO/GSO the sender's capture sees super-packets that
	// are cut up after it.)
	// The one shown is the largest before the stall when there is one,
	// so the evidence reads in the order it happened.
	found, before := false, false
	better := func(i int) bool {
		switch {
		case !found:
			return true
		case (i < best[0]) != before:
			return i < best[0]
		}
		return pk[i].Len > s.answered.Len
	}
	for i, p := range pk {
		if !answered(i) {
			continue
		}
		if p.Len == n {
			return nil
		}
		if p.Len < n && better(i) {
			s.answered, s.answer, found, before = p, pk[i+1], true, i < best[0]
		}
	}
	if !found {
		return nil
	}

	s.frag, s.fragMTU = fragNeeded(l, reply)
	if len(s.frag) > 0 {
		// The error arrived: a copy at the same size after it means this
		// host ignores it; none means the segments shrank and path MTU
		// discovery works, so whatever stalls the flow is not this.
		last := s.copies[len(s.copies)-1]
		if !last.Time.After(s.frag[0].Time) || (s.fragMTU > 0 && n <= s.fragMTU) {
			return nil
		}
	}
	for _, p := range pk {
		if p.Reply == reply && p.Dir == "out" && p.Len == n {
			s.left++
		}
	}
	return s
}

// mtuStallFinding words the proof.
func mtuStallFinding(e *evidence.Evidence, s *mtuStall) Finding {
	n, dst := s.length(), s.dst(e)
	first, last := s.copies[0], s.copies[len(s.copies)-1]
	ev := []Line{
		{Probe: "live", Text: s.answered.Text + fmt.Sprintf("   ← %d bytes: answered", s.answered.Len)},
		{Probe: "live", Text: s.answer.Text + "   ← the other end answers"},
		{Probe: "live", Text: first.Text + fmt.Sprintf("   ← %d bytes", n)},
	}
	for i, p := range s.copies[1:] {
		if i == 3 {
			ev = append(ev, Line{Probe: "live", Text: fmt.Sprintf("… %d more copies", len(s.copies)-4)})
			break
		}
		ev = append(ev, Line{Probe: "live", Text: p.Text + fmt.Sprintf("   ← the same %d bytes again after %s, nothing came back", n, p.Time.Sub(s.copies[i].Time).Round(time.Millisecond))})
	}
	way := "left by"
	if first.Dir == "in" {
		way = "came in on"
	}
	icmp := "no ICMP fragmentation-needed came back"
	if len(s.frag) > 0 {
		icmp = fmt.Sprintf("%d ICMP fragmentation-needed arrived (%s) and the size did not change", len(s.frag), s.frag[0].ICMP)
	}
	again := ""
	if s.stalls > 1 {
		again = fmt.Sprintf(" (and so in %d connections of the window)", s.stalls)
	}
	ev = append(ev, Line{Probe: "live", Text: fmt.Sprintf("the same %d-byte segment %s %s %d times over %s with nothing from the other end between%s; packets up to %d bytes were answered; %s",
		n, way, first.Iface, len(s.copies), last.Time.Sub(first.Time).Round(time.Millisecond), again, s.answered.Len, icmp)})
	for _, p := range s.frag {
		ev = append(ev, Line{Probe: "live", Text: p.Text})
	}
	if first.Dir == "in" && s.left == 0 {
		ev = append(ev, Line{Probe: "live", Text: fmt.Sprintf("none of them left this host: it drops the %d-byte segments itself (compare the MTU of its way out)", n)})
	}
	if l := live(e); l != nil && l.Deltas["Tcp:RetransSegs"] > 0 {
		ev = append(ev, Line{Probe: "live", Text: fmt.Sprintf("Tcp RetransSegs %+d over the window", l.Deltas["Tcp:RetransSegs"])})
	}

	hdr := 28 // IPv4 + ICMP headers, for ping's -s
	if dst.Is6() {
		hdr = 48
	}
	ping := func(size int, why string) string {
		return evidence.Command("ping", "-M", "do", "-s", fmt.Sprint(size-hdr), "-c", "3", dst.String()) + "   # " + why
	}
	f := Finding{
		ID:       "mtu_blackhole",
		Severity: Critical,
		Evidence: ev,
	}
	if len(s.frag) > 0 {
		f.Title = fmt.Sprintf("Proven on the wire: %d-byte segments to %s are sent again and again although ICMP fragmentation-needed (mtu %d) arrives: this host does not act on it", n, dst, s.fragMTU)
		f.Fix = &fix.Fix{Summary: "Find out why this host ignores fragmentation-needed",
			Advice: "The ICMP reaches this host's interface (a capture sees it before the firewall) but the segments keep their size: an input rule may drop ICMP, " +
				"net.ipv4.ip_no_pmtu_disc may be set, or the reported MTU is below net.ipv4.route.min_pmtu. Allow ICMP destination-unreachable/fragmentation-needed " +
				"(IPv6: packet-too-big) in, or clamp the TCP MSS on the path.",
			Prove: []string{evidence.Command("ip", "route", "get", dst.String()) + "   # on this host: a learned path MTU shows as \"cache expires … mtu\"",
				evidence.Command("sysctl", "net.ipv4.ip_no_pmtu_disc", "net.ipv4.route.min_pmtu"),
				evidence.Command("nft", "list", "ruleset") + "   # rules that drop icmp on input"}}
		return f
	}
	f.Title = fmt.Sprintf("Proven on the wire: %d-byte segments to %s vanish while smaller packets pass, and no ICMP fragmentation-needed comes back (a path MTU black hole)", n, dst)
	stopgap := "ip route add " + dst.String() + " via GATEWAY mtu lock 1280"
	if sp := sender(e); sp != nil && sp.Decision.Dev != "" {
		w := []string{"ip", "route", "add", dst.String()}
		if sp.Decision.Gateway.IsValid() {
			w = append(w, "via", sp.Decision.Gateway.String())
		}
		stopgap = evidence.Command(append(w, "dev", sp.Decision.Dev, "mtu", "lock", "1280")...)
	}
	f.Fix = &fix.Fix{Summary: "Let path MTU discovery work on the path, or clamp the MSS there",
		Advice: fmt.Sprintf("The %d-byte segments are dropped on the way to %s by a link with a smaller MTU, and the ICMP fragmentation-needed that should tell this host is filtered, so it never learns. "+
			"On the router in front of the smaller link: allow ICMP destination-unreachable/fragmentation-needed (type 3 code 4; IPv6 packet-too-big, type 2) out of and through it, "+
			"or clamp the TCP MSS to that link (nftables: tcp flags syn tcp option maxseg size set rt mtu). "+
			"A stopgap on this host for this destination only: %s.", n, dst, stopgap),
		Caveat: "The stopgap fixes only what this host sends; every other host whose traffic crosses that link stalls the same way until the path is fixed.",
		Prove: []string{ping(n, fmt.Sprintf("from this host: %d bytes with DF set get no answer and no error", n)),
			ping(mtuLarge, "from this host: 1280 bytes get answered")}}
	return f
}

// liveOnLinkDetour: this host's route sends what it sends to a peer on the
// egress interface's own subnet via a gateway, and the frames confirm it:
// they are addressed to the gateway's MAC (known from its neighbour entry)
// or at least not to the MAC the peer's own frames come from. Without the
// route's gateway nothing is concluded: an on-link route hands frames to the
// peer itself by definition.
func liveOnLinkDetour(e *evidence.Evidence) []Finding {
	l, sp := live(e), sender(e)
	if l == nil || e.Host == nil || sp == nil || !sp.Decision.Gateway.IsValid() || sp.Egress == "" {
		return nil
	}
	pr, gw := farAddr(e), sp.Decision.Gateway
	p, found := firstPacket(l, func(p evidence.CapturedPacket) bool {
		return p.Dir == "out" && p.Dst.Addr() == pr && p.Iface == sp.Egress && p.DstMAC != ""
	})
	if !found {
		return nil
	}
	var sub netip.Prefix
	for _, c := range e.Host.Connected(pr) {
		if c.Iface.Name == p.Iface {
			sub = c.Prefix.Masked()
		}
	}
	if !sub.IsValid() {
		return nil // not on-link: the gateway is the right next hop
	}
	var proof string
	if e.Neighbours != nil {
		for _, n := range e.Neighbours.Entries {
			if n.Dev != p.Iface || n.MAC == "" {
				continue
			}
			if n.Addr == pr && strings.EqualFold(n.MAC, p.DstMAC) {
				return nil // handed to the peer itself after all
			}
			if n.Addr == gw && strings.EqualFold(n.MAC, p.DstMAC) {
				proof = n.Text + "   ← the gateway's MAC"
			}
		}
	}
	if proof == "" {
		q, ok := firstPacket(l, func(q evidence.CapturedPacket) bool {
			return q.Dir == "in" && q.Src.Addr() == pr && q.Iface == p.Iface && q.SrcMAC != ""
		})
		if !ok || strings.EqualFold(q.SrcMAC, p.DstMAC) {
			return nil // nothing to tell the gateway from the peer
		}
		proof = q.Text + "   ← " + pr.String() + "'s own frames come from " + q.SrcMAC
	}
	n := countPackets(l, func(q evidence.CapturedPacket) bool {
		return q.Dir == "out" && q.Dst.Addr() == pr && strings.EqualFold(q.DstMAC, p.DstMAC)
	})
	return []Finding{{
		ID:    "missing_link_route",
		Title: fmt.Sprintf("Packets to %s, on %s's own subnet, leave in frames for the gateway %s (%s), not for %s itself", pr, p.Iface, gw, p.DstMAC, pr),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: p.Text + "   ← frame to " + p.DstMAC + " (the gateway " + gw.String() + "), not to " + pr.String()},
			{Probe: evidence.ProbeLive, Text: proof},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d packet(s) to %s left by %s in frames for %s over the window", n, pr, p.Iface, p.DstMAC)},
			{Probe: evidence.ProbeHost, Text: fmt.Sprintf("%s is on %s's own subnet %s", pr, p.Iface, sub)},
		},
	}}
}

// liveECMPSplit: on a router whose routes for the flow have several next
// hops, the request came in from one side and the reply leaves towards
// another next hop: the hashing that ecmp_multipath warns about, seen
// splitting this flow.
func liveECMPSplit(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil {
		return nil
	}
	req, ok1 := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" && p.ICMP == "" })
	rep, ok2 := firstPacket(l, func(p evidence.CapturedPacket) bool { return p.Reply && p.Dir == "out" && p.ICMP == "" })
	if !ok1 || !ok2 || req.Iface == rep.Iface {
		return nil
	}
	p := okPath(e.Reply)
	if p == nil || p.FIB == nil {
		return nil
	}
	var devs []string
	for _, nh := range p.FIB.Nexthops {
		if !nh.Dead {
			devs = append(devs, nh.Dev)
		}
	}
	if len(devs) < 2 || !contains(devs, rep.Iface) || !contains(devs, req.Iface) {
		return nil // a request from a side that is no next hop is not ECMP's doing
	}
	return []Finding{{
		ID:    "ecmp_multipath",
		Title: fmt.Sprintf("ECMP splits the flow: the request came in on %s, the reply leaves by %s, one of %d next hops", req.Iface, rep.Iface, len(devs)),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: req.Text + "   ← the request comes in"},
			{Probe: evidence.ProbeLive, Text: rep.Text + "   ← the reply is hashed to another next hop"},
		},
	}}
}

// liveUnrepliedMiddle: a router or firewall forwards the request again and
// again and no packet of the reply crosses it in the window: the reply
// returns another way (the playbook's firewall pair), which conntrack's
// [UNREPLIED] says from its side.
func liveUnrepliedMiddle(e *evidence.Evidence) []Finding {
	l := live(e)
	if l == nil || role(e) != evidence.RoleMiddle {
		return nil
	}
	in := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	out := countPackets(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "out" })
	replies := countPackets(l, func(p evidence.CapturedPacket) bool { return p.Reply })
	if in < 2 || out < 2 || replies > 0 {
		return nil
	}
	a, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "in" })
	b, _ := firstPacket(l, func(p evidence.CapturedPacket) bool { return !p.Reply && p.Dir == "out" })
	return []Finding{{
		ID:    "conntrack_unreplied",
		Title: fmt.Sprintf("This host forwards the request (in on %s, out by %s) and no reply comes back through it: it is dropped further on or returns another way", a.Iface, b.Iface),
		Evidence: []Line{
			{Probe: evidence.ProbeLive, Text: a.Text},
			{Probe: evidence.ProbeLive, Text: b.Text},
			{Probe: evidence.ProbeLive, Text: fmt.Sprintf("%d request packet(s) in, %d forwarded, no packet of the reply over the window", in, out)},
		},
		Fix: &fix.Fix{Summary: "Find where the reply goes instead",
			Advice: "The reply is dropped further on or returns by another path: capture on the far end (does it answer?) and on the other path's devices, and compare the route back on the far end and the routers between."},
	}}
}

package playbook

// The MTU black hole: large packets vanish while small ones pass. Proven
// from the flow's packets, suspected from interfaces of this host with
// different MTUs.

import (
	"asym/evidence"
	"asym/fix"
	"asym/flow"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// mtuBlackhole: large packets vanish while small ones pass. Proven from
// the flow's packets (findMTUStall: the sender sends the same large segment
// again and again, unanswered, with no ICMP fragmentation-needed back),
// which is the usual case: the smaller link is between hosts, and nothing
// on this host shows it. Suspected from this host's own interfaces when the
// two directions cross different MTUs; that stays as supporting evidence.
func mtuBlackhole(e *evidence.Evidence) []Finding {
	mismatch := mtuMismatch(e)
	if s := findMTUStall(e); s != nil {
		f := mtuStallFinding(e, s)
		if mismatch != nil {
			f.Evidence = append(f.Evidence, mismatch.Evidence...)
		}
		return []Finding{f}
	}
	if mismatch == nil {
		return nil
	}
	if l := live(e); l != nil {
		for _, reply := range []bool{false, true} {
			if frag, _ := fragNeeded(l, reply); len(frag) > 0 {
				mismatch.Evidence = append(mismatch.Evidence,
					Line{Probe: evidence.ProbeLive, Text: frag[0].Text},
					Line{Probe: evidence.ProbeLive, Text: "ICMP fragmentation-needed for the flow is seen here and no segment is sent again at the old size: path MTU discovery works on this path, so the mismatch alone does not stall the flow"})
				break
			}
		}
	}
	return []Finding{*mismatch}
}

// mtuMismatch: the request and the reply cross interfaces of this host with
// different MTUs.
func mtuMismatch(e *evidence.Evidence) *Finding {
	req, rep := okPath(e.Request), okPath(e.Reply)
	if req == nil || rep == nil {
		return nil
	}
	type pair struct{ in, out, what string }
	var pairs []pair
	switch role(e) {
	case evidence.RoleServer:
		pairs = []pair{{req.Ingress, rep.Egress, "request in / reply out"}}
	case evidence.RoleMiddle:
		pairs = []pair{{req.Ingress, rep.Egress, "request in / reply out"}, {req.Egress, rep.Ingress, "request out / reply in"}}
	}
	for _, p := range pairs {
		if p.in == "" || p.out == "" || p.in == p.out {
			continue
		}
		a, b := mtuOf(e, p.in), mtuOf(e, p.out)
		if a == 0 || b == 0 || a == b {
			continue
		}
		ev := []Line{{Probe: evidence.ProbeNeighbours, Text: fmt.Sprintf("%s: %s has mtu %d, %s has mtu %d", p.what, p.in, a, p.out, b)}}
		for _, pv := range []*evidence.PathView{req, rep} {
			if pv.Decision.MTU != 0 {
				ev = append(ev, Line{Probe: pv.Probe, Text: "cached path MTU: " + pv.Decision.Text})
			}
		}
		return &Finding{
			ID:       MTUBlackhole,
			Title:    fmt.Sprintf("The two directions cross interfaces with different MTUs (%s %d, %s %d)", p.in, a, p.out, b),
			Evidence: ev,
			Fix: &fix.Fix{Summary: "Make the MTU consistent or clamp the MSS",
				Advice: "Large packets may vanish on the smaller path if ICMP fragmentation-needed is filtered: test with DF pings of the larger size from both ends, allow ICMP type 3 code 4, or clamp the TCP MSS to the smaller MTU. asym check --watch proves it from the flow's packets while the failure is reproduced.",
				Prove: []string{evidence.Command("ping", "-M", "do", "-s", fmt.Sprint(max(a, b)-28), "-c", "3", e.Flow.Src.Addr().String()) + "   # from this host: large packets with DF set",
					evidence.Command("tracepath", "-n", e.Flow.Src.Addr().String())}},
		}
	}
	return nil
}

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
		if p.OtherHost || p.Reply == reply || !p.ICMPMsg.TooBig() {
			continue
		}
		out = append(out, p)
		if m := p.ICMPMsg.MTU; m > 0 && (low == 0 || m < low) {
			low = m
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

// mtuStallIn looks for the proof in one direction (reply: the server's
// segments); nil when the packets do not show it.
func mtuStallIn(l *evidence.LiveEvidence, reply bool) *mtuStall {
	segs := tcpSegments(l, reply)
	chains := segs.retransmissions()
	if len(chains) == 0 {
		return nil
	}
	shown := segs.stallToShow(chains)
	s := &mtuStall{reply: reply, copies: segs.packets(shown), stalls: segs.stallsLike(chains, shown)}
	answered, ok := segs.smallerAnswered(shown)
	if !ok {
		return nil
	}
	s.answered, s.answer = segs.pk[answered], segs.pk[answered+1]
	s.frag, s.fragMTU = fragNeeded(l, reply)
	if s.fragNeededHeeded() {
		return nil
	}
	s.left = segs.left(s.length())
	return s
}

// segments are the flow's own TCP packets in the order the capture saw
// them, seen from the end that sends the direction reply; a chain of
// copies is a list of indices into pk.
type segments struct {
	pk    []evidence.CapturedPacket
	reply bool
	next  []int // next[i] is the first packet of the other end after i, or -1
}

func tcpSegments(l *evidence.LiveEvidence, reply bool) *segments {
	s := &segments{reply: reply}
	for _, p := range l.Packets {
		if !p.OtherHost && !p.IsICMP() && p.Proto == uint8(flow.TCP) {
			s.pk = append(s.pk, p)
		}
	}
	s.next = make([]int, len(s.pk))
	for i, n := len(s.pk)-1, -1; i >= 0; i-- {
		s.next[i] = n
		if s.fromPeer(i) {
			n = i
		}
	}
	return s
}

// fromPeer reports whether packet i came from the other end.
func (s *segments) fromPeer(i int) bool { return s.pk[i].Reply != s.reply }

// peerSpokeBetween reports whether the other end sent anything after
// packet i and before packet j.
func (s *segments) peerSpokeBetween(i, j int) bool { return s.next[i] >= 0 && s.next[i] < j }

// answered reports whether the other end spoke right after packet i (its
// reset is no answer; a FIN may acknowledge data, so it is one).
func (s *segments) answered(i int) bool {
	return !s.fromPeer(i) && i+1 < len(s.pk) && s.fromPeer(i+1) && !s.pk[i+1].RST()
}

func (s *segments) packets(chain []int) []evidence.CapturedPacket {
	out := make([]evidence.CapturedPacket, len(chain))
	for k, i := range chain {
		out[k] = s.pk[i]
	}
	return out
}

// retransmissions returns the chains of large segments sent again: one
// length on one interface, one way. A copy joins its chain when nothing
// came from the other end since the chain's last copy; it counts as sent
// again when the retransmission timer separates them, and stands in for
// the last one when it belongs to the same burst. Whether a copy was
// finally answered (ordinary loss, not the size) is for smallerAnswered
// to decide, for every packet of that length at once.
func (s *segments) retransmissions() [][]int {
	type key struct {
		iface string
		dir   evidence.PacketDir
		n     int
	}
	open := map[key][]int{}
	var chains [][]int
	for i, p := range s.pk {
		if s.fromPeer(i) || p.Len <= mtuLarge {
			continue
		}
		k := key{p.Iface, p.Dir, p.Len}
		c := open[k]
		switch {
		case len(c) == 0:
			open[k] = []int{i}
		case s.peerSpokeBetween(c[len(c)-1], i):
			chains = append(chains, c)
			open[k] = []int{i}
		case p.Time.Sub(s.pk[c[len(c)-1]].Time) >= mtuTimerGap:
			open[k] = append(c, i)
		default:
			c[len(c)-1] = i // the same burst
		}
	}
	for _, c := range open {
		chains = append(chains, c)
	}
	return slices.DeleteFunc(chains, func(c []int) bool { return len(c) < 2 })
}

// stallToShow picks the stall the evidence shows: the one that
// showsBetter than every other.
func (s *segments) stallToShow(chains [][]int) []int {
	shown := chains[0]
	for _, c := range chains[1:] {
		if s.showsBetter(c, shown) {
			shown = c
		}
	}
	return shown
}

// showsBetter orders stalls: the longest first; among equals, one that a
// smaller answered packet precedes (a window that opens mid-connection
// misses the first one's handshake), so the evidence reads in the order it
// happened; then the earliest.
func (s *segments) showsBetter(a, b []int) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	if x, y := s.answeredBefore(a), s.answeredBefore(b); x != y {
		return x
	}
	return a[0] < b[0]
}

// answeredBefore reports whether a smaller packet was answered before the
// chain's first copy.
func (s *segments) answeredBefore(chain []int) bool {
	for i := 0; i < chain[0]; i++ {
		if s.answered(i) && s.pk[i].Len < s.pk[chain[0]].Len {
			return true
		}
	}
	return false
}

// stallsLike counts the chains of the shown one's length, interface and
// direction: a retried flow stalls each time.
func (s *segments) stallsLike(chains [][]int, shown []int) int {
	first, n := s.pk[shown[0]], 0
	for _, c := range chains {
		if p := s.pk[c[0]]; p.Len == first.Len && p.Iface == first.Iface && p.Dir == first.Dir {
			n++
		}
	}
	return n
}

// smallerAnswered finds the answered packet the evidence shows; ok is
// false when the packets do not prove a black hole. Smaller packets of the
// same direction must have been answered: if nothing was, everything
// vanishes and it is not the size; if a packet of the stall's very length
// was, a copy finally got through or that size passes: loss, not a black
// hole. (A longer one says nothing: with TSO/GSO the sender's capture sees
// super-packets that are cut up after it.)
func (s *segments) smallerAnswered(stall []int) (shown int, ok bool) {
	n := s.pk[stall[0]].Len
	shown = -1
	for i, p := range s.pk {
		if !s.answered(i) || p.Len > n {
			continue
		}
		if p.Len == n {
			return -1, false
		}
		if shown < 0 || s.readsInOrder(i, shown, stall[0]) {
			shown = i
		}
	}
	return shown, shown >= 0
}

// readsInOrder reports whether answered packet i is a better one to show
// than answered packet j next to a stall that starts at start: one before
// the stall, so the evidence reads in the order it happened; then the
// larger.
func (s *segments) readsInOrder(i, j, start int) bool {
	if (i < start) != (j < start) {
		return i < start
	}
	return s.pk[i].Len > s.pk[j].Len
}

// left counts the packets of the direction and length that left this host.
func (s *segments) left(n int) int {
	out := 0
	for _, p := range s.pk {
		if p.Reply == s.reply && p.Dir == evidence.DirOut && p.Len == n {
			out++
		}
	}
	return out
}

// fragNeededHeeded reports whether an ICMP fragmentation-needed arrived and
// this host acted on it: no copy at the old size after it (the segments
// shrank: path MTU discovery works), or it reports an MTU the segments fit.
// Whatever stalls the flow then, it is not a black hole. A copy at the same
// size after the error means this host ignores it, which stays a finding.
func (s *mtuStall) fragNeededHeeded() bool {
	if len(s.frag) == 0 {
		return false
	}
	last := s.copies[len(s.copies)-1]
	return !last.Time.After(s.frag[0].Time) || (s.fragMTU > 0 && s.length() <= s.fragMTU)
}

// mtuStallFinding words the proof.
func mtuStallFinding(e *evidence.Evidence, s *mtuStall) Finding {
	n, dst := s.length(), s.dst(e)
	f := Finding{ID: MTUBlackhole, Severity: Critical, Evidence: stallEvidence(e, s)}
	if len(s.frag) > 0 {
		f.Title = fmt.Sprintf("Proven on the wire: %d-byte segments to %s are sent again and again although ICMP fragmentation-needed (mtu %d) arrives: this host does not act on it", n, dst, s.fragMTU)
		f.Fix = fragIgnoredFix(dst)
		return f
	}
	f.Title = fmt.Sprintf("Proven on the wire: %d-byte segments to %s vanish while smaller packets pass, and no ICMP fragmentation-needed comes back (a path MTU black hole)", n, dst)
	f.Fix = blackholeFix(e, n, dst)
	return f
}

// stallEvidence shows the stall in the order it happened: the answered
// packet and its answer, the large segment and (up to three of) its
// copies, then what they add up to.
func stallEvidence(e *evidence.Evidence, s *mtuStall) []Line {
	n := s.length()
	first, last := s.copies[0], s.copies[len(s.copies)-1]
	ev := []Line{
		{Probe: evidence.ProbeLive, Text: s.answered.Text + fmt.Sprintf("   ← %d bytes: answered", s.answered.Len)},
		{Probe: evidence.ProbeLive, Text: s.answer.Text + "   ← the other end answers"},
		{Probe: evidence.ProbeLive, Text: first.Text + fmt.Sprintf("   ← %d bytes", n)},
	}
	for i, p := range s.copies[1:] {
		if i == 3 {
			ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("… %d more copies", len(s.copies)-4)})
			break
		}
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: p.Text + fmt.Sprintf("   ← the same %d bytes again after %s, nothing came back", n, p.Time.Sub(s.copies[i].Time).Round(time.Millisecond))})
	}
	way := "left by"
	if first.Dir == evidence.DirIn {
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
	ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("the same %d-byte segment %s %s %d times over %s with nothing from the other end between%s; packets up to %d bytes were answered; %s",
		n, way, first.Iface, len(s.copies), last.Time.Sub(first.Time).Round(time.Millisecond), again, s.answered.Len, icmp)})
	for _, p := range s.frag {
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: p.Text})
	}
	if first.Dir == evidence.DirIn && s.left == 0 {
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("none of them left this host: it drops the %d-byte segments itself (compare the MTU of its way out)", n)})
	}
	if l := live(e); l != nil && l.Deltas[evidence.CounterRetrans] > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeLive, Text: fmt.Sprintf("Tcp RetransSegs %+d over the window", l.Deltas[evidence.CounterRetrans])})
	}
	return ev
}

// fragIgnoredFix is for a host that receives fragmentation-needed and
// keeps sending at the old size.
func fragIgnoredFix(dst netip.Addr) *fix.Fix {
	return &fix.Fix{Summary: "Find out why this host ignores fragmentation-needed",
		Advice: "The ICMP reaches this host's interface (a capture sees it before the firewall) but the segments keep their size: an input rule may drop ICMP, " +
			"net.ipv4.ip_no_pmtu_disc may be set, or the reported MTU is below net.ipv4.route.min_pmtu. Allow ICMP destination-unreachable/fragmentation-needed " +
			"(IPv6: packet-too-big) in, or clamp the TCP MSS on the path.",
		Prove: []string{evidence.Command("ip", "route", "get", dst.String()) + "   # on this host: a learned path MTU shows as \"cache expires … mtu\"",
			evidence.Command("sysctl", "net.ipv4.ip_no_pmtu_disc", "net.ipv4.route.min_pmtu"),
			evidence.Command("nft", "list", "ruleset") + "   # rules that drop icmp on input"}}
}

// blackholeFix is for n-byte segments to dst that vanish on the path with
// no word back: the fix is on the path; the stopgap here is a route with
// a smaller MTU, proposed, never applied.
func blackholeFix(e *evidence.Evidence, n int, dst netip.Addr) *fix.Fix {
	hdr := 28 // IPv4 + ICMP headers, for ping's -s
	if dst.Is6() {
		hdr = 48
	}
	ping := func(size int, why string) string {
		return evidence.Command("ping", "-M", "do", "-s", fmt.Sprint(size-hdr), "-c", "3", dst.String()) + "   # " + why
	}
	stopgap := "ip route add " + dst.String() + " via GATEWAY mtu lock 1280"
	if sp := sender(e); sp != nil && sp.Decision.Dev != "" {
		w := []string{"ip", "route", "add", dst.String()}
		if sp.Decision.Gateway.IsValid() {
			w = append(w, "via", sp.Decision.Gateway.String())
		}
		stopgap = evidence.Command(append(w, "dev", sp.Decision.Dev, "mtu", "lock", "1280")...)
	}
	return &fix.Fix{Summary: "Let path MTU discovery work on the path, or clamp the MSS there",
		Advice: fmt.Sprintf("The %d-byte segments are dropped on the way to %s by a link with a smaller MTU, and the ICMP fragmentation-needed that should tell this host is filtered, so it never learns. "+
			"On the router in front of the smaller link: allow ICMP destination-unreachable/fragmentation-needed (type 3 code 4; IPv6 packet-too-big, type 2) out of and through it, "+
			"or clamp the TCP MSS to that link (nftables: tcp flags syn tcp option maxseg size set rt mtu). "+
			"A stopgap on this host for this destination only: %s.", n, dst, stopgap),
		Caveat: "The stopgap fixes only what this host sends; every other host whose traffic crosses that link stalls the same way until the path is fixed.",
		Prove: []string{ping(n, fmt.Sprintf("from this host: %d bytes with DF set get no answer and no error", n)),
			ping(mtuLarge, "from this host: 1280 bytes get answered")}}
}

// mtuOwnICMP: a router in front of a smaller link that drops the ICMP it
// must send. A packet of the flow that comes in on the larger link with DF
// set does not fit the smaller one: the router must answer "fragmentation
// needed" (IPv6: "packet too big"), and its own output rules drop that
// answer, so the sender never learns and sends the same segment again and
// again. Proven from this host's state when the rule has dropped such
// errors and the kernel counted packets it could not forward for their
// size; suspected from the rule and the MTUs alone.
func mtuOwnICMP(e *evidence.Evidence) []Finding {
	if role(e) != evidence.RoleMiddle || !ok(e.Firewall) {
		return nil
	}
	big, small, dir := shrinkingHop(e)
	if dir == "" {
		return nil
	}
	var drops []evidence.FirewallRule
	for _, r := range e.Firewall.Rules {
		if r.Kind == evidence.RuleICMPError && r.Drops() && (r.Hook == "output" || r.Hook == "postrouting") {
			drops = append(drops, r)
		}
	}
	if len(drops) == 0 {
		return nil
	}
	ev := []Line{{Probe: evidence.ProbeNeighbours, Text: fmt.Sprintf("the %s comes in on %s (mtu %d) and leaves by %s (mtu %d)", dir, big, mtuOf(e, big), small, mtuOf(e, small))}}
	dropped := uint64(0)
	for _, r := range drops {
		ev = append(ev, Line{Probe: evidence.ProbeFirewall, Text: r.Where() + ": " + r.Text + "   ← drops the ICMP errors this router sends"})
		dropped += r.Packets
	}
	failed, _ := e.Counters.Value("Ip:FragFails")
	if failed > 0 {
		ev = append(ev, Line{Probe: evidence.ProbeCounters, Text: fmt.Sprintf("Ip FragFails = %d: packets this router could not forward for their size (DF set)", failed)})
	}
	f := Finding{
		ID:       MTUBlackhole,
		Severity: Warning,
		Title:    fmt.Sprintf("This router sits in front of a smaller link (%s, mtu %d) and drops the fragmentation-needed it must send: large packets of the %s vanish here", small, mtuOf(e, small), dir),
		Evidence: ev,
		Fix: &fix.Fix{Summary: "Let this router's own ICMP errors out, or clamp the MSS here",
			Advice: fmt.Sprintf("Allow ICMP destination-unreachable / fragmentation-needed (IPv6 packet-too-big) in this router's output chain (the rule above drops them), or clamp the TCP MSS of forwarded SYNs to %s's MTU: nft add rule inet filter forward tcp flags syn tcp option maxseg size set rt mtu.", small)},
	}
	if dropped > 0 && failed > 0 {
		f.Severity = Critical
		f.Title = fmt.Sprintf("Proven from this router's counters: packets too big for %s (mtu %d) were refused and the fragmentation-needed it sent was dropped by its own rule", small, mtuOf(e, small))
	}
	return []Finding{f}
}

// shrinkingHop finds a direction of the flow that comes in on a link with
// a larger MTU than the one it leaves by.
func shrinkingHop(e *evidence.Evidence) (big, small, dir string) {
	for _, p := range []*evidence.PathView{okPath(e.Request), okPath(e.Reply)} {
		if p == nil || p.Ingress == "" || p.Egress == "" {
			continue
		}
		if in, out := mtuOf(e, p.Ingress), mtuOf(e, p.Egress); in > 0 && out > 0 && in > out {
			return p.Ingress, p.Egress, string(p.Direction)
		}
	}
	return "", "", ""
}

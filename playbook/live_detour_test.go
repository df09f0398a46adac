package playbook

import (
	"asym/evidence"
	"net/netip"
	"strings"
	"testing"
)

// TestLiveOnLinkDetour: frames to an on-link peer handed to another MAC
// than the peer's prove missing_link_route's detour; frames to the peer's
// own MAC, or to a peer behind a gateway, prove nothing.
func TestLiveOnLinkDetour(t *testing.T) {
	base := loadRecorded(t, "missing-link-route-host")
	const peerMAC, gwMAC = "02:00:00:00:00:50", "02:00:00:00:00:01"
	peer := netip.MustParseAddrPort("198.51.100.50:40000")
	srv := netip.MustParseAddrPort("198.51.100.11:8080")
	in := func(iface, srcMAC string) evidence.CapturedPacket {
		return evidence.CapturedPacket{Iface: iface, Dir: "in", Src: peer, Dst: srv, Proto: 6, TCP: evidence.TCPSyn, Flags: "S", SrcMAC: srcMAC, DstMAC: "02:00:00:00:00:11", Text: "in " + iface}
	}
	out := func(iface, dstMAC string, to netip.AddrPort) evidence.CapturedPacket {
		return evidence.CapturedPacket{Iface: iface, Dir: "out", Src: srv, Dst: to, Proto: 6, TCP: evidence.TCPSyn | evidence.TCPAck, Flags: "S.", Reply: true, SrcMAC: "02:00:00:00:00:11", DstMAC: dstMAC, Text: "out " + iface}
	}
	cases := []struct {
		name    string
		packets []evidence.CapturedPacket
		neigh   []evidence.Neighbour
		want    string // a line of the finding's evidence; "" for no finding
	}{
		{"not to where the peer's frames come from", []evidence.CapturedPacket{in("eth1", peerMAC), out("eth1", gwMAC, peer)}, nil,
			"198.51.100.50's own frames come from " + peerMAC},
		{"to the gateway's MAC, from its neighbour entry", []evidence.CapturedPacket{out("eth1", gwMAC, peer)},
			[]evidence.Neighbour{{Addr: netip.MustParseAddr("198.51.100.1"), Dev: "eth1", MAC: gwMAC, Text: "198.51.100.1 dev eth1 lladdr " + gwMAC}},
			"198.51.100.1 dev eth1 lladdr " + gwMAC + "   ← the gateway's MAC"},
		{"handed to the peer itself", []evidence.CapturedPacket{in("eth1", peerMAC), out("eth1", peerMAC, peer)}, nil, ""},
		{"the peer's neighbour entry says direct", []evidence.CapturedPacket{out("eth1", peerMAC, peer)},
			[]evidence.Neighbour{{Addr: peer.Addr(), Dev: "eth1", MAC: peerMAC}}, ""},
		{"nothing to compare with", []evidence.CapturedPacket{out("eth1", gwMAC, peer)}, nil, ""},
		{"no MACs (a link without them)", []evidence.CapturedPacket{in("eth1", ""), out("eth1", "", peer)}, nil, ""},
		{"a flooded copy is not the peer's frame", []evidence.CapturedPacket{func() evidence.CapturedPacket { p := in("eth1", peerMAC); p.OtherHost = true; return p }(), out("eth1", gwMAC, peer)}, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := base
			e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: "live", Status: evidence.StatusOK}, Packets: c.packets}
			nv := *e.Neighbours
			nv.Entries = c.neigh
			e.Neighbours = &nv
			fs := liveOnLinkDetour(&e)
			if c.want == "" {
				if len(fs) != 0 {
					t.Fatalf("want nothing, got %+v", fs)
				}
				return
			}
			if len(fs) != 1 || fs[0].ID != "missing_link_route" {
				t.Fatalf("got %+v", fs)
			}
			var lines []string
			for _, l := range fs[0].Evidence {
				lines = append(lines, l.Text)
			}
			all := strings.Join(lines, "\n")
			if !strings.Contains(all, c.want) || !strings.Contains(all, "frame to "+gwMAC+" (the gateway 198.51.100.1), not to 198.51.100.50") {
				t.Errorf("evidence lacks %q:\n%s", c.want, strings.Join(lines, "\n"))
			}
		})
	}
	// An on-link route (no gateway) hands frames to the peer by definition:
	// a different source MAC on the peer's frames (it routes back through
	// the gateway) proves nothing about this host.
	onLink := base
	rp := *onLink.Reply
	rp.Decision.Gateway = netip.Addr{}
	onLink.Reply = &rp
	onLink.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: "live", Status: evidence.StatusOK},
		Packets: []evidence.CapturedPacket{in("eth1", gwMAC), out("eth1", peerMAC, peer)}}
	if fs := liveOnLinkDetour(&onLink); len(fs) != 0 {
		t.Errorf("on-link route: %+v", fs)
	}
	// A peer behind a gateway (not on the egress interface's subnet) is
	// rightly reached through it.
	e := base
	e.Flow.Src = netip.MustParseAddrPort("203.0.113.10:40000")
	e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: "live", Status: evidence.StatusOK},
		Packets: []evidence.CapturedPacket{in("eth1", peerMAC), out("eth1", gwMAC, netip.MustParseAddrPort("203.0.113.10:40000"))}}
	if fs := liveOnLinkDetour(&e); len(fs) != 0 {
		t.Errorf("off-link peer: %+v", fs)
	}
}

// TestLiveMiddleBoxes: on the firewall pair's router, a reply hashed to
// another next hop than the request came from joins ecmp_multipath; on the
// firewall that only ever sees the request, the forwarded SYNs with no
// reply join conntrack_unreplied.
func TestLiveMiddleBoxes(t *testing.T) {
	src := netip.MustParseAddrPort("192.0.2.10:40001")
	dst := netip.MustParseAddrPort("203.0.113.10:8080")
	p := func(iface, dir string, reply bool, flags evidence.TCPFlags) evidence.CapturedPacket {
		q := evidence.CapturedPacket{Iface: iface, Dir: evidence.PacketDir(dir), Reply: reply, TCP: flags, Flags: flags.String(), Proto: 6, Src: src, Dst: dst, Text: iface + " " + dir + " " + flags.String()}
		if reply {
			q.Src, q.Dst = dst, src
		}
		return q
	}
	withLive := func(e evidence.Evidence, ps ...evidence.CapturedPacket) *evidence.Evidence {
		e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: "live", Status: evidence.StatusOK}, Packets: ps}
		return &e
	}
	r2, fw1 := loadRecorded(t, "firewall-ecmp-r2"), loadRecorded(t, "firewall-ecmp-fw1")
	cases := []struct {
		name string
		e    *evidence.Evidence
		fn   Analyzer
		want bool
	}{
		{"r2: request from eth1, reply hashed to eth2", withLive(r2, p("eth1", "in", false, tcpSYN), p("eth0", "out", false, tcpSYN), p("eth0", "in", true, tcpSYNACK), p("eth2", "out", true, tcpSYNACK)), liveECMPSplit, true},
		{"r2: both ways through eth1", withLive(r2, p("eth1", "in", false, tcpSYN), p("eth1", "out", true, tcpSYNACK)), liveECMPSplit, false},
		{"r2: the reply leaves by an interface that is no next hop", withLive(r2, p("eth1", "in", false, tcpSYN), p("eth9", "out", true, tcpSYNACK)), liveECMPSplit, false},
		{"r2: no reply seen", withLive(r2, p("eth1", "in", false, tcpSYN)), liveECMPSplit, false},
		{"fw1: SYNs forwarded, no reply", withLive(fw1, p("eth0", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN), p("eth0", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN)), liveUnrepliedMiddle, true},
		{"fw1: one SYN is not a pattern", withLive(fw1, p("eth0", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN)), liveUnrepliedMiddle, false},
		{"fw1: the reply comes back", withLive(fw1, p("eth0", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN), p("eth0", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN), p("eth1", "in", true, tcpSYNACK)), liveUnrepliedMiddle, false},
		{"fw1: dropped here, not forwarded", withLive(fw1, p("eth0", "in", false, tcpSYN), p("eth0", "in", false, tcpSYN)), liveUnrepliedMiddle, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := c.fn(c.e)
			if got := len(fs) == 1; got != c.want {
				t.Fatalf("finding: %v, want %v: %+v", got, c.want, fs)
			}
		})
	}
	// A server is no middle box: its unanswered SYNs are syn_unanswered's.
	srv := loadRecorded(t, "two-nics-fabric-host")
	if fs := liveUnrepliedMiddle(withLive(srv, p("eth1", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN), p("eth1", "in", false, tcpSYN), p("eth1", "out", false, tcpSYN))); len(fs) != 0 {
		t.Errorf("a server: %+v", fs)
	}
}

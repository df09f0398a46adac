package playbook

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
)

// mtuRecorded is the server of the lab scenario mtu-blackhole watched on a
// real kernel while the flow was tried (go test ./cmd/asym -run
// 'TestCheckWatchLab/mtu' -record): the handshake and the 1-byte request
// pass, the 8 KiB answer goes out as a 7292-byte TSO packet and a 1004-byte
// tail (which passes and is SACKed), then the 1500-byte head is sent again
// at 200, 430 and 830 ms intervals with nothing back, and the client resets.
func mtuRecorded(t *testing.T) *evidence.Evidence {
	t.Helper()
	e := loadRecorded(t, "mtu-blackhole-server-watch")
	if e.Live == nil || len(e.Live.Packets) != 13 {
		t.Fatal("the recording lacks its 13 packets")
	}
	return &e
}

var mtuT0 = time.Date(2025, 11, 24, 8, 0, 0, 0, time.UTC)

// seg is a synthetic TCP packet of the flow at ms milliseconds.
func seg(ms int, iface, dir string, reply bool, flags evidence.TCPFlags, n int) evidence.CapturedPacket {
	p := evidence.CapturedPacket{Time: mtuT0.Add(time.Duration(ms) * time.Millisecond), Iface: iface, Dir: evidence.PacketDir(dir), Reply: reply, TCP: flags, Flags: flags.String(), Proto: 6, Len: n,
		Src: netip.MustParseAddrPort("192.0.2.10:40001"), Dst: netip.MustParseAddrPort("203.0.113.10:8080")}
	if reply {
		p.Src, p.Dst = p.Dst, p.Src
	}
	p.Text = fmt.Sprintf("%s %s %s > %s: Flags [%s], ip length %d", iface, dir, p.Src, p.Dst, p.Flags, n)
	return p
}

// fragNeededAt is the ICMP error a router sends the server about its
// reply-direction segment: it quotes a packet from the flow's Dst, so it is
// not Reply.
func fragNeededAt(at time.Time, mtu int) evidence.CapturedPacket {
	return evidence.CapturedPacket{Time: at, Iface: "eth0", Dir: "in", Proto: 1, Len: 576,
		Src: netip.MustParseAddrPort("203.0.113.1:0"), Dst: netip.MustParseAddrPort("203.0.113.10:0"),
		ICMPMsg: &evidence.ICMPMessage{Type: evidence.ICMPv4Unreachable, Code: evidence.ICMPv4FragNeeded, MTU: mtu},
		ICMP:    fmt.Sprintf("unreachable (frag needed, mtu %d)", mtu),
		Text:    fmt.Sprintf("eth0 In  IP 203.0.113.1 > 203.0.113.10: ICMP unreachable (frag needed, mtu %d) for tcp 203.0.113.10.8080 > 192.0.2.10.40000", mtu)}
}

// withPackets puts a live window with these packets on e.
func withPackets(e *evidence.Evidence, ps ...evidence.CapturedPacket) *evidence.Evidence {
	e.Live = &evidence.LiveEvidence{Report: okRep("live"), Packets: ps, Deltas: map[string]int64{}}
	return e
}

// upTo keeps the recorded packets up to the nth 1500-byte copy (1-based).
func upTo(ps []evidence.CapturedPacket, copies int) []evidence.CapturedPacket {
	for i, p := range ps {
		if p.Len == 1500 {
			if copies--; copies == 0 {
				return slices.Clone(ps[:i+1])
			}
		}
	}
	return slices.Clone(ps)
}

// routerPackets is the flow seen on a router between the ends: every packet
// in on one side and out on the other, except the server's 1500-byte
// segment, which comes in on r2 three times and never leaves.
func routerPackets() []evidence.CapturedPacket {
	var ps []evidence.CapturedPacket
	both := func(ms int, reply bool, flags evidence.TCPFlags, n int) {
		in, out := "r1", "r2"
		if reply {
			in, out = out, in
		}
		ps = append(ps, seg(ms, in, "in", reply, flags, n), seg(ms, out, "out", reply, flags, n))
	}
	both(0, false, tcpSYN, 60)
	both(1, true, tcpSYNACK, 60)
	both(2, false, tcpACK, 52)
	both(3, false, tcpPSHACK, 53)
	both(4, true, tcpACK, 52)
	for _, ms := range []int{5, 215, 640} {
		ps = append(ps, seg(ms, "r2", "in", true, tcpACK, 1500))
	}
	return ps
}

func TestMTUBlackhole(t *testing.T) {
	cases := []struct {
		name  string
		build func(t *testing.T) *evidence.Evidence
		want  []string
		check func(t *testing.T, f *Finding)
	}{
		{"recorded: the server's 1500-byte segments vanish", mtuRecorded, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			if f.Severity != Critical || !strings.HasPrefix(f.Title, "Proven on the wire: 1500-byte segments to 192.0.2.10 vanish while smaller packets pass") {
				t.Errorf("%s %q", f.Severity, f.Title)
			}
			ev := evidenceText(f)
			for _, want := range []string{
				"length 952   ← 1004 bytes: answered",
				"the same 1500-byte segment left by eth0 3 times over 1.264s with nothing from the other end between; packets up to 1004 bytes were answered; no ICMP fragmentation-needed came back",
				"Tcp RetransSegs +8 over the window",
			} {
				if !strings.Contains(ev, want) {
					t.Errorf("evidence lacks %q:\n%s", want, ev)
				}
			}
			if strings.Count(ev, "the same 1500 bytes again after") != 2 {
				t.Errorf("want the two copies sent again:\n%s", ev)
			}
			if f.Fix == nil || len(f.Fix.Steps) != 0 || !strings.Contains(f.Fix.Advice, "ip route add 192.0.2.10 via 203.0.113.1 dev eth0 mtu lock 1280") ||
				!strings.Contains(f.Fix.Advice, "maxseg") || len(f.Fix.Prove) != 2 || !strings.Contains(f.Fix.Prove[0], "ping -M do -s 1472 -c 3 192.0.2.10") {
				t.Errorf("fix: %+v", f.Fix)
			}
		}},
		{"the flow retried in the window stalls each time", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets)
			for _, p := range e.Live.Packets { // the next attempt, ten seconds on
				p.Time = p.Time.Add(10 * time.Second)
				p.Text = strings.Replace(p.Text, "08:37:0", "08:37:1", 1)
				if p.Len == 1004 {
					p.Len = 1100 // a larger answered packet, but after the stall shown
				}
				ps = append(ps, p)
			}
			return withPackets(e, ps...)
		}, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			ev := evidenceText(f)
			if !strings.Contains(ev, "3 times over 1.264s with nothing from the other end between (and so in 2 connections of the window)") {
				t.Errorf("want both stalls counted:\n%s", ev)
			}
			// The evidence reads in order: the answered packet is the first
			// connection's, before its stall, not the second's.
			if !strings.HasPrefix(f.Evidence[0].Text, "08:37:07.775238") || !strings.HasPrefix(f.Evidence[2].Text, "08:37:07.989067") {
				t.Errorf("evidence out of order:\n%s", ev)
			}
		}},
		{"the window opens mid-connection: the stall shown is one whose answered packet came first", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets[9:]) // the first connection's stall, without its beginning
			for _, p := range e.Live.Packets {
				p.Time = p.Time.Add(10 * time.Second)
				p.Text = strings.Replace(p.Text, "08:37:0", "08:37:1", 1)
				ps = append(ps, p)
			}
			return withPackets(e, ps...)
		}, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			if !strings.HasPrefix(f.Evidence[0].Text, "08:37:17.775238") || !strings.HasPrefix(f.Evidence[2].Text, "08:37:17.989067") {
				t.Errorf("evidence out of order:\n%s", evidenceText(f))
			}
		}},
		{"recorded without the window: the server's state shows nothing", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			e.Live = nil
			return e
		}, nil, nil},
		{"an unavailable window is no evidence", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			e.Live.Status = evidence.StatusUnavailable
			return e
		}, nil, nil},
		{"one copy sent again and then acknowledged is ordinary loss", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := upTo(e.Live.Packets, 2)
			ack := ps[7] // the client's SACK, as a stand-in for its ACK
			ack.Time = ps[len(ps)-1].Time.Add(time.Millisecond)
			return withPackets(e, append(ps, ack)...)
		}, nil, nil},
		{"three copies and then acknowledged: that size passes", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := upTo(e.Live.Packets, 3)
			ack := ps[7]
			ack.Time = ps[len(ps)-1].Time.Add(time.Millisecond)
			return withPackets(e, append(ps, ack)...)
		}, nil, nil},
		{"the window ends while the segment is still sent again: proof", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			return withPackets(e, upTo(e.Live.Packets, 2)...)
		}, []string{"mtu_blackhole"}, nil},
		{"one copy only: no retransmission seen yet", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			return withPackets(e, upTo(e.Live.Packets, 1)...)
		}, nil, nil},
		{"frag-needed arrives and the segments keep their size: this host ignores it", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets)
			icmp := fragNeededAt(ps[8].Time.Add(time.Millisecond), 1280) // after the TSO packet's retransmission
			return withPackets(e, slices.Insert(ps, 9, icmp)...)
		}, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			if f.Severity != Critical || !strings.Contains(f.Title, "although ICMP fragmentation-needed (mtu 1280) arrives: this host does not act on it") {
				t.Errorf("%s %q", f.Severity, f.Title)
			}
			if ev := evidenceText(f); !strings.Contains(ev, "1 ICMP fragmentation-needed arrived (unreachable (frag needed, mtu 1280)) and the size did not change") {
				t.Errorf("evidence:\n%s", ev)
			}
			if f.Fix == nil || !strings.Contains(f.Fix.Advice, "ip_no_pmtu_disc") {
				t.Errorf("fix: %+v", f.Fix)
			}
		}},
		{"a small segment after the copies is answered, they are not: proof", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := upTo(e.Live.Packets, 3)
			tail, sack := ps[6], ps[7] // the 1004-byte tail and the client's SACK of it
			tail.Time, sack.Time = ps[len(ps)-1].Time.Add(time.Millisecond), ps[len(ps)-1].Time.Add(2*time.Millisecond)
			return withPackets(e, append(ps, tail, sack)...)
		}, []string{"mtu_blackhole"}, nil},
		{"frag-needed arrives late and the segments shrink: path MTU discovery works, slowly", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := upTo(e.Live.Packets, 3) // stalled three times first
			at := ps[len(ps)-1].Time
			ps = append(ps, fragNeededAt(at.Add(time.Millisecond), 1280))
			for i := range 3 {
				ps = append(ps, seg(0, "eth0", "out", true, tcpACK, 1280), seg(0, "eth0", "in", false, tcpACK, 52))
				ps[len(ps)-2].Time, ps[len(ps)-1].Time = at.Add(time.Duration(2+2*i)*time.Millisecond), at.Add(time.Duration(3+2*i)*time.Millisecond)
			}
			return withPackets(e, ps...)
		}, nil, nil},
		{"a healthy bulk transfer: every large segment answered", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets[:5])
			for i := range 4 {
				ps = append(ps, seg(10+300*i, "eth0", "out", true, tcpACK, 1500), seg(11+300*i, "eth0", "in", false, tcpACK, 52))
			}
			return withPackets(e, ps...)
		}, nil, nil},
		{"a burst of full-sized segments is not a retransmission", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets[:5])
			for i := range 5 {
				ps = append(ps, seg(10+i, "eth0", "out", true, tcpACK, 1500))
			}
			return withPackets(e, ps...)
		}, nil, nil},
		{"the other end speaks between the copies: it may be acknowledging them", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			ps := slices.Clone(e.Live.Packets[:5])
			for i := range 3 {
				// Both ends send data: our ACK of theirs goes out right
				// after each copy, so their packet does not follow it at once.
				ps = append(ps, seg(10+300*i, "eth0", "out", true, tcpACK, 1500), seg(11+300*i, "eth0", "out", true, tcpACK, 52), seg(50+300*i, "eth0", "in", false, tcpPSHACK, 200))
			}
			return withPackets(e, ps...)
		}, nil, nil},
		{"nothing of that direction was ever answered: not the size", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			return withPackets(e, seg(0, "eth0", "out", true, tcpACK, 1500), seg(210, "eth0", "out", true, tcpACK, 1500), seg(630, "eth0", "out", true, tcpACK, 1500))
		}, nil, nil},
		{"a segment of that very size was answered before: that size passes", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			early := []evidence.CapturedPacket{seg(0, "eth0", "out", true, tcpACK, 1500), seg(1, "eth0", "in", false, tcpACK, 52)}
			early[0].Time, early[1].Time = e.Live.Packets[0].Time.Add(-time.Second), e.Live.Packets[0].Time.Add(-time.Second+time.Millisecond)
			return withPackets(e, append(early, e.Live.Packets...)...)
		}, nil, nil},
		{"frames flooded to this host for another are not the flow's", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			for i := range e.Live.Packets {
				e.Live.Packets[i].OtherHost = true
			}
			return e
		}, nil, nil},
		{"only TCP retransmits", func(t *testing.T) *evidence.Evidence {
			e := mtuRecorded(t)
			e.Flow.Proto = flow.UDP
			return e
		}, nil, nil},
		{"a router: the segments come in and never leave", func(t *testing.T) *evidence.Evidence {
			return withPackets(middle(), routerPackets()...)
		}, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			ev := evidenceText(f)
			if !strings.Contains(f.Title, "1500-byte segments to 192.0.2.10") || !strings.Contains(ev, "came in on r2 3 times") || !strings.Contains(ev, "none of them left this host") {
				t.Errorf("%q\n%s", f.Title, ev)
			}
		}},
		{"a router that forwards them: the black hole is further on", func(t *testing.T) *evidence.Evidence {
			ps := routerPackets()
			var out []evidence.CapturedPacket
			for _, p := range ps {
				out = append(out, p)
				if p.Len == 1500 {
					q := p
					q.Iface, q.Dir = "r1", "out"
					out = append(out, q)
				}
			}
			return withPackets(middle(), out...)
		}, []string{"mtu_blackhole"}, func(t *testing.T, f *Finding) {
			if ev := evidenceText(f); strings.Contains(ev, "none of them left") {
				t.Errorf("they did leave:\n%s", ev)
			}
		}},
		{"the interfaces' MTUs differ too: one finding, both kinds of evidence", func(t *testing.T) *evidence.Evidence {
			e := server2nic()
			healed(e)
			e.Reply.Egress = "eth0"
			e.Host.Ifaces[2].MTU = 9001
			e.Live = mtuRecorded(t).Live
			return e
		}, []string{"mtu_blackhole", "reply_wrong_egress"}, func(t *testing.T, f *Finding) {
			if f.Severity != Critical || !strings.HasPrefix(f.Title, "Proven on the wire") {
				t.Errorf("%s %q", f.Severity, f.Title)
			}
			probesSeen := map[evidence.ProbeID]bool{}
			for _, l := range f.Evidence {
				probesSeen[l.Probe] = true
			}
			if !probesSeen["live"] || !probesSeen["neighbours"] {
				t.Errorf("want live and neighbours evidence: %v", f.Evidence)
			}
		}},
		{"the MTUs differ but frag-needed arrives and the segments shrink: a warning that says so", func(t *testing.T) *evidence.Evidence {
			e := server2nic()
			healed(e)
			e.Reply.Egress = "eth0"
			e.Host.Ifaces[2].MTU = 9001
			return withPackets(e, seg(0, "eth0", "out", true, tcpACK, 1500), fragNeededAt(mtuT0.Add(time.Millisecond), 1400),
				seg(2, "eth0", "out", true, tcpACK, 1400), seg(3, "eth0", "in", false, tcpACK, 52))
		}, []string{"mtu_blackhole", "reply_wrong_egress"}, func(t *testing.T, f *Finding) {
			if f.Severity != Warning || !strings.Contains(f.Title, "different MTUs") || !strings.Contains(evidenceText(f), "path MTU discovery works on this path") {
				t.Errorf("%s %q\n%s", f.Severity, f.Title, evidenceText(f))
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := Analyze(c.build(t), len(Steps)-1)
			want := c.want
			if want == nil {
				want = []string{}
			}
			if got := ids(fs); !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
			if c.check != nil {
				c.check(t, find(fs, "mtu_blackhole"))
			}
		})
	}
}

func evidenceText(f *Finding) string {
	var b strings.Builder
	for _, l := range f.Evidence {
		b.WriteString("[" + string(l.Probe) + "] " + l.Text + "\n")
	}
	return b.String()
}

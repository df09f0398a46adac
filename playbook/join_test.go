package playbook

import (
	"asym/evidence"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// recordedPair loads both ends of the two-NIC scenario as `asym collect
// --watch 4s --peer 'ip netns exec SERVER'` printed them on the client while
// the flow failed (re-record: go test ./cmd/asym -run TestPeerLab -record).
func recordedPair(t *testing.T) (here, there evidence.Evidence) {
	t.Helper()
	b, err := os.ReadFile("testdata/peer/two-nics-fabric.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Evidence evidence.Evidence `json:"evidence"`
		Peer     struct {
			Collection evidence.Collection `json:"collection"`
		} `json:"peer"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Evidence, doc.Peer.Collection.Evidence
}

func joinedIDs(here, there evidence.Evidence) []string {
	var out []string
	for _, f := range Join(&here, &there) {
		out = append(out, string(f.ID))
	}
	return out
}

// keep returns a copy of e whose live packets are those keep accepts.
func keep(e evidence.Evidence, keep func(p evidence.CapturedPacket) bool) evidence.Evidence {
	l := *e.Live
	l.Packets = slices.DeleteFunc(slices.Clone(l.Packets), func(p evidence.CapturedPacket) bool { return !keep(p) })
	e.Live = &l
	return e
}

func TestJoinRecorded(t *testing.T) {
	here, there := recordedPair(t)
	if here.Host.Role != evidence.RoleClient || there.Host.Role != evidence.RoleServer {
		t.Fatalf("recording: roles %s/%s", here.Host.Role, there.Host.Role)
	}
	fs := Join(&here, &there)
	if len(fs) != 1 || fs[0].ID != "reply_lost_in_path" {
		t.Fatalf("joined findings %v, want reply_lost_in_path", fs)
	}
	f := fs[0]
	if f.Side != SideBoth || f.Severity != Critical || f.Step != "third" || f.Why == "" {
		t.Errorf("finding metadata: %+v", f)
	}
	want := "The SYN-ACK left the server (peer) by eth0, not by eth1 where the request arrived, and never reached the client (here)"
	if f.Title != want {
		t.Errorf("title:\n got %q\nwant %q", f.Title, want)
	}
	sides := map[string]int{}
	for _, l := range f.Evidence {
		sides[l.Side]++
		if l.Side != SideHere && l.Side != SidePeer {
			t.Errorf("evidence line without its end: %+v", l)
		}
	}
	if sides[SideHere] < 2 || sides[SidePeer] < 3 {
		t.Errorf("evidence from both ends: %v", sides)
	}
	across := Across(&here, &there)
	if len(across) != 3 || !strings.HasPrefix(across[0], "here (client") || !strings.Contains(across[1], "request arrives on eth1; reply leaves by eth0 via 198.51.100.1") {
		t.Errorf("across: %q", across)
	}
	if !strings.Contains(across[2], "reply out of the server (peer) 2, into the client (here) 0") && !strings.Contains(across[2], "into the client (here) 0") {
		t.Errorf("across must count no reply arriving at the client: %q", across[2])
	}
	// Run from the server's end, the counts still read client → server.
	swapped := Across(&there, &here)
	if !strings.Contains(swapped[2], "request out of the client (peer)") || !strings.Contains(swapped[2], "into the client (peer) 0") {
		t.Errorf("across from the server: %q", swapped[2])
	}
}

func TestJoinCases(t *testing.T) {
	here, there := recordedPair(t)
	isReply := func(p evidence.CapturedPacket) bool { return p.Reply }
	shift := func(e evidence.Evidence, d time.Duration) evidence.Evidence {
		l := *e.Live
		l.Start, l.End = l.Start.Add(d), l.End.Add(d)
		l.Packets = slices.Clone(l.Packets)
		for i := range l.Packets {
			l.Packets[i].Time = l.Packets[i].Time.Add(d)
		}
		e.Live = &l
		return e
	}
	noLive := func(e evidence.Evidence) evidence.Evidence { e.Live = nil; return e }
	uncaptured := func(e evidence.Evidence) evidence.Evidence {
		l := *e.Live
		l.Captured, l.Packets = false, nil // counters only: the capture failed
		e.Live = &l
		return e
	}
	dropped := func(e evidence.Evidence) evidence.Evidence {
		l := *e.Live
		l.PacketsDropped = 3
		e.Live = &l
		return e
	}
	asRole := func(e evidence.Evidence, r evidence.Role) evidence.Evidence {
		h := *e.Host
		h.Role = r
		e.Host = &h
		return e
	}
	// withReplies gives an end reply packets of these sizes: out of the
	// server, into the client, in the middle of the window.
	withReplies := func(e evidence.Evidence, sizes ...int) evidence.Evidence {
		l := *e.Live
		l.Packets = slices.Clone(l.Packets)
		dir := "in"
		if e.Host.Role == evidence.RoleServer {
			dir = "out"
			l.Packets = slices.DeleteFunc(l.Packets, func(p evidence.CapturedPacket) bool { return p.Reply })
		}
		for i, n := range sizes {
			l.Packets = append(l.Packets, evidence.CapturedPacket{Time: l.Start.Add(time.Second + time.Duration(i)*time.Millisecond), Iface: "eth0", Dir: evidence.PacketDir(dir),
				Reply: true, TCP: evidence.TCPAck, Flags: ".", Src: e.Flow.Dst, Dst: e.Flow.Src, Proto: 6, Len: n, Text: fmt.Sprintf("eth0 %s %d", dir, n)})
		}
		e.Live = &l
		return e
	}
	replyArrives := func(e evidence.Evidence) evidence.Evidence {
		l := *e.Live
		p := evidence.CapturedPacket{Time: l.Start.Add(2 * time.Second), Iface: "eth0", Dir: "in", Reply: true, TCP: evidence.TCPSyn | evidence.TCPAck, Flags: "S.", Src: e.Flow.Dst, Dst: e.Flow.Src, Proto: 6}
		l.Packets = append(slices.Clone(l.Packets), p)
		e.Live = &l
		return e
	}
	cases := []struct {
		name        string
		here, there evidence.Evidence
		want        []string
	}{
		{"recorded", here, there, []string{"reply_lost_in_path"}},
		{"the ends swapped", there, here, []string{"reply_lost_in_path"}},
		{"no live evidence here", noLive(here), there, nil},
		{"no live evidence there", here, noLive(there), nil},
		{"windows an hour apart", here, shift(there, time.Hour), nil},
		{"the reply arrives", replyArrives(here), there, nil},
		{"the server sent no reply", here, keep(there, func(p evidence.CapturedPacket) bool { return !isReply(p) }), nil},
		{"the request never arrives", here, keep(there, func(evidence.CapturedPacket) bool { return false }), []string{"request_lost_in_path"}},
		{"the client sent nothing", keep(here, func(evidence.CapturedPacket) bool { return false }), keep(there, func(evidence.CapturedPacket) bool { return false }), nil},
		{"both think they are the client", here, asRole(noLive(there), evidence.RoleClient), []string{"peer_role_conflict"}},
		{"the peer's capture did not run", here, uncaptured(there), nil},
		{"packets were dropped here", dropped(here), there, nil},
		{"a router forwarded the request, the reply went elsewhere", asRole(here, evidence.RoleMiddle), there, []string{"reply_returns_elsewhere"}},
		{"big replies left, only small ones arrived", withReplies(here, 60, 60), withReplies(there, 1500, 1500, 1500), []string{"mtu_blackhole"}},
		{"one big reply is not a pattern", withReplies(here, 60), withReplies(there, 1500), nil},
		{"big replies arrived too", withReplies(here, 60, 1500), withReplies(there, 1500, 1500), nil},
		{"two routers are not a conflict", asRole(noLive(here), evidence.RoleMiddle), asRole(noLive(there), evidence.RoleMiddle), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := joinedIDs(c.here, c.there)
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestAnalyzePeerSides(t *testing.T) {
	here, there := recordedPair(t)
	res := evidence.PeerResult{Command: []string{"ip", "netns", "exec", "asym-x-host", "asym", "collect", "--json"},
		Collection: &evidence.Collection{Format: evidence.CollectFormat, Version: "test", Evidence: there}}
	pa := AnalyzePeer(&here, res)
	if pa.Peer.Failure != nil || pa.Peer.Host.Role != evidence.RoleServer || pa.Peer.Version != "test" {
		t.Fatalf("peer report: %+v", pa.Peer)
	}
	var own []string
	for _, f := range pa.Peer.Findings {
		own = append(own, string(f.ID))
		if f.Side != SidePeer {
			t.Errorf("%s: side %q", f.ID, f.Side)
		}
		for _, l := range f.Evidence {
			if l.Side != SidePeer {
				t.Errorf("%s: a peer finding's evidence comes from the peer: %+v", f.ID, l)
			}
		}
	}
	if !slices.Contains(own, "reply_wrong_egress") {
		t.Errorf("the server's own findings: %v", own)
	}
	if len(pa.Findings) != 1 || pa.Findings[0].ID != "reply_lost_in_path" {
		t.Errorf("findings added to this host's: %v", pa.Findings)
	}
	if len(pa.Peer.Steps) != len(Steps) || len(pa.Peer.Steps[0].Probes) == 0 || !slices.Contains(pa.Peer.Steps[0].Findings, "reply_wrong_egress") {
		t.Errorf("the peer's steps: %+v", pa.Peer.Steps)
	}
	// The peer's fixes are never part of this host's plan.
	r := NewReport(time.Now(), &here, nil, here.Reports(), Analyze(&here, len(Steps)-1))
	r.AddPeer(pa)
	for _, f := range r.Findings {
		if f.Side == SidePeer && f.Fix != nil && len(f.Fix.Steps) > 0 {
			t.Errorf("%s: a peer finding with host-local steps among this host's findings", f.ID)
		}
	}
	var b strings.Builder
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\npeer " + there.Host.Hostname + "  kernel ", "== Across both ends", "######## The peer:", "[peer live]", "[here live]", "(third step, across both ends)", "== Findings on the peer (run their fixes there)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q", want)
		}
	}
}

func TestPeerFailureFindings(t *testing.T) {
	for _, kind := range []evidence.PeerFailureKind{evidence.PeerUnreachable, evidence.PeerNoAsym, evidence.PeerNoSudo, evidence.PeerTimeout, evidence.PeerIncompatible, evidence.PeerFailed} {
		res := evidence.PeerResult{Command: []string{"ssh", "db1", "sudo", "asym", "collect"}, Elapsed: time.Second,
			Failure: &evidence.PeerFailure{Kind: kind, Reason: "it went wrong", ExitCode: 255}, Stderr: []string{"ssh: connect to host db1 port 22: Connection refused"}}
		pa := AnalyzePeer(&evidence.Evidence{}, res)
		if len(pa.Findings) != 1 {
			t.Fatalf("%s: %v", kind, pa.Findings)
		}
		f := pa.Findings[0]
		if string(f.ID) != "peer_"+string(kind) || f.Side != SidePeer || f.Severity != Warning || f.Fix == nil || f.Fix.Advice == "" || f.Why == "" {
			t.Errorf("%s: %+v", kind, f)
		}
		if _, ok := Lookup(f.ID); !ok {
			t.Errorf("%s is not in the catalog", f.ID)
		}
		if !strings.Contains(f.Title, "it went wrong") || len(f.Evidence) != 3 || !strings.Contains(f.Evidence[2].Text, "Connection refused") {
			t.Errorf("%s: title %q evidence %+v", kind, f.Title, f.Evidence)
		}
	}
	// Without root on the peer: its evidence counts, and a warning says it is partial.
	_, there := recordedPair(t)
	h := *there.Host
	h.Privileged, h.Missing = false, "CAP_NET_ADMIN"
	there.Host = &h
	pa := AnalyzePeer(&evidence.Evidence{}, evidence.PeerResult{Collection: &evidence.Collection{Format: evidence.CollectFormat, Evidence: there}})
	if len(pa.Findings) == 0 || pa.Findings[0].ID != "peer_not_root" || !strings.Contains(pa.Findings[0].Title, "CAP_NET_ADMIN") {
		t.Errorf("not root: %v", pa.Findings)
	}
}

func TestDescribeReply(t *testing.T) {
	icmp := func(v6 bool, typ, code uint8) evidence.CapturedPacket {
		return evidence.CapturedPacket{ICMPMsg: &evidence.ICMPMessage{V6: v6, Type: typ, Code: code}}
	}
	for _, c := range []struct {
		p    evidence.CapturedPacket
		want string
	}{
		{evidence.CapturedPacket{TCP: evidence.TCPSyn | evidence.TCPAck}, "SYN-ACK"},
		{evidence.CapturedPacket{TCP: evidence.TCPSyn | evidence.TCPAck | evidence.TCPEce}, "SYN-ACK"},
		{evidence.CapturedPacket{TCP: evidence.TCPAck}, "reply"},
		{evidence.CapturedPacket{}, "reply"},
		{icmp(false, 0, 0), "ICMP echo reply"},
		{icmp(true, 129, 0), "ICMP echo reply"},
		{icmp(false, evidence.ICMPv4Unreachable, 3), "ICMP unreachable reply"},
		{icmp(true, evidence.ICMPv6Unreachable, 4), "ICMP unreachable reply"},
		{icmp(true, evidence.ICMPv6TooBig, 0), "ICMP packet too big reply"},
		{icmp(false, evidence.ICMPv4TimeExceeded, 0), "ICMP time exceeded reply"},
		{icmp(false, 5, 1), "ICMP type 5 reply"},
	} {
		if got := describeReply(c.p); got != c.want {
			t.Errorf("%+v: %q, want %q", c.p.ICMPMsg, got, c.want)
		}
	}
	// Recorded before the typed fields: read back from the capture's words.
	var p evidence.CapturedPacket
	if err := json.Unmarshal([]byte(`{"src":"198.51.100.11:0","dst":"203.0.113.10:0","proto":1,"icmp":"echo reply id 7 seq 1"}`), &p); err != nil {
		t.Fatal(err)
	}
	if got := describeReply(p); got != "ICMP echo reply" {
		t.Errorf("recorded echo reply: %q", got)
	}
}

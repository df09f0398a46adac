package playbook

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"asym/evidence"
)

// loadTrace reads the trace recorded on the lab's firewall pair behind
// ECMP (go test ./cmd/asym -run TestTraceLab -record, as root), with what
// the judge decided cleared.
func loadTrace(t *testing.T) evidence.Trace {
	t.Helper()
	b, err := os.ReadFile("testdata/trace/firewall-ecmp.json")
	if err != nil {
		t.Fatal(err)
	}
	var tr evidence.Trace
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatal(err)
	}
	tr.DivergesAt, tr.Divergence, tr.Boundary, tr.BoundaryTTL, tr.BoundaryAddr, tr.Notes = 0, "", "", 0, netip.Addr{}, nil
	return tr
}

func findingIDs(fs []Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.ID))
	}
	return out
}

var (
	fw1 = netip.MustParseAddr("198.51.100.2")
	fw2 = netip.MustParseAddr("198.51.100.13")
)

// TestJudgeRecordedFirewallPair: the request's SYNs cross fw1 and arrive
// at the server after 4 hops; the reply's SYN-ACKs are answered by r2 and
// fw2 and nothing after, while a SYN with the same tuple passes to r1, the
// client's only gateway. fw2 is the device without state, at the hop where
// the paths part, and the finding names both members.
func TestJudgeRecordedFirewallPair(t *testing.T) {
	tr := loadTrace(t)
	fs := JudgeTrace(&tr)
	if got := findingIDs(fs); !slices.Equal(got, []string{"state_missing_in_path", "path_diverges"}) {
		t.Fatalf("findings %v", got)
	}
	if tr.BoundaryAddr != fw2 || tr.BoundaryTTL != 2 || tr.DivergesAt != 2 {
		t.Errorf("boundary %s at %d, diverges at %d; want fw2 at the reply's hop 2 and the paths parting at hop 2\n%s\n%s", tr.BoundaryAddr, tr.BoundaryTTL, tr.DivergesAt, tr.Boundary, tr.Divergence)
	}
	for _, want := range []string{"hop 3 (", "is a device the request crosses too (the client's only gateway, both ways)", "Linux's forward chain"} {
		if !strings.Contains(tr.Boundary, want) {
			t.Errorf("the reasoning lacks %q: %s", want, tr.Boundary)
		}
	}
	if !strings.Contains(tr.Divergence, "the request crosses 198.51.100.2 there and goes on, the reply 198.51.100.13") || !strings.Contains(tr.Divergence, "arrived at the server after 4 hops") {
		t.Errorf("divergence %q", tr.Divergence)
	}
	f := fs[0]
	if f.Severity != Critical || f.Side != SideBoth || !strings.Contains(f.Title, "The request crosses 198.51.100.2 and the reply 198.51.100.13 (hop 2)") {
		t.Errorf("finding %s %s %s: %q", f.ID, f.Severity, f.Side, f.Title)
	}
	var text bytes.Buffer
	if err := WriteTraceText(&text, &tr, fs, evidence.TargetInfo{Hostname: "vm"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"   2 ≠ 198.51.100.2 ", "│ 198.51.100.13 ", "◀ last to answer the tcp syn-ack", "the probes arrived after 4 hops", "(as a SYN)"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}

// TestJudgeArrivalsBeforeAnswers: the server's answer came back only for a
// probe of a later TTL (the answers to the earlier ones died on the way
// back, as a loose-pickup ACK can get through where a SYN-ACK cannot): what
// the server saw arrive still says 4 hops, and fw2 is still the one.
func TestJudgeArrivalsBeforeAnswers(t *testing.T) {
	tr := loadTrace(t)
	f := &tr.Forward
	f.Hops = append(f.Hops, evidence.TraceHop{TTL: 6, Addr: netip.MustParseAddr("203.0.113.10"), Answer: evidence.AnswerDestination, Sent: 3, Answered: 1})
	f.Reached = true
	JudgeTrace(&tr)
	if tr.BoundaryAddr != fw2 || tr.DivergesAt != 2 || !strings.Contains(tr.Divergence, "arrived at the server after 4 hops") {
		t.Errorf("boundary %s, diverges at %d: %s", tr.BoundaryAddr, tr.DivergesAt, tr.Divergence)
	}
}

// TestJudgeWithoutTheRequestsLength: when nothing tells how far the server
// is (the request's answers died and the server saw nothing arrive), the
// paths cannot be lined up: the boundary is the first hop that never saw
// the reply's probes, with the Linux forward-chain caveat naming the other
// candidate, and no hop is claimed as the divergence.
func TestJudgeWithoutTheRequestsLength(t *testing.T) {
	tr := loadTrace(t)
	tr.Forward.Arrived = nil
	fs := JudgeTrace(&tr)
	if tr.BoundaryTTL != 3 || tr.DivergesAt != 0 || !strings.Contains(tr.Boundary, "or 198.51.100.13 (hop 2) itself") {
		t.Errorf("boundary at %d (%s), diverges at %d", tr.BoundaryTTL, tr.Boundary, tr.DivergesAt)
	}
	if got := findingIDs(fs); !slices.Equal(got, []string{"state_missing_in_path"}) {
		t.Errorf("findings %v", got)
	}
	if !strings.Contains(tr.Divergence, "cannot be lined up") {
		t.Errorf("divergence %q", tr.Divergence)
	}
}

// TestJudgeStateBeforeTTL: the device next to the server is its only
// gateway (shared), and the reply's probes die right after it: the device
// without state is the next one, silent at its own hop (it checks state
// before the TTL).
func TestJudgeStateBeforeTTL(t *testing.T) {
	tr := loadTrace(t)
	rv := &tr.Reverse
	rv.Hops = slices.DeleteFunc(rv.Hops, func(h evidence.TraceHop) bool { return h.TTL >= 2 })
	rv.Hops = append(rv.Hops, evidence.TraceHop{TTL: 2, Sent: 3}, evidence.TraceHop{TTL: 3, Sent: 3})
	rv.Control.Hops = []evidence.TraceHop{{TTL: 2, Addr: fw2, Answer: evidence.AnswerTimeExceeded, Sent: 3, Answered: 3}}
	fs := JudgeTrace(&tr)
	if tr.BoundaryAddr != fw2 || tr.BoundaryTTL != 2 || !strings.Contains(tr.Boundary, "hop 1 (203.0.113.1) is a device the request crosses too (the server's only gateway, both ways)") {
		t.Errorf("boundary %s at %d: %s", tr.BoundaryAddr, tr.BoundaryTTL, tr.Boundary)
	}
	if len(fs) == 0 || fs[0].ID != StateMissingInPath {
		t.Errorf("findings %v", findingIDs(fs))
	}
}

// TestJudgeNoBoundary: when the SYN stops where the SYN-ACK stops, it is
// not state (a route, or a filter for both); when the reply reaches the
// client, nothing is dropped; without a peer, the reply is this host's
// decision only and the report says so.
func TestJudgeNoBoundary(t *testing.T) {
	tr := loadTrace(t)
	tr.Reverse.Control.Hops[0].Addr, tr.Reverse.Control.Hops[0].Answered, tr.Reverse.Control.Hops[0].Answer = netip.Addr{}, 0, ""
	if fs := JudgeTrace(&tr); len(fs) != 0 || tr.Boundary != "" || !strings.Contains(strings.Join(tr.Notes, "\n"), "not a state problem") {
		t.Errorf("a SYN that stops too: findings %v, boundary %q, notes %q", findingIDs(fs), tr.Boundary, tr.Notes)
	}
	tr = loadTrace(t)
	tr.Reverse.Reached, tr.Reverse.Control = true, nil
	if fs := JudgeTrace(&tr); len(fs) != 0 || tr.Boundary != "" {
		t.Errorf("a reply that gets through: findings %v, boundary %q", findingIDs(fs), tr.Boundary)
	}
	tr = loadTrace(t)
	tr.Reverse = evidence.TracePath{Direction: evidence.TraceReply, Tuple: tr.Flow.Reverse(), Hops: []evidence.TraceHop{{Iface: "eth0", Answer: evidence.AnswerRoute}}}
	tr.Peer = nil
	fs := JudgeTrace(&tr)
	if len(fs) != 0 || !strings.Contains(tr.Divergence, "the reply was not traced") || !strings.Contains(tr.Divergence, "--peer") {
		t.Errorf("without a peer: findings %v, divergence %q", findingIDs(fs), tr.Divergence)
	}
}

// TestJudgeRefusedByICMP: a device that refuses the reply's probes with
// ICMP administratively prohibited is named as it says.
func TestJudgeRefusedByICMP(t *testing.T) {
	tr := loadTrace(t)
	h := tr.Reverse.Hop(2)
	h.Answer, h.Code = evidence.AnswerUnreachable, 13
	JudgeTrace(&tr)
	if tr.BoundaryAddr != fw2 || !strings.Contains(tr.Boundary, "administratively prohibited") {
		t.Errorf("boundary %s: %q", tr.BoundaryAddr, tr.Boundary)
	}
}

// TestJudgeNotesNAT: a hop whose answer shows a translator is noted.
func TestJudgeNotesNAT(t *testing.T) {
	tr := loadTrace(t)
	tr.Forward.Hops[1].NAT = "the answer quotes destination 203.0.113.10:8080 (sent 198.51.100.100:8080)"
	JudgeTrace(&tr)
	if !strings.Contains(strings.Join(tr.Notes, "\n"), "NAT on the request's path before hop 1 (192.0.2.1): the answer quotes destination") {
		t.Errorf("notes %q", tr.Notes)
	}
}

// TestJudgePeerFailed: a peer that could not trace is a finding about the
// peer, and the local path is still judged.
func TestJudgePeerFailed(t *testing.T) {
	tr := loadTrace(t)
	tr.Reverse = evidence.TracePath{Direction: evidence.TraceReply, Tuple: tr.Flow.Reverse()}
	tr.Peer = &evidence.TracePeer{Command: []string{"ssh", "db1", "asym", "trace"}, Failure: &evidence.PeerFailure{Kind: evidence.PeerUnreachable, Reason: "the peer could not be reached", ExitCode: 255}}
	fs := JudgeTrace(&tr)
	if got := findingIDs(fs); !slices.Equal(got, []string{"peer_unreachable"}) {
		t.Errorf("findings %v", got)
	}
}

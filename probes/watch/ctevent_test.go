package watch

import (
	"encoding/binary"
	"testing"

	"asym/flow"

	mdnetlink "github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// TestWatchEventText decodes synthetic events through the same path as
// the kernel's and checks the conntrack -E rendering.
func TestWatchEventText(t *testing.T) {
	fwd := ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}
	back := ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}
	for _, tc := range []struct {
		flow   string
		typ    uint8
		flags  mdnetlink.HeaderFlags
		status uint32
		state  uint8
		want   string
		as     string
	}{
		{"tcp 192.0.2.10:40000 203.0.113.10:8080", ipctnlMsgCtNew, mdnetlink.Create | mdnetlink.Excl, ipsConfirmed, 1,
			"[NEW] tcp      6 120 SYN_SENT src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 [UNREPLIED] src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "original"},
		{"tcp 203.0.113.10 192.0.2.10", ipctnlMsgCtNew, 0, ipsConfirmed | ipsSeenReply, 2,
			"[UPDATE] tcp      6 120 SYN_RECV src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "reply"},
		{"tcp 192.0.2.10:40000 203.0.113.10:8080", ipctnlMsgCtDel, 0, ipsConfirmed | ipsSeenReply, 7,
			"[DESTROY] tcp      6 120 TIME_WAIT src=192.0.2.10 dst=203.0.113.10 sport=40000 dport=8080 src=203.0.113.10 dst=192.0.2.10 sport=8080 dport=40000 mark=0", "original"},
	} {
		f := parseFlow(t, tc.flow)
		m, _ := newCtMatcher(f)
		b := &batch{max: 10}
		w := &ctStream{f: f, m: m, batch: b}
		w.handle(ctTestMsg(t, tc.typ, tc.flags, fwd, back, tc.status, tc.state))
		if len(b.u.Events) != 1 {
			t.Fatalf("%s: %d events, dropped %d", tc.want, len(b.u.Events), b.u.Dropped)
		}
		e := b.u.Events[0]
		if e.Entry.Text != tc.want || e.Entry.MatchedAs != tc.as || e.Time.IsZero() {
			t.Errorf("event = %q matched as %q\nwant    %q matched as %q", e.Entry.Text, e.Entry.MatchedAs, tc.want, tc.as)
		}
	}
	// Not ctnetlink, or not an event type: ignored.
	f := parseFlow(t, "tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	b := &batch{max: 10}
	w := &ctStream{f: f, m: m, batch: b}
	msg := ctTestMsg(t, 1 /* IPCTNL_MSG_CT_GET */, 0, fwd, back, ipsConfirmed, 1)
	w.handle(msg)
	binary.NativeEndian.PutUint16(msg[4:], unix.NFNL_SUBSYS_CTNETLINK_EXP<<8)
	w.handle(msg)
	if len(b.u.Events) != 0 || b.u.Dropped != 0 {
		t.Errorf("non-events were taken: %+v", b.u)
	}
}

// BenchmarkWatchDecode is the cost of an event of the watched flow:
// decoding with the library and rendering.
func BenchmarkWatchDecode(b *testing.B) {
	f, _ := flow.ParseString("tcp 192.0.2.10:40000 203.0.113.10:8080")
	m, _ := newCtMatcher(f)
	msg := ctTestMsg(b, ipctnlMsgCtNew, mdnetlink.Create|mdnetlink.Excl,
		ctTestTuple{"192.0.2.10", "203.0.113.10", 6, 40000, 8080}, ctTestTuple{"203.0.113.10", "192.0.2.10", 6, 8080, 40000}, ipsConfirmed, 1)
	b.ReportAllocs()
	for b.Loop() {
		w := &ctStream{f: f, m: m, batch: &batch{max: 1}}
		w.handle(msg)
	}
}

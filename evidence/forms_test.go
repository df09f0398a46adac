package evidence

import (
	"net/netip"
	"slices"
	"testing"

	"asym/flow"
)

// TestFormsOfConnections: the forms conntrack gives a flow. With both
// ports the entry's translated tuple is one form; without a source port
// the flow's entries are its connections, and their forms keep only the
// ports the flow has: one form for all of them, none when nothing was
// translated.
func TestFormsOfConnections(t *testing.T) {
	ap := netip.MustParseAddrPort
	entry := func(origSrc, origDst, replySrc, replyDst string) ConntrackEntry {
		return ConntrackEntry{MatchedAs: "original", Proto: 6, OrigSrc: ap(origSrc), OrigDst: ap(origDst), ReplySrc: ap(replySrc), ReplyDst: ap(replyDst)}
	}
	cases := []struct {
		flow    string
		entries []ConntrackEntry
		want    []string
	}{
		{"tcp 192.0.2.10:41000 203.0.113.80:80",
			[]ConntrackEntry{entry("192.0.2.10:41000", "203.0.113.80:80", "198.18.0.10:8080", "192.0.2.10:41000")},
			[]string{"tcp 192.0.2.10:41000 198.18.0.10:8080"}},
		{"tcp 192.0.2.10 203.0.113.80:80", []ConntrackEntry{
			entry("192.0.2.10:41000", "203.0.113.80:80", "198.18.0.10:8080", "192.0.2.10:41000"),
			entry("192.0.2.10:41001", "203.0.113.80:80", "198.18.0.10:8080", "192.0.2.10:41001"),
		}, []string{"tcp 192.0.2.10 198.18.0.10:8080"}},
		{"tcp 192.0.2.10 203.0.113.80:80", []ConntrackEntry{
			entry("192.0.2.10:41000", "203.0.113.80:80", "203.0.113.80:80", "192.0.2.10:41000"),
			entry("192.0.2.10:41001", "203.0.113.80:80", "203.0.113.80:80", "192.0.2.10:41001"),
		}, nil},
	}
	for _, c := range cases {
		f, err := flow.ParseString(c.flow)
		if err != nil {
			t.Fatal(err)
		}
		e := Evidence{Flow: f, Conntrack: &ConntrackView{Looked: true, Entries: c.entries}}
		var got []string
		for _, form := range e.Forms() {
			got = append(got, form.String())
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s with %d entries: forms %q, want %q", c.flow, len(c.entries), got, c.want)
		}
	}
}

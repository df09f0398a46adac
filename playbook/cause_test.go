package playbook

import (
	"slices"
	"testing"

	"asym/evidence"
)

func order(fs []Finding) []FindingID {
	out := []FindingID{}
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// TestRootCauseRecorded: on the evidence of real lab runs, the cause heads
// the findings and the symptoms it explains follow it, whatever their
// severity.
func TestRootCauseRecorded(t *testing.T) {
	cases := []struct {
		recording string
		cause     FindingID
		explains  []FindingID
		order     []FindingID
	}{
		{"two-nics-strict-host", MissingSourceRule, []FindingID{RPFilterStrictDrop, ReplyWrongEgress},
			[]FindingID{MissingSourceRule, RPFilterStrictDrop, ReplyWrongEgress, ARPFlux}},
		{"two-nics-fabric-host", MissingSourceRule, []FindingID{ReplyWrongEgress},
			[]FindingID{MissingSourceRule, ReplyWrongEgress, ARPFlux}},
		// The cloud article's fix with a typo: a warning that explains a
		// critical finding comes before it.
		{"rule-typo-host", RuleUnknownSource, []FindingID{ReplyWrongEgress},
			[]FindingID{RuleUnknownSource, ReplyWrongEgress, ARPFlux}},
		{"two-isps-host", MissingSourceRule, []FindingID{ReplyWrongEgress},
			[]FindingID{MissingSourceRule, ReplyWrongEgress}},
		{"missing-link-route-host", MissingLinkRoute, nil, []FindingID{MissingLinkRoute}},
		{"firewall-ecmp-fw2", CtInvalidDrop, nil, []FindingID{CtInvalidDrop}},
		{"firewall-ecmp-fw1", ConntrackUnreplied, nil, []FindingID{ConntrackUnreplied}},
		{"firewall-ecmp-r2", ECMPMultipath, nil, []FindingID{ECMPMultipath}},
		{"mtu-blackhole-server-watch", MTUBlackhole, nil, []FindingID{MTUBlackhole}},
		{"healthy-host", "", nil, []FindingID{}},
	}
	for _, c := range cases {
		t.Run(c.recording, func(t *testing.T) {
			ev := loadRecorded(t, c.recording)
			fs := Analyze(&ev, len(Steps)-1)
			if got := order(fs); !slices.Equal(got, c.order) {
				t.Errorf("order %v, want %v", got, c.order)
			}
			cause, ok := RootCause(fs)
			if ok != (c.cause != "") || cause.Finding.ID != c.cause || !slices.Equal(cause.Explains, c.explains) {
				t.Errorf("root cause %q explaining %v (found %v), want %q explaining %v", cause.Finding.ID, cause.Explains, ok, c.cause, c.explains)
			}
		})
	}
}

// TestRootCauseBothEnds: recorded on the client of two-nics-fabric with the
// server as the peer: the server's missing rule explains its reply leaving
// by the wrong interface, which explains the reply lost between the ends.
func TestRootCauseBothEnds(t *testing.T) {
	here, there := recordedPair(t)
	pa := AnalyzePeer(&here, evidence.PeerResult{Collection: &evidence.Collection{Format: evidence.CollectFormat, Evidence: there}})
	fs := append(Analyze(&here, len(Steps)-1), pa.Findings...)
	fs = append(fs, pa.Peer.Findings...)
	Sort(fs)
	cause, ok := RootCause(fs)
	if !ok || cause.Finding.ID != MissingSourceRule || cause.Finding.Side != SidePeer ||
		!slices.Equal(cause.Explains, []FindingID{ReplyWrongEgress, ReplyLostInPath}) {
		t.Fatalf("root cause %s on %q explaining %v", cause.Finding.ID, cause.Finding.Side, cause.Explains)
	}
	if got := order(fs); got[0] != MissingSourceRule || fs[0].Side != SidePeer {
		t.Errorf("the cause on the peer heads the findings: %v", got)
	}
	if want := "missing_source_rule (on the peer): "; cause.Line()[:len(want)] != want {
		t.Errorf("the line says where the cause is: %q", cause.Line())
	}
}

// TestRootCauseScenarios: the lab scenarios that have no recording here, as
// the end-to-end test finds them, and what ranks one cause over another.
func TestRootCauseScenarios(t *testing.T) {
	f := func(id FindingID, side ...string) Finding {
		e, _ := Lookup(id)
		fd := Finding{ID: id, Severity: e.Severity, Step: e.Step, Title: e.Title}
		if len(side) > 0 {
			fd.Side = side[0]
		}
		return fd
	}
	cases := []struct {
		name     string
		findings []Finding
		cause    FindingID
		order    []FindingID
	}{
		{"port-selective-rule", []Finding{f(ReplyWrongEgress), f(RulePortSelective)}, RulePortSelective,
			[]FindingID{RulePortSelective, ReplyWrongEgress}},
		{"connmark-no-restore", []Finding{f(ReplyWrongEgress), f(MarkNotRestored)}, MarkNotRestored,
			[]FindingID{MarkNotRestored, ReplyWrongEgress}},
		{"src-valid-mark", []Finding{f(RPFilterStrictDrop), f(SrcValidMarkOff)}, SrcValidMarkOff,
			[]FindingID{SrcValidMarkOff, RPFilterStrictDrop}},
		{"route-src-hint --watch", []Finding{f(SYNUnanswered), f(WrongSourceAddress)}, WrongSourceAddress,
			[]FindingID{WrongSourceAddress, SYNUnanswered}},
		// Two causes of one symptom: the critical one with the host's fix
		// before the warning.
		{"host-ecmp-two-isps", []Finding{f(ECMPMultipath), f(ReplyWrongEgress), f(MissingSourceRule)}, MissingSourceRule,
			[]FindingID{MissingSourceRule, ReplyWrongEgress, ECMPMultipath}},
		{"nat-gateway-pair gw-b", []Finding{f(CtInvalidDrop), f(NATStateMiss)}, NATStateMiss,
			[]FindingID{NATStateMiss, CtInvalidDrop}},
		// A cause that explains a critical finding ranks before an
		// unrelated critical one; one that explains more, first.
		{"typo beside an unrelated drop", []Finding{f(CtInvalidDrop), f(ReplyWrongEgress), f(RuleUnknownSource)}, RuleUnknownSource,
			[]FindingID{RuleUnknownSource, ReplyWrongEgress, CtInvalidDrop}},
		{"the cause that explains more", []Finding{f(ReplyWrongEgress), f(RPFilterStrictDrop), f(SrcValidMarkOff), f(MissingSourceRule)}, MissingSourceRule,
			[]FindingID{MissingSourceRule, RPFilterStrictDrop, ReplyWrongEgress, SrcValidMarkOff}},
		// The kernel's drop witness: the neighbour that never answers is why
		// the SYN goes unanswered.
		{"neighbour failed --watch", []Finding{f(SYNUnanswered), f(NeighbourFailed)}, NeighbourFailed,
			[]FindingID{NeighbourFailed, SYNUnanswered}},
		// The peer's rule explains nothing of this host's.
		{"ends apart", []Finding{f(ReplyWrongEgress), f(MissingSourceRule, SidePeer)}, ReplyWrongEgress,
			[]FindingID{ReplyWrongEgress, MissingSourceRule}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := slices.Clone(c.findings)
			Sort(fs)
			if got := order(fs); !slices.Equal(got, c.order) {
				t.Errorf("order %v, want %v", got, c.order)
			}
			if cause, _ := RootCause(c.findings); cause.Finding.ID != c.cause {
				t.Errorf("root cause %s, want %s", cause.Finding.ID, c.cause)
			}
		})
	}
}

// TestExplainsIsSound: the causality names only findings of the catalog
// and has no cycle (a cycle would leave no root cause to name).
func TestExplainsIsSound(t *testing.T) {
	state := map[FindingID]int{} // 1 visiting, 2 done
	var visit func(id FindingID, path []FindingID)
	visit = func(id FindingID, path []FindingID) {
		if _, ok := Lookup(id); !ok {
			t.Errorf("Explains names %s, which is not in the catalog", id)
		}
		switch state[id] {
		case 1:
			t.Fatalf("Explains has a cycle: %v", append(path, id))
		case 2:
			return
		}
		state[id] = 1
		for _, k := range Explains[id] {
			visit(k, append(path, id))
		}
		state[id] = 2
	}
	for id := range Explains {
		visit(id, nil)
	}
}

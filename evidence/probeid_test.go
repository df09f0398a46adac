package evidence

import (
	"reflect"
	"testing"
)

// TestSlotsCoverEvidence fills every view field of an Evidence by
// reflection and checks that Reports and Get find each one under its own
// probe id: a field added to Evidence without its slot fails here.
func TestSlotsCoverEvidence(t *testing.T) {
	var e Evidence
	v := reflect.ValueOf(&e).Elem()
	byField := map[string]Reporter{}
	for i := range v.NumField() {
		f := v.Field(i)
		if f.Kind() != reflect.Pointer {
			continue
		}
		f.Set(reflect.New(f.Type().Elem()))
		r, ok := f.Interface().(Reporter)
		if !ok {
			t.Fatalf("Evidence.%s (%s) is not a Reporter", v.Type().Field(i).Name, f.Type())
		}
		byField[v.Type().Field(i).Name] = r
	}
	want := map[ProbeID]string{
		ProbeHost: "Host", ProbeRequest: "Request", ProbeReply: "Reply", ProbeCounters: "Counters",
		ProbeFirewall: "Firewall", ProbeConntrack: "Conntrack", ProbeRules: "Rules", ProbeTables: "Tables",
		ProbeSysctls: "Sysctls", ProbeNeighbours: "Neighbours", ProbeLive: "Live", ProbeMarks: "Marks",
	}
	if len(want) != len(byField) {
		t.Fatalf("Evidence has %d views, this test knows %d: add the new one here and to slots", len(byField), len(want))
	}
	reports := e.Reports()
	if len(reports) != len(byField) {
		t.Errorf("Reports has %d entries, Evidence %d views", len(reports), len(byField))
	}
	for id, name := range want {
		if got := e.Get(id); got != byField[name] {
			t.Errorf("Get(%s) = %p, want Evidence.%s (%p)", id, got, name, byField[name])
		}
		if got := reports[id]; got != byField[name] {
			t.Errorf("Reports()[%s] = %p, want Evidence.%s (%p)", id, got, name, byField[name])
		}
	}
}

func TestGetSet(t *testing.T) {
	var e Evidence
	for _, s := range slots {
		if r := e.Get(s.id); r != nil {
			t.Errorf("Get(%s) on empty evidence = %#v, want a nil Reporter", s.id, r)
		}
	}
	if len(e.Reports()) != 0 {
		t.Errorf("Reports on empty evidence: %v", e.Reports())
	}

	reply := &PathView{}
	if !e.Set(ProbeReply, reply) || e.Reply != reply || e.Request != nil {
		t.Errorf("Set(ProbeReply, a *PathView) did not store it in Reply alone: %+v", e)
	}
	if e.Set(ProbeReply, &HostView{}) || e.Reply != reply {
		t.Error("Set(ProbeReply, a *HostView) was accepted or changed Reply")
	}
	if e.Set(ProbeReply, &Report{}) || e.Reply != reply {
		t.Error("Set(ProbeReply, a bare *Report) was accepted or changed Reply")
	}
	if e.Set("no-such-probe", reply) || e.Get("no-such-probe") != nil {
		t.Error("an unknown probe id was accepted")
	}

	// Copying probe by probe, as a replaying prober does, copies exactly
	// what ran.
	var copied Evidence
	for _, s := range slots {
		if !copied.Set(s.id, e.Get(s.id)) {
			t.Errorf("Set(%s, Get(%s)) refused", s.id, s.id)
		}
	}
	if !reflect.DeepEqual(copied, e) {
		t.Errorf("copied %+v, want %+v", copied, e)
	}

	if !e.Set(ProbeReply, nil) || e.Reply != nil || e.Get(ProbeReply) != nil {
		t.Error("Set(ProbeReply, nil) did not clear Reply")
	}
}

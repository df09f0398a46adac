package evidence

// slot is where the view of one probe lives in an Evidence.
type slot struct {
	id  ProbeID
	get func(*Evidence) Reporter
	set func(*Evidence, Reporter) bool
}

// slots maps each probe id to its field, in the order a full check runs
// them: the one place that says which field holds which probe's view.
var slots = []slot{
	field(ProbeHost, func(e *Evidence) **HostView { return &e.Host }),
	field(ProbeRequest, func(e *Evidence) **PathView { return &e.Request }),
	field(ProbeReply, func(e *Evidence) **PathView { return &e.Reply }),
	field(ProbeCounters, func(e *Evidence) **Counters { return &e.Counters }),
	field(ProbeFirewall, func(e *Evidence) **FirewallView { return &e.Firewall }),
	field(ProbeConntrack, func(e *Evidence) **ConntrackView { return &e.Conntrack }),
	field(ProbeMarks, func(e *Evidence) **MarksView { return &e.Marks }),
	field(ProbeRules, func(e *Evidence) **RulesView { return &e.Rules }),
	field(ProbeTables, func(e *Evidence) **TablesView { return &e.Tables }),
	field(ProbeSysctls, func(e *Evidence) **SysctlView { return &e.Sysctls }),
	field(ProbeNeighbours, func(e *Evidence) **NeighView { return &e.Neighbours }),
	field(ProbeLive, func(e *Evidence) **LiveEvidence { return &e.Live }),
}

// field makes the slot of probe id from the address of its field. Get must
// return a nil Reporter for a nil field, not a nil *V in a non-nil
// interface, hence the type parameters.
func field[V any, P interface {
	*V
	Reporter
}](id ProbeID, at func(*Evidence) *P) slot {
	return slot{
		id: id,
		get: func(e *Evidence) Reporter {
			if v := *at(e); v != nil {
				return v
			}
			return nil
		},
		set: func(e *Evidence, r Reporter) bool {
			if r == nil {
				*at(e) = nil
				return true
			}
			v, ok := r.(P)
			if ok {
				*at(e) = v
			}
			return ok
		},
	}
}

func slotOf(id ProbeID) (slot, bool) {
	for _, s := range slots {
		if s.id == id {
			return s, true
		}
	}
	return slot{}, false
}

// Get returns the view probe id left in e, nil when it has not run (or
// there is no such probe).
func (e *Evidence) Get(id ProbeID) Reporter {
	s, ok := slotOf(id)
	if !ok {
		return nil
	}
	return s.get(e)
}

// Set stores r as the view of probe id, or clears it when r is nil. It
// says whether it did: r must be the view that probe makes (*HostView for
// ProbeHost, *PathView for ProbeRequest …), and id a probe Evidence holds.
func (e *Evidence) Set(id ProbeID, r Reporter) bool {
	s, ok := slotOf(id)
	return ok && s.set(e, r)
}

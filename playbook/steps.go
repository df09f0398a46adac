package playbook

import "asym/evidence"

// Analyzer turns evidence into findings. It must be pure and must stay
// silent when the evidence it needs is missing: a probe that could not run
// is never a finding, and a healthy host gives none.
type Analyzer func(e *evidence.Evidence) []Finding

// Step is one step of the fast-diagnosis playbook.
type Step struct {
	ID        string
	Name      string
	Proves    string
	Probes    []evidence.ProbeID
	Analyzers []Analyzer
}

// Steps is the playbook, in order. A step's analyzers may use the evidence
// of earlier steps.
var Steps = []Step{
	{
		ID:   "first",
		Name: "First: prove it is path-related",
		Proves: "Ask the kernel how it routes this flow and its reply on this host. If the two directions use " +
			"different interfaces, or the kernel refuses the packet where it arrives, the problem is the path, not the host's service.",
		Probes:    []evidence.ProbeID{evidence.ProbeHost, evidence.ProbeRequest, evidence.ProbeReply, evidence.ProbeCounters},
		Analyzers: []Analyzer{rpFilterStrictDrop, replyWrongEgress, unboundSource, wrongSourceAddress, routeRefused},
	},
	{
		ID:   "second",
		Name: "Second: find the stateful chokepoint",
		Proves: "Look for what keeps state and drops what it did not see begin: conntrack INVALID drops, " +
			"reverse-path firewall rules, NAT, and ECMP that sends the two directions different ways.",
		Probes:    []evidence.ProbeID{evidence.ProbeFirewall, evidence.ProbeConntrack, evidence.ProbeMarks},
		Analyzers: []Analyzer{ctInvalidDrop, firewallPathDrop, nftFibRPFilterDrop, conntrackUnreplied, natStateMiss, natNoState, ecmpMultipath, markNotRestored, srcValidMarkOff},
	},
	{
		ID:   "third",
		Name: "Third: confirm with routing tables and live evidence",
		Proves: "Read the policy rules, the tables they point at and the sysctls that decide the outcome, to name " +
			"the configuration that causes the asymmetry and the change that removes it; with --watch (or l in the view), " +
			"the flow's packets, conntrack events and counters while the failure is reproduced.",
		Probes: []evidence.ProbeID{evidence.ProbeRules, evidence.ProbeTables, evidence.ProbeSysctls, evidence.ProbeNeighbours},
		// The kernel's drops come before the packets: where a drop raises a
		// suspicion to proven, its words (the reason, the rule) are the title.
		Analyzers: []Analyzer{missingSourceRule, ruleUnknownSource, ruleEmptyTable, rulePortSelective, ruleShadowed, missingLinkRoute, arpFlux, mtuBlackhole, mtuOwnICMP,
			dropRPFilter, dropNetfilter, dropMTU, dropNeighbour, kernelDrop,
			liveWrongEgress, liveWrongSource, liveNATNoState, liveRPFilterDrop, liveSilentConntrack, liveSynUnanswered, liveOnLinkDetour,
			liveECMPSplit, liveUnrepliedMiddle},
	},
}

// StepIndex finds a step by id; -1 when unknown.
func StepIndex(id string) int {
	for i, s := range Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// Analyze runs the analyzers of steps 0..upTo over the evidence and returns
// the findings, sorted, with duplicates (same id) merged.
func Analyze(e *evidence.Evidence, upTo int) []Finding {
	var out []Finding
	seen := map[FindingID]int{}
	for i := 0; i <= upTo && i < len(Steps); i++ {
		for _, a := range Steps[i].Analyzers {
			for _, f := range a(e) {
				f.Step = Steps[i].ID
				if ent, ok := Lookup(f.ID); ok {
					if f.Severity == "" {
						f.Severity = ent.Severity
					}
					if f.Why == "" {
						f.Why = ent.Short()
					}
				}
				if j, dup := seen[f.ID]; dup {
					out[j] = merge(out[j], f)
					continue
				}
				seen[f.ID] = len(out)
				out = append(out, f)
			}
		}
	}
	Sort(out)
	return out
}

// merge joins a later finding of the same id into an earlier one: their
// evidence adds up, and a more severe later one (a suspicion from state
// proven by packets) gives the finding its severity and title, keeping
// the earlier fix when it has none.
func merge(a, b Finding) Finding {
	a.Evidence = appendNew(a.Evidence, b.Evidence...)
	if b.Severity.rank() < a.Severity.rank() {
		a.Severity, a.Title = b.Severity, b.Title
		if b.Fix != nil {
			a.Fix = b.Fix
		}
	}
	return a
}

func appendNew(ls []Line, more ...Line) []Line {
	for _, m := range more {
		dup := false
		for _, l := range ls {
			if l == m {
				dup = true
			}
		}
		if !dup {
			ls = append(ls, m)
		}
	}
	return ls
}

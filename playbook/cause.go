package playbook

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Cause is the most likely root cause among a check's findings: nothing
// else found explains it, and of such findings it explains the worst and
// the most of the others (Explains).
type Cause struct {
	Finding Finding
	// Explains are the other findings it explains, directly or through
	// another one, in the order they are listed.
	Explains []FindingID
}

// RootCause picks the most likely root cause among findings; false when
// there are none.
func RootCause(fs []Finding) (Cause, bool) {
	if len(fs) == 0 {
		return Cause{}, false
	}
	g := newCausality(fs)
	root := g.roots()[0]
	c := Cause{Finding: g.fs[root]}
	for _, i := range g.reach(root) {
		c.Explains = append(c.Explains, g.fs[i].ID)
	}
	return c, true
}

// Line is the cause in one line, for the top of a report.
func (c Cause) Line() string {
	s := string(c.Finding.ID)
	if w := c.Finding.Where(); w != "" {
		s += " (" + w + ")"
	}
	s += ": " + c.Finding.Title
	if len(c.Explains) > 0 {
		s += fmt.Sprintf(" — explains %s", joinIDs(c.Explains))
	}
	return Clean(s)
}

func joinIDs(ids []FindingID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, ", ")
}

// Sort orders findings as a person should read them: each root cause
// followed by the symptoms it explains, the causes that explain the worst
// and the most first; what nothing relates is ordered by severity, then by
// playbook step, then in catalog order.
func Sort(fs []Finding) {
	g := newCausality(fs)
	placed := make([]bool, len(g.fs))
	out := make([]Finding, 0, len(g.fs))
	var place func(i int)
	place = func(i int) {
		if placed[i] {
			return
		}
		placed[i] = true
		out = append(out, g.fs[i])
		for _, k := range g.explains[i] {
			place(k)
		}
	}
	for _, r := range g.roots() {
		place(r)
	}
	for i := range g.fs {
		place(i) // none is left while Explains is acyclic
	}
	copy(fs, out)
}

// causality holds findings in severity order with who explains whom.
type causality struct {
	fs        []Finding
	explains  [][]int // the findings each one explains directly
	explained []bool  // another finding explains it
}

func newCausality(fs []Finding) causality {
	g := causality{fs: slices.Clone(fs)}
	sortBySeverity(g.fs)
	g.explains = make([][]int, len(g.fs))
	g.explained = make([]bool, len(g.fs))
	for i, a := range g.fs {
		for j, b := range g.fs {
			if explains(a, b) {
				g.explains[i] = append(g.explains[i], j)
				g.explained[j] = true
			}
		}
	}
	return g
}

// explains says whether finding a can cause finding b here: the catalog
// says so and b is on a's end of the flow (or across both ends).
func explains(a, b Finding) bool {
	if a.ID == b.ID || (a.Side != b.Side && b.Side != SideBoth) {
		return false
	}
	return slices.Contains(Explains[a.ID], b.ID)
}

// reach lists what finding i explains, directly or through another, in
// severity order.
func (g causality) reach(i int) []int {
	seen := map[int]bool{i: true}
	queue := []int{i}
	for len(queue) > 0 {
		for _, k := range g.explains[queue[0]] {
			if !seen[k] {
				seen[k] = true
				queue = append(queue, k)
			}
		}
		queue = queue[1:]
	}
	delete(seen, i)
	out := make([]int, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// roots are the findings nothing else explains, the most telling first:
// by the worst finding each explains (itself included), then by how many
// it explains, then in severity order. The catalog is acyclic, so there
// is always one.
func (g causality) roots() []int {
	type root struct{ i, worst, n int }
	var rs []root
	for i := range g.fs {
		if g.explained[i] {
			continue
		}
		r := root{i: i, worst: g.fs[i].Severity.rank()}
		for _, k := range g.reach(i) {
			r.worst = min(r.worst, g.fs[k].Severity.rank())
			r.n++
		}
		rs = append(rs, r)
	}
	sort.SliceStable(rs, func(a, b int) bool {
		if rs[a].worst != rs[b].worst {
			return rs[a].worst < rs[b].worst
		}
		if rs[a].n != rs[b].n {
			return rs[a].n > rs[b].n
		}
		return rs[a].i < rs[b].i
	})
	out := make([]int, 0, len(rs))
	for _, r := range rs {
		out = append(out, r.i)
	}
	return out
}

// sortBySeverity is the order of findings that nothing relates: by
// severity, then by playbook step (so they read as the story unfolds: the
// drop, the asymmetry, then its cause), then in catalog order.
func sortBySeverity(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Severity.rank() != fs[j].Severity.rank() {
			return fs[i].Severity.rank() < fs[j].Severity.rank()
		}
		if a, b := StepIndex(fs[i].Step), StepIndex(fs[j].Step); a != b {
			return a < b
		}
		return catalogIndex(fs[i].ID) < catalogIndex(fs[j].ID)
	})
}

package fix

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
)

// Kind names a kind of step in JSON, in journals and in messages.
type Kind string

// Step is one change to a host's network configuration.
//
// A step prints itself (Words), checks itself against the kernel as it is
// now and works out what undoes it (Prepare), and makes itself (Apply). A
// new kind of change is one type that implements these and registers
// itself in stepKinds.
type Step interface {
	Kind() Kind
	// Words is the command a person would type for it (iproute2, sysctl).
	Words() []string
	// Missing names a fact asym could not find (the gateway); such a step
	// is shown but never applied. "" when complete.
	Missing() string
	// Prepare checks that the step can be made now, given the steps of the
	// same fix before it (prep), and returns the step to make (itself, or
	// itself made exact from the kernel's state) and the step that undoes
	// it exactly. It changes nothing.
	Prepare(ctx context.Context, k Kernel, prep *Preparation) (do, undo Step, err error)
	// Apply makes the change, and only to the object it names: a step that
	// removes or changes an object first finds it exactly as it expects it
	// (IsGone when it is not there, a Drift when someone else's is in its
	// place). An undo is a step too.
	Apply(ctx context.Context, k Kernel) error
}

// Kernel is what steps need of the kernel of the namespace they change.
// fix/apply implements it with netlink and /proc/sys writes on a thread
// inside the namespace; tests may fake it.
type Kernel interface {
	Rules(ctx context.Context, v6 bool) ([]RuleSpec, error)
	AddRule(ctx context.Context, r RuleSpec) error
	DelRule(ctx context.Context, r RuleSpec) error
	// CountRoutes counts a table's routes, up to limit.
	CountRoutes(ctx context.Context, v6 bool, table, limit int) (int, error)
	AddRoute(ctx context.Context, r RouteSpec) error
	DelRoute(ctx context.Context, r RouteSpec) error
	ReplaceRoute(ctx context.Context, r RouteSpec) error
	// Routes returns the routes of r's table and prefix by r's interface
	// as the kernel holds them (gateway, src, scope, metric, protocol).
	Routes(ctx context.Context, r RouteSpec) ([]RouteSpec, error)
	HasLink(ctx context.Context, name string) bool
	// ReadSysctl reads a sysctl by its dotted name; ok is false when the
	// namespace has no such sysctl.
	ReadSysctl(ctx context.Context, name string) (value string, ok bool, err error)
	WriteSysctl(ctx context.Context, name, value string) error
	// AnnounceARP sends one gratuitous ARP for addr from dev.
	AnnounceARP(ctx context.Context, dev string, addr netip.Addr) error
	// Describe names the namespace in messages ("netns asym-lab-host").
	Describe() string
}

// Preparation is what the steps of one fix, prepared in order, tell the
// ones after them: priorities an earlier deletion frees, tables an earlier
// route fills.
type Preparation struct {
	freed  map[int]bool
	filled map[int]bool
}

func (p *Preparation) free(prio int) {
	if p.freed == nil {
		p.freed = map[int]bool{}
	}
	p.freed[prio] = true
}

func (p *Preparation) fill(table int) {
	if p.filled == nil {
		p.filled = map[int]bool{}
	}
	p.filled[table] = true
}

// stepKinds makes an empty step of each kind, for reading steps back from
// JSON (reports, journals).
var stepKinds = map[Kind]func() Step{
	KindRuleAdd:      func() Step { return &RuleAdd{} },
	KindRuleDel:      func() Step { return &RuleDel{} },
	KindRouteAdd:     func() Step { return &RouteAdd{} },
	KindRouteDel:     func() Step { return &RouteDel{} },
	KindRouteReplace: func() Step { return &RouteReplace{} },
	KindSysctlSet:    func() Step { return &SysctlSet{} },
	KindARPAnnounce:  func() Step { return &ARPAnnounce{} },
}

// Steps is a list of steps that reads and writes itself as JSON objects
// each carrying its "kind".
type Steps []Step

// MarshalJSON writes each step's fields with its kind first.
func (s Steps) MarshalJSON() ([]byte, error) {
	out := make([]json.RawMessage, len(s))
	for i, st := range s {
		b, err := marshalStep(st)
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads steps written by MarshalJSON.
func (s *Steps) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	out := make(Steps, len(raw))
	for i, r := range raw {
		st, err := unmarshalStep(r)
		if err != nil {
			return err
		}
		out[i] = st
	}
	*s = out
	return nil
}

func marshalStep(st Step) ([]byte, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	kind, _ := json.Marshal(st.Kind())
	if string(b) == "{}" {
		return []byte(`{"kind":` + string(kind) + `}`), nil
	}
	return append([]byte(`{"kind":`+string(kind)+`,`), b[1:]...), nil
}

func unmarshalStep(b []byte) (Step, error) {
	var k struct {
		Kind Kind `json:"kind"`
	}
	if err := json.Unmarshal(b, &k); err != nil {
		return nil, err
	}
	mk, ok := stepKinds[k.Kind]
	if !ok {
		return nil, fmt.Errorf("a fix step of kind %q, which this asym does not know", k.Kind)
	}
	st := mk()
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("a %s step: %w", k.Kind, err)
	}
	return st, nil
}

// StepJSON carries one step in a struct field (a journal entry).
type StepJSON struct{ Step }

// MarshalJSON writes the step with its kind.
func (s StepJSON) MarshalJSON() ([]byte, error) { return marshalStep(s.Step) }

// UnmarshalJSON reads a step with its kind.
func (s *StepJSON) UnmarshalJSON(b []byte) error {
	st, err := unmarshalStep(b)
	s.Step = st
	return err
}

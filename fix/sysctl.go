package fix

import (
	"context"
	"fmt"
	"strings"

	"asym/evidence"
)

// KindSysctlSet is the kind of SysctlSet.
const KindSysctlSet Kind = "sysctl.set"

// SysctlSet writes one sysctl of the namespace.
type SysctlSet struct {
	Sysctl string `json:"sysctl"` // dotted name, e.g. net.ipv4.conf.eth1.rp_filter
	Value  string `json:"value"`
	// Expect is the value the sysctl must hold for the write to happen (set
	// when prepared): the value read for the fix, and for the undo the value
	// asym wrote. A value someone set since is theirs: the undo reports it
	// and leaves it.
	Expect string `json:"expect,omitempty"`
}

func (s *SysctlSet) Kind() Kind      { return KindSysctlSet }
func (s *SysctlSet) Words() []string { return []string{"sysctl", "-w", s.Sysctl + "=" + s.Value} }
func (s *SysctlSet) Missing() string { return "" }

// Iface is the interface the sysctl is about, "" for a global one.
func (s *SysctlSet) Iface() string { return evidence.SysctlIface(s.Sysctl) }

// Prepare reads the value the undo puts back.
func (s *SysctlSet) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	old, ok, err := k.ReadSysctl(ctx, s.Sysctl)
	if err != nil {
		return nil, nil, fmt.Errorf("read %s: %w", s.Sysctl, err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("%s does not exist in %s", s.Sysctl, k.Describe())
	}
	old = sysctlValue(old)
	return &SysctlSet{Sysctl: s.Sysctl, Value: s.Value, Expect: old}, &SysctlSet{Sysctl: s.Sysctl, Value: old, Expect: s.Value}, nil
}

// Apply writes the value when the sysctl holds the expected one. It holds
// the value already: done (IsGone). Neither: a Drift, left alone.
func (s *SysctlSet) Apply(ctx context.Context, k Kernel) error {
	cur, ok, err := k.ReadSysctl(ctx, s.Sysctl)
	switch {
	case err != nil:
		return fmt.Errorf("read %s: %w", s.Sysctl, err)
	case !ok:
		// The interface went away, and its settings with it.
		return errGone{s.Sysctl + " does not exist any more"}
	case sysctlValue(cur) == sysctlValue(s.Value):
		return errGone{s.Sysctl + " is " + sysctlValue(s.Value) + " already"}
	case s.Expect != "" && sysctlValue(cur) != sysctlValue(s.Expect):
		return &Drift{fmt.Sprintf("%s is %s now, not the %s asym expected: someone changed it since; asym leaves it alone",
			s.Sysctl, sysctlValue(cur), sysctlValue(s.Expect))}
	}
	return k.WriteSysctl(ctx, s.Sysctl, s.Value)
}

// sysctlValue is a value as compared: the kernel separates the numbers of
// a multi-valued sysctl with tabs and ends with a newline; people type
// spaces.
func sysctlValue(v string) string { return strings.Join(strings.Fields(v), " ") }

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
	return s, &SysctlSet{Sysctl: s.Sysctl, Value: strings.TrimSpace(old)}, nil
}

func (s *SysctlSet) Apply(ctx context.Context, k Kernel) error {
	return k.WriteSysctl(ctx, s.Sysctl, s.Value)
}

package probes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/probes/nldump"

	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// ProbeRules lists the policy rules of the flow's family that concern the
// flow (scope; nil keeps them all) and counts the others. The kernel has no
// filter for a rule dump, so every rule is read; each is parsed as it
// arrives and kept only when it concerns the flow, so a host with tens of
// thousands of rules costs their messages, and a report as long as what
// concerns the flow.
func ProbeRules(ctx context.Context, t *Target, f flow.Flow, scope *evidence.RuleScope) *evidence.RulesView {
	r, start := evidence.Begin("rules", "Policy routing rules")
	v := &evidence.RulesView{Report: r}
	defer v.Finish(start)
	family := unix.AF_INET
	v.Command = t.IPCmd("rule", "show")
	if f.Is6() {
		family = unix.AF_INET6
		v.Command = t.IPCmd("-6", "rule", "show")
	}
	keep := func(r *evidence.Rule) bool { return scope == nil || scope.Concerns(*r) }
	var kept []evidence.Rule
	var n int
	if err := t.withTimeout(ctx, func() (err error) { kept, n, err = t.dumpRules(family, keep); return }); err != nil {
		v.Fail(err)
		return v
	}
	t.gotRules.Add(int64(n))
	v.Rules, v.Others = kept, n-len(kept)
	for i := range v.Rules {
		v.Rules[i].Text = v.Rules[i].Render()
	}
	sort.SliceStable(v.Rules, func(i, j int) bool { return v.Rules[i].Priority < v.Rules[j].Priority })
	for _, r := range v.Rules {
		v.Add("%s", r.Text)
	}
	if v.Others > 0 {
		v.Add("# %d other rule(s) select neither direction of this flow nor an address of this host", v.Others)
	}
	return v
}

// dumpRules reads every policy rule of a family with one RTM_GETRULE dump
// on a socket of its own, read in place (nldump), and returns the ones
// keep wants (each parsed as it arrives, the others dropped at once) and
// how many there were. A dump the kernel interrupted (the rules changed
// meanwhile) is read once more.
func (t *Target) dumpRules(family int, keep func(*evidence.Rule) bool) ([]evidence.Rule, int, error) {
	cfg := &mdnetlink.Config{}
	if t.Kind != "host" {
		cfg.NetNS = int(t.ns)
	}
	c, err := mdnetlink.Dial(unix.NETLINK_ROUTE, cfg)
	if err != nil {
		return nil, 0, fmt.Errorf("open a route socket in %s: %w", t, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(probeSocketTimeout))
	for try := 0; ; try++ {
		var kept []evidence.Rule
		n := 0
		// struct fib_rule_hdr with only the family set.
		err := nldump.Request(c, mdnetlink.Message{Header: mdnetlink.Header{Type: unix.RTM_GETRULE}, Data: []byte{byte(family), 11: 0}},
			func(typ uint16, m []byte) error {
				var r evidence.Rule
				if typ == unix.RTM_NEWRULE && parseRule(m, &r) {
					n++
					if keep(&r) {
						kept = append(kept, r)
					}
				}
				return nil
			})
		if errors.Is(err, nldump.ErrInterrupted) && try == 0 {
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("list the policy rules of %s: %w", t, err)
		}
		return kept, n, nil
	}
}

// parseRule reads one RTM_NEWRULE: struct fib_rule_hdr (family, dst_len,
// src_len, tos, table, two reserved bytes, action, u32 flags), then its
// attributes (include/uapi/linux/fib_rules.h).
func parseRule(m []byte, r *evidence.Rule) bool {
	const hdr = 12
	if len(m) < hdr {
		return false
	}
	*r = evidence.Rule{Tos: uint(m[3]), Table: int(m[4]), Invert: native.Uint32(m[8:])&unix.FIB_RULE_INVERT != 0, SuppressPrefixlen: -1}
	dstLen, srcLen := int(m[1]), int(m[2])
	r.Action = ruleActions[m[7]]
	if r.Action == "" {
		r.Action = "lookup"
	}
	for _, a := range nldump.Attrs(m[hdr:]) {
		ruleAttr(r, a.Type, a.Value, dstLen, srcLen)
	}
	if r.Goto > 0 && r.Action == "lookup" {
		r.Action = "goto"
	}
	return true
}

// ruleActions name the FR_ACT_* actions; FR_ACT_TO_TBL is lookup.
var ruleActions = map[uint8]string{
	nl.FR_ACT_TO_TBL: "lookup", nl.FR_ACT_GOTO: "goto", nl.FR_ACT_NOP: "nop", nl.FR_ACT_BLACKHOLE: "blackhole",
	nl.FR_ACT_UNREACHABLE: "unreachable", nl.FR_ACT_PROHIBIT: "prohibit",
}

// ruleAttr reads one attribute of a rule into r.
func ruleAttr(r *evidence.Rule, typ uint16, v []byte, dstLen, srcLen int) {
	u32 := func() uint32 {
		if len(v) < 4 {
			return 0
		}
		return native.Uint32(v)
	}
	switch typ {
	case nl.FRA_DST, nl.FRA_SRC:
		a, ok := netip.AddrFromSlice(v)
		if !ok {
			return
		}
		if typ == nl.FRA_DST {
			r.Dst = netip.PrefixFrom(a.Unmap(), dstLen)
		} else {
			r.Src = netip.PrefixFrom(a.Unmap(), srcLen)
		}
	case nl.FRA_IIFNAME:
		r.Iif = cString(v)
	case nl.FRA_OIFNAME:
		r.Oif = cString(v)
	case nl.FRA_GOTO:
		r.Goto = int(u32())
	case nl.FRA_PRIORITY:
		r.Priority = int(u32())
	case nl.FRA_FWMARK:
		r.Mark = u32()
	case nl.FRA_FWMASK:
		r.Mask = u32()
	case nl.FRA_TABLE:
		r.Table = int(u32())
	case nl.FRA_SUPPRESS_PREFIXLEN:
		if p := u32(); p != 0xffffffff {
			r.SuppressPrefixlen = int(p)
		}
	case nl.FRA_IP_PROTO:
		if len(v) > 0 {
			r.IPProto = int(v[0])
		}
	case nl.FRA_SPORT_RANGE, nl.FRA_DPORT_RANGE:
		if len(v) >= 4 {
			pr := [2]uint16{native.Uint16(v), native.Uint16(v[2:])}
			if typ == nl.FRA_SPORT_RANGE {
				r.Sport = pr
			} else {
				r.Dport = pr
			}
		}
	case nl.FRA_UID_RANGE:
		if len(v) >= 8 {
			r.UID, r.HasUID = [2]uint32{native.Uint32(v), native.Uint32(v[4:])}, true
		}
	}
}

// cString is a NUL-terminated attribute's string.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

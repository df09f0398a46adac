package firewall

// iptables-legacy: x_tables rules are invisible to nf_tables. They are
// read through the kernel (probes/xtables: IPT_SO_GET_INFO and
// IPT_SO_GET_ENTRIES inside the namespace, only for the tables
// ip_tables_names lists, since asking for another one creates it), so a
// host without the iptables tools is read the same as one with them.

import (
	"context"
	"strings"

	"asym/evidence"
	"asym/probes/xtables"
)

// probeLegacy adds the iptables-legacy tables and their rules that matter
// to v. Only running out of time is an error; what cannot be read is a
// line of v.
func probeLegacy(ctx context.Context, v *evidence.FirewallView, ns Namespace) error {
	rs, err := xtables.Read(ctx, ns.InNS)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.Add("could not read the iptables-legacy tables: %v", err)
		return nil
	}
	if len(rs.Tables) == 0 {
		return nil
	}
	v.LegacyTables = rs.Names()
	rules := rs.FirewallRules()
	v.Add("# %s", ns.Cmd("iptables-legacy-save", "-c"))
	v.Rules = append(v.Rules, rules...)
	v.Lines = append(v.Lines, renderLines(rules, rs.Headers())...)
	if len(rules) == 0 {
		v.Add("no ct state invalid or rpfilter rules in iptables-legacy tables %s", strings.Join(v.LegacyTables, ", "))
	}
	for _, p := range rs.Problems() {
		v.Add("%s", p)
	}
	return nil
}

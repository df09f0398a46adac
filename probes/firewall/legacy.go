package firewall

// iptables-legacy: x_tables rules are invisible to nf_tables. They are
// read through the kernel (probes/xtables: IPT_SO_GET_INFO and
// IPT_SO_GET_ENTRIES inside the namespace, only for the tables
// ip_tables_names lists, since asking for another one creates it), so a
// host without the iptables tools is read the same as one with them.

import (
	"context"

	"asym/evidence"
	"asym/probes/xtables"
)

// readLegacy reads the iptables-legacy tables. Only running out of time is
// an error; what cannot be read is a line of v.
func readLegacy(ctx context.Context, v *evidence.FirewallView, ns Namespace) (*xtables.Ruleset, error) {
	rs, err := xtables.Read(ctx, ns.InNS)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		v.Add("could not read the iptables-legacy tables: %v", err)
		return nil, nil
	}
	if len(rs.Tables) == 0 {
		return nil, nil
	}
	v.LegacyTables = rs.Names()
	for _, t := range rs.Tables {
		for _, c := range t.Chains {
			v.Read.Legacy += len(c.Rules)
		}
	}
	return rs, nil
}

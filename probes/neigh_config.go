package probes

// The gateway of an interface from what configured it: the DHCP client's
// lease, the network manager's configuration (probes/netconfig).

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"asym/evidence"
	"asym/probes/netconfig"
)

// configReadTimeout bounds the reading of one interface's configuration
// files.
const configReadTimeout = 2 * time.Second

// configured is what the configuration says about an interface's gateway.
type configured struct {
	gateway netip.Addr
	source  string // the file
	how     string // where it came from, and whether other files disagree
	// notRead says why the configuration was not read at all.
	notRead string
	// missing says why nothing usable was found, when there is more to say
	// than that nothing was: files not read, gateways outside the subnet.
	missing string
}

// unknown is How for an interface whose gateway nothing names.
func (c configured) unknown(iface string) string {
	if c.notRead != "" {
		return "no route and no single neighbour by " + iface + "; the network configuration was not read: " + c.notRead
	}
	s := "no route, no single neighbour and no gateway in the network configuration by " + iface
	if c.missing != "" {
		s += " (" + c.missing + ")"
	}
	return s
}

// configuredGateway reads the target's configuration files for ifc's
// gateway on sub.
func configuredGateway(ctx context.Context, t *Target, ifc evidence.Iface, sub netip.Prefix) configured {
	root, why := t.ConfigRoot()
	if root == "" {
		return configured{notRead: why}
	}
	ctx, cancel := context.WithTimeout(ctx, configReadTimeout)
	defer cancel()
	found, notes := netconfig.Gateways(ctx, root, netconfig.Interface{Name: ifc.Name, Index: ifc.Index, MAC: ifc.MAC}, sub.Addr().Is6())
	return pickConfigured(found, notes, sub)
}

// pickConfigured takes the first gateway that can be the interface's —
// inside its subnet, or link-local IPv6 — in netconfig's order: a current
// DHCP lease first, since it is what the server handed out most recently,
// then what an administrator wrote, then an expired lease. Files that name
// another gateway are said, not hidden.
func pickConfigured(found []netconfig.Found, notes []string, sub netip.Prefix) configured {
	var usable []netconfig.Found
	var outside []string
	for _, f := range found {
		switch gw := f.Gateway; {
		case gw == sub.Addr():
			outside = append(outside, f.Describe()+" names the interface's own address "+gw.String())
		case sub.Masked().Contains(gw) || gw.Is6() && gw.IsLinkLocalUnicast():
			usable = append(usable, f)
		default:
			outside = append(outside, f.Describe()+" names "+gw.String()+", outside "+sub.Masked().String())
		}
	}
	if len(usable) == 0 {
		return configured{missing: strings.Join(append(outside, notes...), "; ")}
	}
	best := usable[0]
	c := configured{gateway: best.Gateway, source: best.Source, how: best.Describe()}
	var others []string
	seen := map[string]bool{}
	for _, f := range usable[1:] {
		if s := f.Describe() + " says " + f.Gateway.String(); f.Gateway != best.Gateway && !seen[s] {
			seen[s] = true
			others = append(others, s)
		}
	}
	if len(others) > 0 {
		c.how += "; but " + strings.Join(others, "; ")
		if best.Kind.Lease() && !best.Expired {
			c.how += ": the lease is taken, as what the DHCP server handed out most recently"
		} else {
			c.how += ": check which one is really the router on " + sub.Masked().String()
		}
	}
	return c
}

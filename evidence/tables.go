package evidence

import (
	"net/netip"
	"strconv"
	"strings"
)

// Route is one route of a policy table.
type Route struct {
	Dst      netip.Prefix `json:"dst"` // 0.0.0.0/0 for default
	Type     string       `json:"type"`
	Dev      string       `json:"dev,omitempty"`
	Gateway  netip.Addr   `json:"via,omitzero"`
	PrefSrc  netip.Addr   `json:"src,omitzero"`
	Scope    string       `json:"scope,omitempty"`
	Protocol string       `json:"proto,omitempty"`
	Metric   int          `json:"metric,omitempty"`
	Nexthops []Nexthop    `json:"nexthops,omitempty"`
	Text     string       `json:"text"`
}

// Default reports whether the route is a default route.
func (r Route) Default() bool { return r.Dst.Bits() == 0 }

// Covers reports whether the route is an on-link route (no gateway) whose
// prefix contains addr.
func (r Route) Covers(addr netip.Addr) bool {
	return r.Type == "unicast" && !r.Gateway.IsValid() && len(r.Nexthops) == 0 && r.Dst.Contains(addr)
}

// Render prints the route as `ip route show table N` does.
func (r Route) Render() string {
	var w []string
	if r.Type != "unicast" && r.Type != "" {
		w = append(w, r.Type)
	}
	if r.Default() {
		w = append(w, "default")
	} else {
		w = append(w, HostOrPrefix(r.Dst))
	}
	if r.Gateway.IsValid() {
		w = append(w, "via", r.Gateway.String())
	}
	if r.Dev != "" {
		w = append(w, "dev", r.Dev)
	}
	if r.Protocol != "" && r.Protocol != "boot" {
		w = append(w, "proto", r.Protocol)
	}
	if r.Scope != "" && r.Scope != "global" {
		w = append(w, "scope", r.Scope)
	}
	if r.PrefSrc.IsValid() {
		w = append(w, "src", r.PrefSrc.String())
	}
	if r.Metric != 0 {
		w = append(w, "metric", strconv.Itoa(r.Metric))
	}
	for _, nh := range r.Nexthops {
		w = append(w, "nexthop")
		if nh.Gateway.IsValid() {
			w = append(w, "via", nh.Gateway.String())
		}
		w = append(w, "dev", nh.Dev, "weight", strconv.Itoa(nh.Weight))
	}
	return strings.Join(w, " ")
}

// Table is the content of one routing table.
type Table struct {
	ID        int     `json:"id"`
	Name      string  `json:"name"`
	Why       string  `json:"why"` // why asym looked at it
	Routes    []Route `json:"routes"`
	Truncated bool    `json:"truncated,omitempty"`
}

// Lookup returns the longest-prefix route in the table for addr, as the
// kernel would pick it from this table alone (ignoring metrics among equal
// prefixes beyond taking the lowest).
func (t *Table) Lookup(addr netip.Addr) *Route {
	var best *Route
	for i := range t.Routes {
		r := &t.Routes[i]
		if !r.Dst.Contains(addr) {
			continue
		}
		if best == nil || r.Dst.Bits() > best.Dst.Bits() || (r.Dst.Bits() == best.Dst.Bits() && r.Metric < best.Metric) {
			best = r
		}
	}
	return best
}

// TablesView holds the policy tables in play.
type TablesView struct {
	Report
	Tables []Table `json:"tables"`
}

// Table finds a table by id.
func (v *TablesView) Table(id int) *Table {
	if v == nil {
		return nil
	}
	for i := range v.Tables {
		if v.Tables[i].ID == id {
			return &v.Tables[i]
		}
	}
	return nil
}

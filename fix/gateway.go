package fix

import "net/netip"

// UnknownGateways are the interfaces whose gateway a step of the fix
// lacks: the person must name them before the fix can be applied.
func (f *Fix) UnknownGateways() []string {
	if f == nil {
		return nil
	}
	var out []string
	for _, s := range f.Steps {
		if r, ok := s.(*RouteAdd); ok && r.Unknown != "" && !r.Gateway.IsValid() {
			out = append(out, r.Dev)
		}
	}
	return out
}

// Gateways are the gateways the fix's routes go by, per interface: what a
// person confirms when they apply it, so that the check before applying
// uses the same ones even when they came from evidence it cannot see again
// (frames of a live window, the person's own answer).
func (f *Fix) Gateways() map[string]netip.Addr {
	if f == nil {
		return nil
	}
	out := map[string]netip.Addr{}
	for _, s := range f.Steps {
		if r, ok := s.(*RouteAdd); ok && r.Gateway.IsValid() {
			out[r.Dev] = r.Gateway
		}
	}
	return out
}

// Origin is what a person should know about where a step's facts came
// from ("gateway 192.0.2.1: the router whose MAC …"), "" when nothing.
func Origin(s Step) string {
	if r, ok := s.(*RouteAdd); ok && r.Gateway.IsValid() && r.GatewayFrom != "" {
		return "gateway " + r.Gateway.String() + ": " + r.GatewayFrom
	}
	return ""
}

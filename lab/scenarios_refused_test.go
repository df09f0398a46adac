package lab

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func init() {
	scenarioTests["discard-route"] = scenarioTest{
		evidence: func(t *testing.T, e *Env) {
			// The kernel refuses the reply's route: a blackhole answers an
			// output lookup with EINVAL.
			_, err := nlh(t, e, "server").RouteGetWithOptions(ip(discardClient), &netlink.RouteGetOptions{SrcAddr: ip(discardServer)})
			if err != unix.EINVAL {
				t.Errorf("server: route get %s from %s: %v, want EINVAL (the blackhole)", discardClient, discardServer, err)
			}
		},
		contrast: func(t *testing.T, e *Env) {
			// The path works once the blackhole is narrower than the
			// client: another client of the range is still blocked, this
			// one is answered. (The scenario is not Fixable: asym shows
			// how to remove the route and never removes it itself.)
			h := nlh(t, e, "server")
			_, block, _ := net.ParseCIDR(discardBlocked)
			if err := h.RouteDel(&netlink.Route{Dst: block, Type: unix.RTN_BLACKHOLE, Protocol: unix.RTPROT_STATIC}); err != nil {
				t.Fatalf("remove the blackhole: %v", err)
			}
			_, other, _ := net.ParseCIDR("203.0.113.128/25")
			if err := h.RouteAdd(&netlink.Route{Dst: other, Type: unix.RTN_BLACKHOLE, Protocol: unix.RTPROT_STATIC}); err != nil {
				t.Fatalf("add a narrower blackhole: %v", err)
			}
			if err := e.tryWith(t.Context(), e.flow, tryTimeout, dialer{}); err != nil {
				t.Errorf("with the blackhole off %s the flow should work: %v", netip.MustParseAddr(discardClient), err)
			}
		},
	}
}

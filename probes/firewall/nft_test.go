package firewall

import (
	"errors"
	"strings"
	"testing"

	"asym/evidence"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestFirewallNftUnavailable(t *testing.T) {
	// What mdlayher/netlink returns when nfnetlink has no nf_tables
	// subsystem, and when the caller lacks CAP_NET_ADMIN.
	noMod := &netlink.OpError{Op: "receive", Err: unix.EOPNOTSUPP}
	st, why := evidence.Classify(nftErr("list nftables tables", noMod))
	if st != evidence.StatusUnavailable || !strings.Contains(why, "nf_tables is not available") {
		t.Errorf("EOPNOTSUPP: %s %q", st, why)
	}
	st, why = evidence.Classify(nftErr("list nftables tables", &netlink.OpError{Op: "receive", Err: unix.EPERM}))
	if st != evidence.StatusUnavailable || !strings.Contains(why, "needs root") {
		t.Errorf("EPERM: %s %q", st, why)
	}
	st, _ = evidence.Classify(nftErr("list", errors.New("something else")))
	if st != evidence.StatusFailed {
		t.Errorf("other error: %s", st)
	}
}

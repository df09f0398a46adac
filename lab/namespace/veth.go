package namespace

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Veth joins namespaces a and b with a veth pair, its end aName in a and
// bName in b, and leaves both down. The peer is created directly in b, so
// neither end ever exists in the host's namespace.
func Veth(a NS, aName string, b NS, bName string) error {
	h, err := netlink.NewHandleAt(a.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("create veth %s (namespace %s) <-> %s (namespace %s): open netlink: %w", aName, a.Name, bName, b.Name, err)
	}
	defer h.Close()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: aName},
		PeerName:      bName,
		PeerNamespace: netlink.NsFd(int(b.Handle)),
	}
	if err := h.LinkAdd(v); err != nil {
		return fmt.Errorf("create veth %s (namespace %s) <-> %s (namespace %s): %w", aName, a.Name, bName, b.Name, err)
	}
	return nil
}

package fix

import (
	"context"
	"fmt"
	"net/netip"
)

// KindARPAnnounce is the kind of ARPAnnounce.
const KindARPAnnounce Kind = "arp.announce"

// ARPAnnounce sends one gratuitous ARP for an address from the interface
// that holds it, as `arping -U` does. After an ARP flux fix the
// neighbours' caches still map the address to the other interface's MAC
// until their entries age out (minutes); an announcement overrides the
// entries they have now. It changes no state on this host.
type ARPAnnounce struct {
	Dev  string     `json:"dev"`
	Addr netip.Addr `json:"addr"`
}

func (s *ARPAnnounce) Kind() Kind { return KindARPAnnounce }
func (s *ARPAnnounce) Words() []string {
	return []string{"arping", "-U", "-c", "1", "-I", s.Dev, s.Addr.String()}
}
func (s *ARPAnnounce) Missing() string { return "" }

// Prepare checks the interface is there and the address is IPv4 (IPv6
// has no ARP: its neighbours learn from unsolicited advertisements). The
// undo announces again: there is nothing on this host to put back, and
// telling the neighbours the truth once more is harmless whatever the
// revert does to the sysctls.
func (s *ARPAnnounce) Prepare(ctx context.Context, k Kernel, prep *Preparation) (Step, Step, error) {
	if !s.Addr.Is4() {
		return nil, nil, fmt.Errorf("%s is not an IPv4 address: only IPv4 has ARP", s.Addr)
	}
	if !k.HasLink(ctx, s.Dev) {
		return nil, nil, fmt.Errorf("%s has no interface %s (any more)", k.Describe(), s.Dev)
	}
	return s, s, nil
}

func (s *ARPAnnounce) Apply(ctx context.Context, k Kernel) error {
	return k.AnnounceARP(ctx, s.Dev, s.Addr)
}

// Stateless says whether a step changes no state of the host (an
// announcement to the neighbours): its undo puts nothing back, and an undo
// that only repeats it has undone nothing.
func Stateless(s Step) bool {
	_, ok := s.(*ARPAnnounce)
	return ok
}

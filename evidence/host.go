package evidence

import (
	"asym/flow"
	"net/netip"
)

// Role is where this host stands in the flow.
type Role string

const (
	RoleClient Role = "client" // the flow's source address is local: this host opened it
	RoleServer Role = "server" // the destination is local: this host answers
	RoleMiddle Role = "middle" // neither: a router or firewall the flow crosses
	// RoleOffPath: neither, and the host does not forward (ip_forward, or
	// IPv6 forwarding, is 0): the flow cannot cross it.
	RoleOffPath Role = "off_path"
)

// Describe says the role in words.
func (r Role) Describe() string {
	switch r {
	case RoleClient:
		return "client side (the flow's source is on this host)"
	case RoleServer:
		return "server side (the flow's destination is on this host)"
	case RoleOffPath:
		return "not on the flow's path (this host holds neither address and does not forward)"
	}
	return "in the middle (a router or firewall the flow crosses)"
}

// Iface is one interface of the target and its addresses.
type Iface struct {
	Name  string         `json:"name"`
	Index int            `json:"index"`
	MTU   int            `json:"mtu"`
	Up    bool           `json:"up"`
	MAC   string         `json:"mac,omitempty"`
	Kind  string         `json:"kind,omitempty"`
	Addrs []netip.Prefix `json:"addrs"`
}

// HostView is the context every other probe builds on.
type HostView struct {
	Report
	Hostname   string  `json:"hostname"`
	Kernel     string  `json:"kernel"`
	Target     string  `json:"target"`
	Privileged bool    `json:"privileged"`
	Missing    string  `json:"missing_privileges,omitempty"`
	Ifaces     []Iface `json:"interfaces"` // the interfaces in play (probes.ProbeHost says which)
	// OtherIfaces counts the interfaces with addresses of the flow's family
	// that are not in play.
	OtherIfaces int        `json:"other_interfaces,omitempty"`
	Role        Role       `json:"role"`
	Local       netip.Addr `json:"local_addr,omitzero"`   // the flow's address on this host
	LocalIface  string     `json:"local_iface,omitempty"` // the interface that holds it
	BTF         bool       `json:"btf"`                   // the kernel has BTF, so eBPF tracers (pwru, retis) can run
	// Translated is the flow as this host translates it when it owns the
	// flow's destination but forwards the flow elsewhere (DNAT, seen in
	// its conntrack entry): the host is then in the middle, and its routes
	// are asked for this form, as the kernel routes after DNAT.
	Translated *flow.Flow `json:"translated,omitempty"`
}

// Iface finds an interface by name.
func (h *HostView) Iface(name string) *Iface {
	for i := range h.Ifaces {
		if h.Ifaces[i].Name == name {
			return &h.Ifaces[i]
		}
	}
	return nil
}

// Owner returns the interface that holds addr, or nil.
func (h *HostView) Owner(addr netip.Addr) *Iface {
	for i := range h.Ifaces {
		for _, p := range h.Ifaces[i].Addrs {
			if p.Addr() == addr {
				return &h.Ifaces[i]
			}
		}
	}
	return nil
}

// Attachment is an interface whose subnet contains an address, with that
// subnet's prefix as configured on it.
type Attachment struct {
	Iface  *Iface
	Prefix netip.Prefix
}

// Connected returns the interfaces whose subnets contain addr, with the prefix.
func (h *HostView) Connected(addr netip.Addr) []Attachment {
	var out []Attachment
	for i := range h.Ifaces {
		for _, p := range h.Ifaces[i].Addrs {
			if p.Bits() < p.Addr().BitLen() && p.Masked().Contains(addr) {
				out = append(out, Attachment{&h.Ifaces[i], p})
			}
		}
	}
	return out
}

// LocalAddrs lists every address on the host of the flow's family.
func (h *HostView) LocalAddrs() []netip.Addr {
	var out []netip.Addr
	for _, i := range h.Ifaces {
		for _, p := range i.Addrs {
			out = append(out, p.Addr())
		}
	}
	return out
}

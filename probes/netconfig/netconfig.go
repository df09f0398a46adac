// Package netconfig finds what a host's network manager or DHCP client
// configured as the gateway of one interface, from the files they keep:
// DHCP leases (systemd-networkd, NetworkManager, dhclient) and static
// configuration (systemd-networkd .network files, which netplan renders
// too, NetworkManager keyfiles, ifupdown, RHEL ifcfg files).
//
// It reads files and never runs a program. Every file is read under a root
// (the target's file system: / for the host, /proc/PID/root for a
// container, a temporary tree in tests) through os.Root, so nothing outside
// the root is ever read. A host has one or two of these managers, so a
// missing file is not worth a word; a file that exists but cannot be read
// is, and Gateways says so.
package netconfig

import (
	"net/netip"
	"time"
)

// Kind is what wrote the file a gateway was found in.
type Kind int

const (
	NetworkdLease         Kind = iota + 1 // /run/systemd/netif/leases/IFINDEX
	NetworkManagerLease                   // /var/lib/NetworkManager/internal-UUID-IFACE.lease
	DhclientLease                         // dhclient's lease database, ifupdown's or NetworkManager's
	NetworkdConfig                        // a .network file (netplan's output included)
	NetworkManagerProfile                 // a keyfile connection profile
	IfupdownConfig                        // /etc/network/interfaces and what it sources
	IfcfgConfig                           // /etc/sysconfig/network-scripts/ifcfg-IFACE
)

var kinds = map[Kind]struct{ noun, by string }{
	NetworkdLease:         {"DHCP lease", "systemd-networkd"},
	NetworkManagerLease:   {"DHCP lease", "NetworkManager"},
	DhclientLease:         {"DHCP lease", "dhclient"},
	NetworkdConfig:        {"configuration", "systemd-networkd"},
	NetworkManagerProfile: {"connection profile", "NetworkManager"},
	IfupdownConfig:        {"configuration", "ifupdown"},
	IfcfgConfig:           {"configuration", "network-scripts"},
}

// String names the kind for people: "DHCP lease (systemd-networkd)".
func (k Kind) String() string {
	d, ok := kinds[k]
	if !ok {
		return "unknown source"
	}
	return d.noun + " (" + d.by + ")"
}

// Lease says the gateway was handed out by a DHCP server, not written by
// an administrator.
func (k Kind) Lease() bool {
	return k == NetworkdLease || k == NetworkManagerLease || k == DhclientLease
}

// Found is one gateway named by one file.
type Found struct {
	Gateway netip.Addr
	Kind    Kind
	// Source is the file, as a path on the machine asym runs on (the root
	// joined with the file's path on the target), so that a person can
	// open it.
	Source string
	// Note is a caveat to read with it: an expired lease, a profile
	// NetworkManager may not have active, a [Match] asym cannot check.
	Note string
	// Expired: a lease whose expiry date has passed. It is kept (it may be
	// all there is) but ranks after configuration.
	Expired bool
	// Written is when the lease file was last written (its modification
	// time): the newest lease is what a DHCP server handed out last. Zero
	// for configuration.
	Written time.Time
}

// Describe says where the gateway came from, for people:
// "DHCP lease /run/systemd/netif/leases/3 (systemd-networkd)".
func (f Found) Describe() string {
	d := kinds[f.Kind]
	s := d.noun + " " + f.Source + " (" + d.by + ")"
	if f.Note != "" {
		s += ": " + f.Note
	}
	return s
}

// Interface is the interface whose gateway to find, as the kernel names it.
type Interface struct {
	Name  string
	Index int    // the lease of systemd-networkd and NetworkManager's device state are named by it
	MAC   string // matches [Match] MACAddress= and keyfile mac-address= when no name is given; may be empty
}

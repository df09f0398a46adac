package apply

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// AnnounceARP sends one gratuitous ARP request for addr from dev, inside
// the target's namespace: sender and target protocol address both addr,
// to the broadcast MAC, the form `arping -U` sends. Linux neighbours take
// it as an override of the entry they hold (arp_process: is_garp), others
// at least refresh it.
func (k kernel) AnnounceARP(ctx context.Context, dev string, addr netip.Addr) error {
	l, err := k.t.Netlink().LinkByName(dev)
	if err != nil {
		return fmt.Errorf("find %s: %w", dev, err)
	}
	mac := l.Attrs().HardwareAddr
	if len(mac) != 6 {
		return fmt.Errorf("%s has no Ethernet address: there is no ARP on it", dev)
	}
	return k.t.InNS(ctx, func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("open a packet socket to announce %s: %w", addr, err)
		}
		defer unix.Close(fd)
		a4 := addr.As4()
		msg := make([]byte, 28)
		binary.BigEndian.PutUint16(msg[0:], 1)      // Ethernet
		binary.BigEndian.PutUint16(msg[2:], 0x0800) // IPv4
		msg[4], msg[5] = 6, 4
		binary.BigEndian.PutUint16(msg[6:], 1) // request
		copy(msg[8:], mac)
		copy(msg[14:], a4[:])
		copy(msg[24:], a4[:]) // the target hardware address stays zero
		to := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: l.Attrs().Index, Halen: 6}
		copy(to.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		if err := unix.Sendto(fd, msg, 0, to); err != nil {
			return fmt.Errorf("send the announcement of %s on %s: %w", addr, dev, err)
		}
		return nil
	})
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

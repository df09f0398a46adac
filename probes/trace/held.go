package trace

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"asym/evidence"
	"asym/flow"
	"asym/probes"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// holding is what holds a tuple on this host.
type holding struct {
	what string // for people: "a TCP socket in SYN_SENT", "" when nothing
	// live says a connection uses the tuple: probes carrying it would
	// land in it (a SYN-ACK's RST would reset it, a conntrack entry would
	// take them as its own), so asym must not send with it.
	live bool
	// socket says a connection's socket, of any state, holds it.
	socket bool
}

// TCP states as /proc/net/tcp and sock_diag number them (include/net/tcp_states.h).
var tcpStates = map[uint8]string{1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
	6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN", 11: "CLOSING"}

// synchronized are the states of a connection that has been established
// (RFC 9293's synchronized states): its peer knows it.
var synchronized = []uint8{1, 4, 5, 8, 9, 11}

// held says what holds tuple (as this host sends it: Src is local) here:
// a socket, found with one exact sock_diag lookup (the kernel's own
// inet_lookup, never a dump of the socket table), and a conntrack entry,
// found by tuple. When the socket table cannot be read, the tuple is
// treated as live: asym does not send with a tuple it could not check.
func held(ctx context.Context, t *probes.Target, tuple flow.Flow) holding {
	var h holding
	var parts []string
	if tuple.Proto.HasPorts() {
		st, err := sockLookup(t, tuple)
		switch {
		case err != nil:
			return holding{what: "the socket table could not be read (" + err.Error() + ")", live: true}
		case st == 10:
			parts = append(parts, "a listening socket (the service, not a connection)")
		case st != 0:
			parts = append(parts, fmt.Sprintf("a %s socket in %s", strings.ToUpper(tuple.Proto.String()), stateName(st)))
			h.live = tuple.Proto == flow.UDP || slices.Contains(synchronized, st)
			h.socket = true
		}
	}
	ct := probes.ProbeConntrack(ctx, t, tuple)
	for _, e := range ct.Entries {
		switch {
		case e.TCPState != "":
			parts = append(parts, "a conntrack entry in "+e.TCPState)
			h.live = h.live || slices.Contains([]string{"ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK"}, e.TCPState)
		case e.Assured:
			parts = append(parts, "an assured conntrack entry (replies seen)")
			h.live = h.live || tuple.Proto == flow.UDP
		default:
			parts = append(parts, "a conntrack entry")
		}
	}
	h.what = strings.Join(parts, " and ")
	return h
}

func stateName(st uint8) string {
	if s, ok := tcpStates[st]; ok {
		return s
	}
	return fmt.Sprintf("state %d", st)
}

// diagReq is struct inet_diag_req_v2 (include/uapi/linux/inet_diag.h)
// for one exact lookup: golang.org/x/sys/unix has no type for it.
type diagReq struct {
	proto              uint8
	src, dst           [4]byte
	sport, dport       uint16
	swapForUDPHistoric bool
}

func (r *diagReq) Len() int { return 56 }

func (r *diagReq) Serialize() []byte {
	b := make([]byte, 56)
	b[0], b[1] = unix.AF_INET, r.proto
	binary.NativeEndian.PutUint32(b[4:], 0xffffffff) // every state
	src, dst, sport, dport := r.src, r.dst, r.sport, r.dport
	if r.swapForUDPHistoric {
		src, dst, sport, dport = dst, src, dport, sport
	}
	binary.BigEndian.PutUint16(b[8:], sport)
	binary.BigEndian.PutUint16(b[10:], dport)
	copy(b[12:], src[:])
	copy(b[28:], dst[:])
	// Interface 0 (any), cookie INET_DIAG_NOCOOKIE: no cookie to check.
	binary.NativeEndian.PutUint32(b[48:], 0xffffffff)
	binary.NativeEndian.PutUint32(b[52:], 0xffffffff)
	return b
}

// sockLookup asks sock_diag for the socket that owns tuple: its TCP state,
// 0 when there is none. A listener is what the kernel finds when no
// connection has the tuple (inet_lookup falls back to listeners).
func sockLookup(t *probes.Target, tuple flow.Flow) (uint8, error) {
	ns := t.NS()
	if t.IsHost() {
		ns = netns.None() // where we are: entering even our own namespace needs CAP_SYS_ADMIN
	}
	s, err := nl.GetNetlinkSocketAt(ns, netns.None(), unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return 0, fmt.Errorf("open a sock_diag socket: %w", err)
	}
	defer s.Close()
	tv := unix.NsecToTimeval(2e9)
	s.SetReceiveTimeout(&tv)
	req := nl.NewNetlinkRequest(unix.SOCK_DIAG_BY_FAMILY, unix.NLM_F_REQUEST)
	// udp_dump_one looks the socket up as a packet arriving at it would be
	// ("src and dst are swapped for historical reasons", net/ipv4/udp_diag.c).
	req.AddData(&diagReq{proto: uint8(tuple.Proto), src: tuple.Src.Addr().As4(), dst: tuple.Dst.Addr().As4(),
		sport: tuple.Src.Port(), dport: tuple.Dst.Port(), swapForUDPHistoric: tuple.Proto == flow.UDP})
	req.Sockets = map[int]*nl.SocketHandle{unix.NETLINK_SOCK_DIAG: {Socket: s}}
	msgs, err := req.Execute(unix.NETLINK_SOCK_DIAG, unix.SOCK_DIAG_BY_FAMILY)
	switch {
	case errors.Is(err, unix.ENOENT):
		return 0, nil
	case err != nil:
		return 0, err
	case len(msgs) == 0 || len(msgs[0]) < 2:
		return 0, errors.New("sock_diag sent an empty answer")
	}
	return msgs[0][1], nil
}

// freshTuple finds a client port that nothing holds and that this host
// sends the way it sends the flow (the same hop 0), for when the flow's own
// tuple belongs to a live connection. The client's port is the source of
// the request and the destination of the reply.
func freshTuple(ctx context.Context, t *probes.Target, tuple flow.Flow, clientIsSrc bool, want evidence.RouteDecision) (flow.Flow, bool) {
	port := tuple.Src.Port()
	if !clientIsSrc {
		port = tuple.Dst.Port()
	}
	for i := 1; i <= 256; i++ {
		p := uint16(32768 + (int(port)-32768+i*7919)%28232) // the ephemeral range, stepped by a prime
		c := tuple
		if clientIsSrc {
			c.Src = netipPort(tuple.Src, p)
		} else {
			c.Dst = netipPort(tuple.Dst, p)
		}
		if held(ctx, t, c).what != "" {
			continue
		}
		d, err := t.RouteGet(ctx, routeQuery(c))
		if err == nil && !d.Failed() && d.Dev == want.Dev && d.Gateway == want.Gateway {
			return c, true
		}
	}
	return tuple, false
}

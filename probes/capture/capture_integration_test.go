package capture_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
	"asym/lab"
	"asym/probes"
	"asym/probes/capture"
	"asym/probes/probetest"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// capRec records what a capture delivers.
type capRec struct {
	*probetest.Recorder[evidence.CaptureUpdate]
}

func capRecord(ch <-chan evidence.CaptureUpdate) *capRec {
	return &capRec{probetest.Record(ch)}
}

// dropped is the updates' drop counts, summed.
func (r *capRec) dropped() int {
	n := 0
	for _, u := range r.Got() {
		n += u.Dropped
	}
	return n
}

// noErrs fails the test for every error an update carried.
func (r *capRec) noErrs(t *testing.T, name string) {
	t.Helper()
	for _, u := range r.Got() {
		if u.Err != nil {
			t.Errorf("%s: unexpected error: %v", name, u.Err)
		}
	}
}

// capPackets is the packets of ups, in order.
func capPackets(ups []evidence.CaptureUpdate) []evidence.CapturedPacket {
	var out []evidence.CapturedPacket
	for _, u := range ups {
		out = append(out, u.Packets...)
	}
	return out
}

func (r *capRec) packets() []evidence.CapturedPacket { return capPackets(r.Got()) }

// until polls for up to d until every predicate matches some packet.
func (r *capRec) until(d time.Duration, preds ...func(evidence.CapturedPacket) bool) bool {
	return r.Until(d, func(ups []evidence.CaptureUpdate) bool {
		ps := capPackets(ups)
		for _, p := range preds {
			if _, ok := capFind(ps, p); !ok {
				return false
			}
		}
		return true
	})
}

func (r *capRec) log(t *testing.T, name string) {
	t.Helper()
	for _, p := range r.packets() {
		t.Logf("%s: %s (reply=%v)", name, p.Text, p.Reply)
	}
}

func capFind(ps []evidence.CapturedPacket, pred func(evidence.CapturedPacket) bool) (evidence.CapturedPacket, bool) {
	for _, p := range ps {
		if pred(p) {
			return p, true
		}
	}
	return evidence.CapturedPacket{}, false
}

// capTCP selects a TCP packet by flags, direction and interface.
func capTCP(flags, dir, iface string) func(evidence.CapturedPacket) bool {
	return func(p evidence.CapturedPacket) bool {
		return p.Proto == unix.IPPROTO_TCP && p.Flags == flags && string(p.Dir) == dir && p.Iface == iface
	}
}

// capOfFlow says whether a packet is the flow's, either way, or an ICMP
// error quoting it (told by its text).
func capOfFlow(p evidence.CapturedPacket, f flow.Flow) bool {
	ep := func(ap netip.AddrPort) string {
		if ap.Port() == 0 {
			return ap.Addr().String()
		}
		return ap.Addr().String() + "." + strconv.Itoa(int(ap.Port()))
	}
	quotes := func(a, b netip.AddrPort) bool {
		return strings.Contains(p.Text, " for "+f.Proto.String()+" "+ep(a)+" > "+ep(b)+",")
	}
	if p.ICMP != "" && (quotes(f.Src, f.Dst) || quotes(f.Dst, f.Src)) {
		return true
	}
	fwd := p.Src == f.Src && p.Dst == f.Dst
	rev := p.Src == f.Dst && p.Dst == f.Src
	return p.Proto == uint8(f.Proto) && (fwd || rev)
}

var capTextTime = regexp.MustCompile(`^\d\d:\d\d:\d\d\.\d{6} `)

// capCheckText checks a line against tcpdump's layout: time, then the rest.
func capCheckText(t *testing.T, p evidence.CapturedPacket, want string) {
	t.Helper()
	if !capTextTime.MatchString(p.Text) || p.Text[16:] != want {
		t.Errorf("text:\n got %q\nwant %q after a 15:04:05.000000 time", p.Text, want)
	}
	if d := time.Since(p.Time); d < 0 || d > time.Minute {
		t.Errorf("%s: time %s is not the packet's", p.Text, p.Time)
	}
}

// The labs.

// capLabUp brings up a lab scenario (see labUp) and opens its first
// check's target and flow.
func capLabUp(t *testing.T, name string) (*lab.Env, *probes.Target, flow.Flow, context.Context) {
	t.Helper()
	start := time.Now()
	env, ctx := labUp(t, name, "asym-c")
	tg := openTarget(t, env.Checks[0].Target)
	f := parseFlow(t, env.Checks[0].Flow)
	t.Logf("lab %s up in %s; flow %s", name, time.Since(start).Round(time.Millisecond), f)
	return env, tg, f, ctx
}

// TestCaptureTwoNicsFabric shows the scenario's asymmetry as packets: the
// SYN comes in on eth1 and the SYN-ACK leaves by eth0, where the fabric
// drops it; nothing of the flow leaves by eth1, and what eth0 receives is
// the fabric flooding the SYN (OTHERHOST).
func TestCaptureTwoNicsFabric(t *testing.T) {
	env, tg, f, ctx := capLabUp(t, "two-nics-fabric")
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	start := time.Now()
	r := capRecord(capture.Capture(cctx, tg, f, capture.Options{Interval: 100 * time.Millisecond}))
	err := env.Try(ctx, 1500*time.Millisecond)
	t.Logf("try: %v", err)
	if err == nil {
		t.Fatal("the failing flow worked: the scenario is not broken")
	}
	syn, synack := capTCP("S", "in", "eth1"), capTCP("S.", "out", "eth0")
	if !r.until(2*time.Second, syn, synack) {
		r.log(t, "fabric")
		t.Fatal("no SYN in on eth1 and SYN-ACK out on eth0 within 2s")
	}
	ccancel()
	r.WaitClosed(t, "fabric")
	t.Logf("captured for %s", time.Since(start).Round(time.Millisecond))
	r.log(t, "fabric")
	r.noErrs(t, "fabric")
	ps := r.packets()

	p, _ := capFind(ps, syn)
	if p.Reply || p.Src != f.Src || p.Dst != f.Dst || p.Len < 40 || p.ICMP != "" {
		t.Errorf("the SYN: %+v", p)
	}
	capCheckText(t, p, "eth1 In  IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [S], length 0")
	p, _ = capFind(ps, synack)
	if !p.Reply || p.Src != f.Dst || p.Dst != f.Src || p.Len < 40 {
		t.Errorf("the SYN-ACK: %+v", p)
	}
	capCheckText(t, p, "eth0 Out IP 198.51.100.11.8080 > 203.0.113.10.40000: Flags [S.], length 0")
	// The link layer: the SYN-ACK is handed to the gateway's MAC from
	// eth0's, and the SYN came from the gateway to eth1's MAC.
	mac := func(tg *probes.Target, name string) string {
		l, err := tg.Netlink().LinkByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return l.Attrs().HardwareAddr.String()
	}
	gw := mac(openTarget(t, env.NS("gw")), "eth0")
	if p.SrcMAC != mac(tg, "eth0") || p.DstMAC != gw {
		t.Errorf("the SYN-ACK's frame: %s > %s, want %s > %s (eth0 to the gateway)", p.SrcMAC, p.DstMAC, mac(tg, "eth0"), gw)
	}
	if p, _ := capFind(ps, syn); p.SrcMAC != gw || p.DstMAC != mac(tg, "eth1") {
		t.Errorf("the SYN's frame: %s > %s, want %s > %s (the gateway to eth1)", p.SrcMAC, p.DstMAC, gw, mac(tg, "eth1"))
	}
	for _, p := range ps {
		if !capOfFlow(p, f) {
			t.Errorf("not the flow's: %s", p.Text)
		}
		if p.Iface == "eth1" && p.Dir == "out" {
			t.Errorf("a packet left by eth1, which this scenario never uses for the reply: %s", p.Text)
		}
		// The fabric's bridge never learns eth1's MAC (nothing leaves by
		// eth1), so it floods frames for .11 to every port: eth0 sees the
		// SYN too, addressed to another host (PACKET_OTHERHOST, tcpdump's
		// "P"). Anything else coming in on eth0 would be wrong.
		if p.Iface == "eth0" && p.Dir == "in" && !strings.Contains(p.Text, " eth0 P   IP ") {
			t.Errorf("a packet of the flow came in on eth0 addressed to this host: %s", p.Text)
		}
	}
	if d := r.dropped(); d != 0 {
		t.Errorf("%d packets dropped in a quiet lab", d)
	}
}

// TestCaptureHealthy sees the whole exchange on eth1: handshake, the echo
// byte both ways, and the client's RST (both ends close with SO_LINGER 0,
// so there is no FIN). Nothing of the flow leaves by eth0.
func TestCaptureHealthy(t *testing.T) {
	env, tg, f, ctx := capLabUp(t, "healthy")
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	r := capRecord(capture.Capture(cctx, tg, f, capture.Options{Interval: 100 * time.Millisecond}))
	if err := env.Try(ctx, 2*time.Second); err != nil {
		t.Fatalf("the healthy flow failed: %v", err)
	}
	rst := func(p evidence.CapturedPacket) bool {
		return p.Proto == unix.IPPROTO_TCP && strings.HasPrefix(p.Flags, "R") && p.Dir == "in" && p.Iface == "eth1"
	}
	want := []func(evidence.CapturedPacket) bool{
		capTCP("S", "in", "eth1"), capTCP("S.", "out", "eth1"),
		capTCP("P.", "in", "eth1"), capTCP("P.", "out", "eth1"), rst,
	}
	if !r.until(2*time.Second, want...) {
		r.log(t, "healthy")
		t.Fatal("the exchange did not show within 2s: SYN, SYN-ACK, data both ways and RST, all on eth1")
	}
	ccancel()
	r.WaitClosed(t, "healthy")
	r.log(t, "healthy")
	r.noErrs(t, "healthy")
	ps := r.packets()
	for i, reply := range []bool{false, true, false, true, false} {
		if p, _ := capFind(ps, want[i]); p.Reply != reply {
			t.Errorf("%s: reply=%v, want %v", p.Text, p.Reply, reply)
		}
	}
	p, _ := capFind(ps, capTCP("S.", "out", "eth1"))
	capCheckText(t, p, "eth1 Out IP 198.51.100.11.8080 > 203.0.113.10.40000: Flags [S.], length 0")
	p, _ = capFind(ps, capTCP("P.", "in", "eth1"))
	capCheckText(t, p, "eth1 In  IP 203.0.113.10.40000 > 198.51.100.11.8080: Flags [P.], length 1")
	for _, p := range ps {
		// Until eth1 first answers, the fabric's bridge does not know its
		// MAC and floods the SYN to eth0 as well, where it is addressed to
		// another host (tcpdump's "P"): not traffic of this host.
		flooded := p.Iface == "eth0" && strings.Contains(p.Text, " eth0 P   IP ") && p.Flags == "S"
		if (p.Iface != "eth1" && !flooded) || !capOfFlow(p, f) {
			t.Errorf("off eth1 or not the flow's: %s", p.Text)
		}
	}
}

// The namespaces of the filter tests:
//
//	A eth0 192.0.2.10/24 2001:db8:a::10/64 -- R eth0 192.0.2.1 2001:db8:a::1
//	R eth1 198.51.100.1/24 2001:db8:b::1/64 (MTU 1280) -- B eth0 198.51.100.20, .21, 2001:db8:b::20, ::21
//
// A and B route through R. Only R's side of the R-B link is narrow: R
// answers large packets from A with "frag needed" or "packet too big",
// and B, at 1500, still advertises a TCP MSS of 1460, so A's large TCP
// segments meet the narrow link too. Captures run in A.
const (
	capA4, capB4, capB4Other = "192.0.2.10", "198.51.100.20", "198.51.100.21"
	capA6, capB6, capB6Other = "2001:db8:a::10", "2001:db8:b::20", "2001:db8:b::21"
	capNarrowMTU             = 1280
)

type capNet struct {
	a, r, b probetest.NS
	ta      *probes.Target
}

func newCapNet(t *testing.T) *capNet {
	t.Helper()
	n := &capNet{a: probetest.NewNS(t), r: probetest.NewNS(t), b: probetest.NewNS(t)}
	probetest.Sysctl(t, n.r.Handle, "net/ipv4/ip_forward", "1")
	for _, ns := range []probetest.NS{n.a, n.r, n.b} {
		// IPv6 on, without DAD (addresses usable at once) or router
		// advertisements; no reverse-path filter. Set before the links
		// exist, so that they inherit "default".
		for _, kv := range [][2]string{
			{"net/ipv6/conf/all/disable_ipv6", "0"}, {"net/ipv6/conf/default/disable_ipv6", "0"},
			{"net/ipv6/conf/all/accept_dad", "0"}, {"net/ipv6/conf/default/accept_dad", "0"},
			{"net/ipv6/conf/all/accept_ra", "0"}, {"net/ipv6/conf/default/accept_ra", "0"},
			{"net/ipv4/conf/all/rp_filter", "0"}, {"net/ipv4/conf/default/rp_filter", "0"},
		} {
			probetest.Sysctl(t, ns.Handle, kv[0], kv[1])
		}
	}
	probetest.Sysctl(t, n.r.Handle, "net/ipv6/conf/all/forwarding", "1")
	capLink(t, n.a, "eth0", n.r, "eth0", 0, []string{capA4 + "/24", capA6 + "/64"}, []string{"192.0.2.1/24", "2001:db8:a::1/64"})
	capLink(t, n.r, "eth1", n.b, "eth0", capNarrowMTU, []string{"198.51.100.1/24", "2001:db8:b::1/64"},
		[]string{capB4 + "/24", capB4Other + "/24", capB6 + "/64", capB6Other + "/64"})
	capDefault(t, n.a, "192.0.2.1", "2001:db8:a::1")
	capDefault(t, n.b, "198.51.100.1", "2001:db8:b::1")
	n.ta = openTarget(t, n.a.Name)
	return n
}

// capLink joins two namespaces with a veth pair, sets the MTU of a's end
// (0: leave it), adds the addresses (IPv6 ones without DAD), brings both
// ends up and waits until they are ready.
func capLink(t *testing.T, a probetest.NS, aName string, b probetest.NS, bName string, mtu int, aAddrs, bAddrs []string) {
	t.Helper()
	probetest.Veth(t, a, probetest.Link{Name: aName, Addrs: aAddrs, MTU: mtu}, b, probetest.Link{Name: bName, Addrs: bAddrs})
	// Bringing a link up finishes asynchronously: the carrier change,
	// the qdisc and IPv6 addrconf run from linkwatch, which batches
	// events system-wide. Seen here: R's eth0 had no link-local address
	// and answered no neighbour solicitation for over a second after
	// LinkSetUp returned, and A retries a solicitation only every second,
	// so the first connection lost its SYNs. Wait until it is done.
	capReady(t, probetest.Netlink(t, a.Handle), aName)
	capReady(t, probetest.Netlink(t, b.Handle), bName)
}

// capReady waits until a link is operationally up and has a usable IPv6
// link-local address: what linkwatch and addrconf do once the carrier is seen.
func capReady(t *testing.T, h *netlink.Handle, name string) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		l, err := h.LinkByName(name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		ready := false
		if l.Attrs().OperState == netlink.OperUp {
			as, _ := h.AddrList(l, netlink.FAMILY_V6)
			for _, a := range as {
				if a.IP.IsLinkLocalUnicast() && a.Flags&unix.IFA_F_TENTATIVE == 0 {
					ready = true
				}
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not up with an IPv6 link-local address after 5s", name)
		}
	}
}

func capDefault(t *testing.T, ns probetest.NS, gws ...string) {
	t.Helper()
	h := probetest.Netlink(t, ns.Handle)
	l, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatalf("find eth0: %v", err)
	}
	for _, gw := range gws {
		ip := net.ParseIP(gw)
		dst := &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
		if ip.To4() == nil {
			dst = &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		if err := h.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: ip}); err != nil {
			t.Fatalf("default route via %s: %v", gw, err)
		}
	}
}

// capReuse lets a fixed source port be bound again at once.
func capReuse(_, _ string, rc syscall.RawConn) error {
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}); err != nil {
		return err
	}
	return serr
}

// capServe runs TCP echo listeners in ns until the test ends: one byte
// back, then wait for the client to go (it closes with RST).
func capServe(t *testing.T, ns probetest.NS, addrs ...string) {
	t.Helper()
	var lns []net.Listener
	probetest.Do(t, ns.Handle, func() error {
		for _, a := range addrs {
			l, err := (&net.ListenConfig{Control: capReuse}).Listen(context.Background(), "tcp", a)
			if err != nil {
				return err
			}
			lns = append(lns, l)
		}
		return nil
	})
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					c.(*net.TCPConn).SetLinger(0)
					c.SetDeadline(time.Now().Add(5 * time.Second))
					b := make([]byte, 1)
					if _, err := io.ReadFull(c, b); err == nil {
						c.Write(b)
						io.Copy(io.Discard, c)
					}
				}()
			}
		}()
	}
	t.Cleanup(func() {
		for _, l := range lns {
			l.Close()
		}
		wg.Wait()
	})
}

// capDial connects from a fixed source in ns, echoes one byte and closes
// with RST.
func capDial(t *testing.T, ns probetest.NS, src, dst string) error {
	t.Helper()
	return capExchange(t, ns, src, dst, 1)
}

// capExchange connects from a fixed source in ns, sends size bytes, reads
// the one-byte echo and closes with RST.
func capExchange(t *testing.T, ns probetest.NS, src, dst string, size int) error {
	t.Helper()
	var res error
	probetest.Do(t, ns.Handle, func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(src)), Timeout: 2 * time.Second, Control: capReuse}
		c, err := d.Dial("tcp", dst)
		if err != nil {
			res = err
			return nil
		}
		tc := c.(*net.TCPConn)
		tc.SetLinger(0)
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(2 * time.Second))
		b := make([]byte, size)
		b[0] = 'a'
		if _, res = tc.Write(b); res != nil {
			return nil
		}
		_, res = io.ReadFull(tc, b[:1])
		return nil
	})
	return res
}

// capUDP sends count datagrams of size bytes from a fixed source in ns,
// with DF set (IP_PMTUDISC_DO), so that a narrow link answers with an
// ICMP error instead of fragmenting. The socket is not connected: a
// connected one would swallow a datagram to report each port unreachable
// (sock_error in sock_alloc_send_pskb).
func capUDP(t *testing.T, ns probetest.NS, src, dst string, size, count int) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(s))
		if err != nil {
			return err
		}
		defer c.Close()
		rc, err := c.SyscallConn()
		if err != nil {
			return err
		}
		rc.Control(func(fd uintptr) {
			if s.Addr().Is4() {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO)
			} else {
				unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_MTU_DISCOVER, unix.IPV6_PMTUDISC_DO)
			}
		})
		b := make([]byte, size)
		for range count {
			// EMSGSIZE is expected once the path MTU is known.
			c.WriteToUDPAddrPort(b, d)
		}
		return nil
	})
}

// capPing sends one ICMP echo request from a raw socket in ns.
func capPing(t *testing.T, ns probetest.NS, src, dst string, id, seq int) {
	t.Helper()
	probetest.Do(t, ns.Handle, func() error {
		network, typ := "ip4:icmp", icmp.Type(ipv4.ICMPTypeEcho)
		if netip.MustParseAddr(src).Is6() {
			// The kernel fills in the ICMPv6 checksum of a raw socket.
			network, typ = "ip6:ipv6-icmp", ipv6.ICMPTypeEchoRequest
		}
		c, err := icmp.ListenPacket(network, src)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("asym")}}).Marshal(nil)
		if err != nil {
			return err
		}
		_, err = c.WriteTo(b, &net.IPAddr{IP: net.ParseIP(dst)})
		return err
	})
}

// capOnly fails the test for every packet that is not the flow's.
func capOnly(t *testing.T, name string, r *capRec, f flow.Flow) {
	t.Helper()
	n := 0
	for _, p := range r.packets() {
		if !capOfFlow(p, f) {
			n++
			t.Errorf("%s: not the flow's: %s", name, p.Text)
		}
	}
	t.Logf("%s: %d packets, %d unrelated", name, len(r.packets()), n)
}

// TestCaptureOnlyTheFlow runs three captures side by side (a TCP, a UDP and
// an ICMP flow between the same two hosts) while traffic that differs from
// the TCP flow in one thing each goes by: another source port, another
// destination port, another host, the two ports swapped, UDP on the same
// ports, a ping. Each capture must see its own flow and nothing else.
func TestCaptureOnlyTheFlow(t *testing.T) {
	start := time.Now()
	n := newCapNet(t)
	capServe(t, n.b, capB4+":8080", capB4+":9090", capB4Other+":8080")
	ftcp := parseFlow(t, "tcp 192.0.2.10:40000 198.51.100.20:8080")
	fudp := parseFlow(t, "udp 192.0.2.10:40000 198.51.100.20:8080")
	ficmp := parseFlow(t, "icmp 192.0.2.10 198.51.100.20")
	t.Logf("namespaces up in %s", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opt := capture.Options{Interval: 50 * time.Millisecond}
	rtcp, rudp, ricmp := capRecord(capture.Capture(ctx, n.ta, ftcp, opt)), capRecord(capture.Capture(ctx, n.ta, fudp, opt)), capRecord(capture.Capture(ctx, n.ta, ficmp, opt))

	for _, c := range [][2]string{
		{"192.0.2.10:40001", "198.51.100.20:8080"}, // another source port
		{"192.0.2.10:40000", "198.51.100.20:9090"}, // another destination port
		{"192.0.2.10:40000", "198.51.100.21:8080"}, // another host
	} {
		if err := capDial(t, n.a, c[0], c[1]); err != nil {
			t.Fatalf("%s > %s: %v", c[0], c[1], err)
		}
	}
	// The ports swapped: nobody listens on 40000, B answers with RST.
	if err := capDial(t, n.a, "192.0.2.10:8080", "198.51.100.20:40000"); !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("192.0.2.10:8080 > 198.51.100.20:40000: %v, want connection refused", err)
	}
	capUDP(t, n.a, "192.0.2.10:40000", "198.51.100.20:8080", 10, 1) // B answers port unreachable
	capPing(t, n.a, capA4, capB4, 7, 1)
	capPing(t, n.a, capA4, capB4Other, 8, 1) // another host: not the ICMP flow's
	if err := capDial(t, n.a, "192.0.2.10:40000", "198.51.100.20:8080"); err != nil {
		t.Fatalf("the flow: %v", err)
	}

	tcpDone := func(p evidence.CapturedPacket) bool { return strings.HasPrefix(p.Flags, "R") && p.Dir == "out" }
	ok := rtcp.until(2*time.Second, capTCP("S", "out", "eth0"), capTCP("S.", "in", "eth0"),
		capTCP("P.", "out", "eth0"), capTCP("P.", "in", "eth0"), tcpDone)
	ok = rudp.until(2*time.Second,
		func(p evidence.CapturedPacket) bool { return p.Proto == unix.IPPROTO_UDP && p.Dir == "out" },
		func(p evidence.CapturedPacket) bool { return p.ICMP == "unreachable (port)" && p.Dir == "in" }) && ok
	ok = ricmp.until(2*time.Second,
		func(p evidence.CapturedPacket) bool { return p.ICMP == "echo request id 7 seq 1" && p.Dir == "out" },
		func(p evidence.CapturedPacket) bool { return p.ICMP == "echo reply id 7 seq 1" && p.Dir == "in" }) && ok
	cancel()
	for _, r := range []*capRec{rtcp, rudp, ricmp} {
		r.WaitClosed(t, "capture")
	}
	rtcp.log(t, "tcp")
	rudp.log(t, "udp")
	ricmp.log(t, "icmp")
	if !ok {
		t.Fatal("a capture missed packets of its flow")
	}
	capOnly(t, "tcp", rtcp, ftcp)
	capOnly(t, "udp", rudp, fudp)
	capOnly(t, "icmp", ricmp, ficmp)
	for name, r := range map[string]*capRec{"tcp": rtcp, "udp": rudp, "icmp": ricmp} {
		r.noErrs(t, name)
	}

	p, _ := capFind(rudp.packets(), func(p evidence.CapturedPacket) bool { return p.ICMP != "" })
	if !p.Reply || p.Src.Addr() != ftcp.Dst.Addr() || p.Proto != unix.IPPROTO_ICMP {
		t.Errorf("the port unreachable: %+v", p)
	}
	capCheckText(t, p, "eth0 In  IP 198.51.100.20 > 192.0.2.10: ICMP unreachable (port) for udp 192.0.2.10.40000 > 198.51.100.20.8080, length 46")
	p, _ = capFind(ricmp.packets(), func(p evidence.CapturedPacket) bool { return p.ICMP == "echo reply id 7 seq 1" })
	if !p.Reply || p.Len != 32 {
		t.Errorf("the echo reply: %+v", p)
	}
	capCheckText(t, p, "eth0 In  IP 198.51.100.20 > 192.0.2.10: ICMP echo reply, id 7, seq 1, length 12")
	t.Logf("done in %s", time.Since(start).Round(time.Millisecond))
}

// TestCaptureIPv6 is the same over IPv6: a TCP flow among unrelated
// connections and neighbour discovery between the same two addresses'
// segment, and an ICMPv6 echo flow.
func TestCaptureIPv6(t *testing.T) {
	n := newCapNet(t)
	capServe(t, n.b, "["+capB6+"]:8080", "["+capB6+"]:9090", "["+capB6Other+"]:8080")
	ftcp := parseFlow(t, "tcp [2001:db8:a::10]:40010 [2001:db8:b::20]:8080")
	fping := parseFlow(t, "icmp 2001:db8:a::10 2001:db8:b::20")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opt := capture.Options{Interval: 50 * time.Millisecond}
	rtcp, rping := capRecord(capture.Capture(ctx, n.ta, ftcp, opt)), capRecord(capture.Capture(ctx, n.ta, fping, opt))

	for _, c := range [][2]string{
		{"[2001:db8:a::10]:40011", "[2001:db8:b::20]:8080"},
		{"[2001:db8:a::10]:40010", "[2001:db8:b::20]:9090"},
		{"[2001:db8:a::10]:40010", "[2001:db8:b::21]:8080"},
		{"[2001:db8:a::10]:40010", "[2001:db8:b::20]:8080"}, // the flow
	} {
		if err := capDial(t, n.a, c[0], c[1]); err != nil {
			t.Fatalf("%s > %s: %v", c[0], c[1], err)
		}
	}
	capPing(t, n.a, capA6, capB6Other, 9, 1)
	capPing(t, n.a, capA6, capB6, 7, 2)

	ok := rtcp.until(2*time.Second, capTCP("S", "out", "eth0"), capTCP("S.", "in", "eth0"),
		capTCP("P.", "out", "eth0"), capTCP("P.", "in", "eth0"))
	ok = rping.until(2*time.Second,
		func(p evidence.CapturedPacket) bool {
			return p.ICMP == "echo request id 7 seq 2" && p.Dir == "out" && !p.Reply
		},
		func(p evidence.CapturedPacket) bool {
			return p.ICMP == "echo reply id 7 seq 2" && p.Dir == "in" && p.Reply
		}) && ok
	cancel()
	rtcp.WaitClosed(t, "tcp")
	rping.WaitClosed(t, "icmpv6")
	rtcp.log(t, "tcp")
	rping.log(t, "icmpv6")
	if !ok {
		t.Fatal("a capture missed packets of its flow")
	}
	capOnly(t, "tcp", rtcp, ftcp)
	capOnly(t, "icmpv6", rping, fping)
	rtcp.noErrs(t, "tcp")
	rping.noErrs(t, "icmpv6")
	p, _ := capFind(rtcp.packets(), capTCP("S", "out", "eth0"))
	if p.Reply || p.Len < 60 {
		t.Errorf("the SYN: %+v", p)
	}
	capCheckText(t, p, "eth0 Out IP6 2001:db8:a::10.40010 > 2001:db8:b::20.8080: Flags [S], length 0")
	p, _ = capFind(rping.packets(), func(p evidence.CapturedPacket) bool { return p.ICMP == "echo request id 7 seq 2" })
	capCheckText(t, p, "eth0 Out IP6 2001:db8:a::10 > 2001:db8:b::20: ICMP6, echo request, id 7, seq 2, length 12")
}

// TestCaptureICMPErrors has the router in front of the narrow link answer
// large datagrams with "frag needed" (IPv4) and "packet too big" (IPv6),
// from its own address: the filter must find the flow in the packet the
// error quotes, the IPv4 one behind a variable header length.
func TestCaptureICMPErrors(t *testing.T) {
	n := newCapNet(t)
	for _, c := range []struct {
		flow, icmp, text string
	}{
		{"udp 192.0.2.10:40100 198.51.100.20:9999", "unreachable (frag needed, mtu 1280)",
			"eth0 In  IP 192.0.2.1 > 192.0.2.10: ICMP unreachable (frag needed, mtu 1280) for udp 192.0.2.10.40100 > 198.51.100.20.9999, length 556"},
		{"udp [2001:db8:a::10]:40100 [2001:db8:b::20]:9999", "packet too big (mtu 1280)",
			"eth0 In  IP6 2001:db8:a::1 > 2001:db8:a::10: ICMP6, packet too big (mtu 1280) for udp 2001:db8:a::10.40100 > 2001:db8:b::20.9999, length 1240"},
	} {
		f := parseFlow(t, c.flow)
		ctx, cancel := context.WithCancel(t.Context())
		r := capRecord(capture.Capture(ctx, n.ta, f, capture.Options{Interval: 50 * time.Millisecond}))
		capUDP(t, n.a, f.Src.String(), f.Dst.String(), 1400, 1)
		ok := r.until(2*time.Second,
			func(p evidence.CapturedPacket) bool { return p.Proto == uint8(f.Proto) && p.Dir == "out" },
			func(p evidence.CapturedPacket) bool { return p.ICMP == c.icmp })
		cancel()
		r.WaitClosed(t, c.flow)
		r.log(t, c.flow)
		if !ok {
			t.Errorf("%s: no datagram out and %q in within 2s", c.flow, c.icmp)
			continue
		}
		capOnly(t, c.flow, r, f)
		r.noErrs(t, c.flow)
		p, _ := capFind(r.packets(), func(p evidence.CapturedPacket) bool { return p.ICMP == c.icmp })
		if !p.Reply || p.Dir != "in" {
			t.Errorf("%s: the error is not a reply coming in: %+v", c.flow, p)
		}
		capCheckText(t, p, c.text)
	}
}

// TestCaptureBatchCap checks the per-update cap: nobody reads while the
// flow sends, so one batch waits in the channel and one more fills up
// behind it; the rest is counted.
func TestCaptureBatchCap(t *testing.T) {
	n := newCapNet(t)
	f := parseFlow(t, "udp 192.0.2.10:40200 198.51.100.20:9999")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ch := capture.Capture(ctx, n.ta, f, capture.Options{Interval: 50 * time.Millisecond, MaxBatch: 3})
	const sent = 20
	capUDP(t, n.a, f.Src.String(), f.Dst.String(), 10, sent)
	time.Sleep(300 * time.Millisecond) // several intervals with nobody reading
	got, dropped := 0, 0
	r := capRecord(ch)
	time.Sleep(200 * time.Millisecond)
	cancel()
	r.WaitClosed(t, "cap")
	for _, u := range r.Got() {
		if len(u.Packets) > 3 {
			t.Errorf("an update carries %d packets, more than MaxBatch 3", len(u.Packets))
		}
		if u.Err != nil {
			t.Errorf("unexpected error: %v", u.Err)
		}
		got += len(u.Packets)
		dropped += u.Dropped
	}
	t.Logf("%d sent (plus ICMP errors), %d delivered, %d dropped", sent, got, dropped)
	if got+dropped < sent {
		t.Errorf("%d delivered + %d dropped < %d sent: losses went uncounted", got, dropped, sent)
	}
	if got > 6 {
		t.Errorf("%d delivered: at most two batches of 3 can wait for a reader", got)
	}
}

// TestCaptureKernelDrops floods the flow into the smallest receive buffer
// the kernel allows: what the kernel drops comes back as Dropped
// (PACKET_STATISTICS), and delivered + dropped accounts for every datagram.
func TestCaptureKernelDrops(t *testing.T) {
	n := newCapNet(t)
	defer func(v int) { *capture.RcvBuf = v }(*capture.RcvBuf)
	*capture.RcvBuf = 1 // clamped up to SOCK_MIN_RCVBUF: a handful of packets
	f := parseFlow(t, "udp 192.0.2.10:40300 198.51.100.20:9999")
	probetest.Sysctl(t, n.b.Handle, "net/ipv4/icmp_ratelimit", "1000000") // no port unreachables to blur the count
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := capRecord(capture.Capture(ctx, n.ta, f, capture.Options{Interval: 50 * time.Millisecond, MaxBatch: 1 << 20}))
	const sent = 5000
	start := time.Now()
	capUDP(t, n.a, f.Src.String(), f.Dst.String(), 10, sent)
	t.Logf("sent %d datagrams in %s", sent, time.Since(start).Round(time.Millisecond))
	time.Sleep(200 * time.Millisecond)
	cancel()
	r.WaitClosed(t, "flood")
	r.noErrs(t, "flood")
	out := 0
	for _, p := range r.packets() {
		if p.Proto == unix.IPPROTO_UDP && p.Dir == "out" {
			out++
		}
	}
	got, dropped := len(r.packets()), r.dropped()
	t.Logf("delivered %d (%d datagrams out), dropped %d", got, out, dropped)
	if dropped == 0 {
		t.Error("no drops counted: the flood fitted a minimal buffer?")
	}
	if got+dropped < sent {
		t.Errorf("%d delivered + %d dropped < %d sent: kernel drops went uncounted", got, dropped, sent)
	}
}

// TestCaptureNoGoroutineLeak cancels captures in every state and checks
// that goroutines and descriptors return to where they were.
func TestCaptureNoGoroutineLeak(t *testing.T) {
	n := newCapNet(t)
	f := parseFlow(t, "udp 192.0.2.10:40400 198.51.100.20:9999")
	opt := capture.Options{Interval: 20 * time.Millisecond}
	run := func(name string, read, pre bool) {
		ctx, cancel := context.WithCancel(t.Context())
		if pre {
			cancel()
		}
		ch := capture.Capture(ctx, n.ta, f, opt)
		if !pre {
			capUDP(t, n.a, f.Src.String(), f.Dst.String(), 10, 2)
		}
		if read {
			select {
			case u := <-ch:
				if len(u.Packets) == 0 || u.Err != nil {
					t.Errorf("%s: first update %+v", name, u)
				}
			case <-time.After(2 * time.Second):
				t.Fatalf("%s: no update within 2s", name)
			}
		} else if !pre {
			time.Sleep(100 * time.Millisecond) // nobody reads: batches merge
		}
		start := time.Now()
		cancel()
		probetest.WaitClosed(t, ch, name)
		t.Logf("%s: closed %s after cancel", name, time.Since(start).Round(10*time.Microsecond))
	}
	fds := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	run("warm-up", true, false) // lets the runtime start its poller for good
	runtime.GC()
	base, baseFDs := runtime.NumGoroutine(), fds()
	run("reading", true, false)
	run("not reading", false, false)
	run("cancelled before", false, true)
	probetest.WaitGoroutines(t, base)
	if d := fds(); d > baseFDs {
		t.Errorf("%d descriptors open after cancelling, %d before: a socket leaked", d, baseFDs)
	}
}

// TestCaptureWithoutTarget and bad flows fail in the channel, as sentences.
func TestCaptureWithoutTarget(t *testing.T) {
	check := func(name string, ch <-chan evidence.CaptureUpdate, says string) {
		t.Helper()
		u, ok := <-ch
		if !ok || u.Err == nil || !strings.Contains(u.Err.Error(), says) {
			t.Errorf("%s: got %+v, want an error saying %q", name, u, says)
		}
		if _, ok := <-ch; ok {
			t.Errorf("%s: the channel stays open after the error", name)
		}
	}
	f := parseFlow(t, "tcp 192.0.2.10:40000 198.51.100.20:8080")
	check("no target", capture.Capture(t.Context(), nil, f, capture.Options{}), "no namespace")
	tg := &probes.Target{Kind: "host"}
	check("no flow", capture.Capture(t.Context(), tg, flow.Flow{}, capture.Options{}), "same IP version")
	check("sctp", capture.Capture(t.Context(), tg, flow.Flow{Proto: 132, Src: f.Src, Dst: f.Dst}, capture.Options{}), "give a tcp, udp or icmp flow")

	err := capture.Failure(errors.Join(errors.New("create a packet socket in host namespace"), unix.EPERM))
	if !strings.HasPrefix(err.Error(), "packet capture is unavailable: needs root (CAP_NET_RAW)") || !errors.Is(err, unix.EPERM) {
		t.Errorf("EPERM reads %q", err)
	}
	if st, _ := evidence.Classify(err); st != evidence.StatusUnavailable {
		t.Errorf("EPERM classifies as %s", st)
	}
}

// TestCaptureNotRoot runs a capture as nobody, in a copy of the test
// binary (the build directory is private to root): the kernel refuses the
// packet socket, and the capture says why in the channel.
func TestCaptureNotRoot(t *testing.T) {
	if os.Getenv("ASYM_CAPTURE_NOT_ROOT") == "1" {
		tg, err := probes.OpenTarget("", 0)
		if err != nil {
			t.Fatalf("open this namespace: %v", err)
		}
		defer tg.Close()
		ch := capture.Capture(t.Context(), tg, parseFlow(t, "tcp 192.0.2.10:40000 198.51.100.20:8080"), capture.Options{})
		u, ok := <-ch
		if !ok || u.Err == nil {
			t.Fatalf("a capture as uid %d: %+v", os.Geteuid(), u)
		}
		if _, open := <-ch; open {
			t.Error("the channel stays open after the error")
		}
		t.Logf("error: %v", u.Err)
		return
	}
	probetest.RequireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "asym-capture-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "capture.test")
	b, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	if err != nil {
		t.Fatalf("copy the test binary: %v", err)
	}
	cmd := exec.Command(bin, "-test.run=^TestCaptureNotRoot$", "-test.v", "-test.count=1")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "ASYM_CAPTURE_NOT_ROOT=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as nobody: %v\n%s", err, out)
	if err != nil {
		t.Fatal("the capture as nobody failed its own checks")
	}
	if !strings.Contains(string(out), "error: packet capture is unavailable: needs root (CAP_NET_RAW)") {
		t.Error("the capture as nobody did not say it needs root (CAP_NET_RAW)")
	}
}

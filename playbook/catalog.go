package playbook

import "strings"

// FindingID names a kind of finding. Ids are stable: runbooks and alerts
// refer to them, and the JSON report carries them as these strings.
type FindingID string

// The findings asym knows, one per catalog entry.
const (
	// First: the path.
	RPFilterStrictDrop FindingID = "rp_filter_strict_drop"
	ReplyWrongEgress   FindingID = "reply_wrong_egress"
	WrongSourceAddress FindingID = "wrong_source_address"
	RouteRefused       FindingID = "route_refused"
	// Second: state.
	CtInvalidDrop      FindingID = "ct_invalid_drop"
	FirewallPathDrop   FindingID = "firewall_path_drop"
	NftFibRPFilterDrop FindingID = "nft_fib_rpfilter_drop"
	ConntrackUnreplied FindingID = "conntrack_unreplied"
	NATStateMiss       FindingID = "nat_state_miss"
	ECMPMultipath      FindingID = "ecmp_multipath"
	MarkNotRestored    FindingID = "mark_not_restored"
	SrcValidMarkOff    FindingID = "src_valid_mark_off"
	// Third: configuration, MTU and the flow's packets.
	MissingSourceRule FindingID = "missing_source_rule"
	RuleUnknownSource FindingID = "rule_unknown_source"
	RuleEmptyTable    FindingID = "rule_empty_table"
	RuleShadowed      FindingID = "rule_shadowed"
	RulePortSelective FindingID = "rule_port_selective"
	MissingLinkRoute  FindingID = "missing_link_route"
	ARPFlux           FindingID = "arp_flux"
	MTUBlackhole      FindingID = "mtu_blackhole"
	SYNUnanswered     FindingID = "syn_unanswered"
	// The kernel's own drops of the flow (the drop witness).
	NeighbourFailed FindingID = "neighbour_failed"
	KernelDrop      FindingID = "kernel_drop"
	// Both ends (--peer).
	ReplyLostInPath       FindingID = "reply_lost_in_path"
	ReplyReturnsElsewhere FindingID = "reply_returns_elsewhere"
	RequestLostInPath     FindingID = "request_lost_in_path"
	PeerRoleConflict      FindingID = "peer_role_conflict"
	// The flow's path hop by hop (asym trace).
	PathDiverges       FindingID = "path_diverges"
	StateMissingInPath FindingID = "state_missing_in_path"
	// A peer that was not diagnosed, or only partly.
	PeerUnreachable  FindingID = "peer_unreachable"
	PeerNoAsym       FindingID = "peer_no_asym"
	PeerNoSudo       FindingID = "peer_no_sudo"
	PeerTimeout      FindingID = "peer_timeout"
	PeerIncompatible FindingID = "peer_incompatible"
	PeerFailed       FindingID = "peer_failed"
	PeerNotRoot      FindingID = "peer_not_root"
)

// Entry describes one kind of finding for `asym explain` and the docs.
type Entry struct {
	ID       FindingID
	Severity Severity
	Step     string
	Title    string
	Explain  string
}

// Catalog lists every finding asym can report, by id. Ids are stable: runbooks
// and alerts may refer to them.
var Catalog = []Entry{
	{RPFilterStrictDrop, Critical, "first", "Strict reverse-path filter drops the packet on the interface it arrives on",
		`The kernel checks every packet that arrives against its own routing table: "if I sent a packet to this
source, would it leave by the interface this packet came in on?" With rp_filter=1 (strict) the answer must
be yes, or the packet is dropped before any socket or firewall sees it. The value that counts is the
larger of net.ipv4.conf.all.rp_filter and the interface's own value.

This is the classic failure of a host with two NICs on one subnet: a request to the second NIC's address
arrives on eth1, but the route back to the client leaves by eth0, so the request is dropped as a
"martian". Nothing answers, no log line appears unless log_martians is on, and TcpExt
IPReversePathFilter counts the drops.

asym proves it by asking the kernel the same question it asks itself: an input route lookup with the
arrival interface (ip route get DST from SRC iif IFACE). A refusal (EINVAL since Linux 6.13, EXDEV
before) with strict rp_filter on that interface is the drop.

Fix: make the way back leave by the interface the request came in on, with source-based policy routing
(a table per interface and "from ADDRESS lookup TABLE" rules). Loose mode (rp_filter=2) also stops the
drop, but only hides the asymmetry: a fabric or firewall that checks sources will still drop the reply.`},
	{ReplyWrongEgress, Critical, "first", "The reply leaves by a different interface than the request came in on",
		`The request arrives on one interface and the kernel sends the reply out of another. Routing looks only at
the destination unless a rule says otherwise, so a host with two interfaces sends every reply by the
main table's default route, whichever interface the request came in on.

Whether that breaks the flow depends on what sits on the way back: a cloud fabric drops packets whose
source address does not belong to the NIC they leave by (the VPC source/destination check), an ISP
drops packets from addresses it did not assign (BCP 38 ingress filtering), a stateful firewall drops a
reply it never saw the request of, and the client's own rp_filter may drop it.

Fix: source-based policy routing, so that replies from an address leave by that address's interface: a
table per interface with its link route and default route, and a "from ADDRESS lookup TABLE" rule.`},
	{WrongSourceAddress, Critical, "first", "Packets leave by an interface that does not own their source address",
		`This host sends the flow from an address that belongs to one interface, but the route chosen for the
destination leaves by another. The packets go out with a source address the other side (and any
source-checking fabric, cloud VPC or ISP) associates with a different interface, and replies come back
to the interface that owns the address. That is asymmetric routing created on this host.

Fix: a source-based rule for the address so its traffic leaves by its own interface, or bind the
application to the address of the interface the route uses.`},
	{RouteRefused, Critical, "first", "The kernel refuses to route the flow: a blackhole, unreachable or prohibit route or rule, or no route at all",
		`Not every path problem is an asymmetry: the way back (or the way on) may not exist. A blackhole
route drops the packet silently, an unreachable or prohibit route answers with an ICMP error, and a
table without a matching route (not even a default) ends the packet with "network is unreachable".
Policy rules can do the same (ip rule … blackhole, unreachable, prohibit). Such routes are left by DDoS
blocks, decommissioned VPNs and routing daemons' summary routes; a lost default route is usually a
network manager that lost a lease or an interface.

asym asks the kernel the route, as for every flow: the error it answers with says the kind (an output
lookup's EINVAL is a blackhole, EHOSTUNREACH unreachable, EACCES prohibit, ENETUNREACH no route or an unreachable rule), and
a dump the kernel filters by route type names the route that holds the address, in any table. The
policy rules, when read, name a rule of that kind.

Fix: asym does not remove a route or rule it did not add: one may be meant. It shows the command that
removes it, or says which route is missing.`},
	{MarkNotRestored, Critical, "second", "Connections are marked on the way in, but their replies never get the mark back",
		`Multi-WAN routers and hosts route replies by the link their connection came in on with marks: the
firewall sets a connection mark on the first packet (ct mark set, -j CONNMARK --set-mark), a policy
rule sends packets with that mark through the link's table (ip rule fwmark 0x2 lookup 102), and a
restore (meta mark set ct mark in a type route hook output chain, -j CONNMARK --restore-mark) copies the
connection's mark onto each reply so that the rule sees it. Without the restore the reply carries no
mark, the rule never matches, and the reply follows the main table out of the default link, where the
ISP's ingress filter drops the foreign source.

asym reads the mark rules, works out the marks the request, its connection and the reply really carry,
and asks the kernel the reply's route with the mark it carries and with the one it would carry if
restored.

Fix: restore the mark on replies in the firewall; or a source rule for the address (from ADDRESS lookup
TABLE), which asym can apply, placed before any rule that decides the reply now.`},
	{SrcValidMarkOff, Critical, "second", "The reverse-path check ignores the mark that routes the way back (src_valid_mark is off)",
		`With routing by fwmark, the way back to a client can depend on the mark: a request marked on arrival is
answered through the table its mark selects. The reverse-path filter asks its own question ("would the
way back leave by this interface?") without the mark unless net.ipv4.conf.*.src_valid_mark is 1, so it
looks up the main table, finds another interface and, in strict mode, drops the request although its
replies would go back the right way. IPReversePathFilter counts the drops.

asym asks the kernel the way back with the mark the request carries at routing and without it.

Fix: net.ipv4.conf.IFACE.src_valid_mark=1 (it is ORed with "all"). wg-quick sets it for the same reason.
A source rule also passes the check, by going around the marks.`},
	{MissingSourceRule, Critical, "third", "No policy rule sends traffic from this address out of its own interface",
		`A multi-homed host needs one routing decision per source address: replies from the second NIC's
address must leave by the second NIC. Linux does that only when told: a routing table per interface
(its subnet route and its default route) and a rule "from ADDRESS lookup TABLE" below priority 32766,
so it is consulted before the main table. Without such a rule, every reply follows the main table.

Both seed cases are this: two ENIs on one subnet in a VPC, and a server with two ISP links. The link
route in each table matters too (see missing_link_route), and the rule must name the address that is
really on the interface (see rule_unknown_source).

Fix: asym proposes the table, its two routes and the rule, with an unused table id and a free priority.`},
	{RuleUnknownSource, Warning, "third", "A policy rule selects on an address that no interface holds",
		`A "from ADDRESS lookup TABLE" rule only matches packets with that source address. If no interface holds
the address, the rule never matches, and the table it points at is never used: traffic from the real
address falls through to the main table. This is usually a typo, or an address that moved: the cloud
article's own eth0 example has exactly this mistake.

Fix: replace the rule with one naming the address that is really on the interface the table sends by.`},
	{RuleEmptyTable, Critical, "third", "A policy rule points at an empty routing table",
		`The rule matches this flow, but its table holds no route, so the lookup falls through to the next rule
(usually main) as if the rule were not there. Typical causes: routes added to another table id than the
rule names, or routes that vanished when an interface went down or a network manager rewrote them.

Fix: add the routes to the table the rule names (its link route and its default route).`},
	{RuleShadowed, Warning, "third", "A policy rule for this flow is never reached: an earlier rule answers first",
		`Rules are tried in priority order and the first table with a matching route wins. A rule that would send
this flow's traffic the right way exists, but a rule with a smaller priority number matches first and its
table answers. Cloud agents and network managers add broad rules that do this.

Fix: give the specific rule a priority that wins (a smaller number than the rule that answers).`},
	{RulePortSelective, Critical, "third", "A policy rule that selects on the protocol, a port, an interface, a user or a mark sends the flow the wrong way",
		`Policy rules can select on much more than addresses: ipproto, sport/dport, iif, uidrange, fwmark. Such
a rule is usually added for one service or one kind of traffic (a proxy, a VPN, a backup job) and, placed
before the source rules, it also catches replies nobody meant it to: this service's replies follow its
table and leave by the wrong interface, while every other port of the same address works. That is why
the failure looks like "only port 8080 is broken".

asym finds the rule that decided the direction with the flow's own protocol and ports (the kernel's
route lookup carries them) and names it.

Fix: give the flow's own source rule a priority before the selective rule (a fix whose rule sits after
it could never work), or delete the selective rule if nothing needs it any more.`},
	{MissingLinkRoute, Critical, "third", "A policy table has a default route but no route for its own subnet",
		`A per-interface table with only a default route sends even traffic for the interface's own subnet to the
gateway. A neighbour on the subnet sends its request straight to this host, but the reply goes by the
gateway: the path is asymmetric even though one interface is used both ways, and a gateway that
tracks state (or filters redirects) drops the reply. The multi-homed article's readers found this.

Fix: add the link route to the table: "SUBNET dev IFACE scope link src ADDRESS table TABLE".`},
	{ARPFlux, Warning, "third", "Interfaces on one subnet answer ARP for each other's addresses (ARP flux)",
		`By default Linux answers ARP requests for any local address on any interface (the weak host model). With
two interfaces on one subnet, a neighbour may learn the first NIC's MAC for the second NIC's address, so
traffic for one address arrives on the other interface, and flips between them as caches expire.

Fix: arp_ignore=1 (answer only for addresses on the receiving interface) and arp_announce=2 (use the
best local address in ARP requests) on the interfaces involved, together with source-based routing.`},
	{CtInvalidDrop, Critical, "second", "Conntrack marks the flow's packets INVALID and a firewall rule drops them",
		`Connection tracking classifies every packet against the connections it has seen. A SYN-ACK for a SYN that
never passed through this host matches nothing and is INVALID; conntrack creates no entry for it, and a
"ct state invalid drop" rule discards it. The signature is silence: no conntrack entry for the flow, an
INVALID counter that climbs, and the drop rule's counter climbing with it.

That is a stateful device on the return path that did not see the request: a firewall pair behind ECMP
where the request crossed one member and the reply the other, or a reroute in the middle of a flow.

Fix: make both directions cross the same stateful device (pin the route, remove the prefix from ECMP, or
give the pair shared state). Accepting INVALID packets hides the problem and weakens the firewall.`},
	{FirewallPathDrop, Critical, "second", "A firewall rule on the flow's way through this host drops it",
		`asym walks the flow's packets through the firewall the way the kernel would: the base chains of the hooks
each direction crosses, in priority order (nftables and iptables-legacy alike), every rule evaluated
against the packet, jumps and gotos followed where they can match. When the request's first packet, or
the reply to a request this host tracks, certainly ends in a drop or a reject, the rule (or the chain's
policy) that does it is named, with the jumps that lead there.

On a multi-homed host or a zone firewall this is often asymmetry too: the reply comes back (or leaves) by
an interface whose rules accept nothing but new connections of their own, and is dropped even though the
connection is established.

Fix: accept the flow before the rule (ct state established,related accept early in the chain for
replies), or route it by the interface the firewall lets it through.`},
	{NftFibRPFilterDrop, Critical, "second", "An nftables reverse-path rule (fib saddr . iif) drops the flow",
		`A firewall rule like "fib saddr . iif oif missing drop" (firewalld writes one for IPv6, and for IPv4 with
IPv4_rpfilter) is the netfilter form of the reverse-path filter: it drops a packet when the route back to
its source does not leave by the interface it arrived on. It applies to IPv6, which has no rp_filter
sysctl, and ignores the sysctl entirely.

Fix: make the way back symmetric with policy routing, or switch the rule to loose mode
("fib saddr oif missing") for the interfaces where asymmetry is legitimate.`},
	{ECMPMultipath, Warning, "second", "The flow's route has several next hops (ECMP): each direction is hashed on its own",
		`Equal-cost multipath spreads flows over several next hops by a hash of addresses (and, with
fib_multipath_hash_policy 1 or 3, ports). The request and the reply are hashed separately, by different
devices, so they can cross different next hops. When those next hops are stateful (firewalls, NAT,
load balancers) without shared state, some flows fail and others work: a retry with a new source port
lands on another path, which is why the failure looks random.

Fix: make both directions take the same stateful device: pin the prefix to one next hop, or make the
devices share state. This host cannot fix it alone.`},
	{ConntrackUnreplied, Warning, "second", "This host saw the request but never the reply ([UNREPLIED])",
		`The conntrack entry for the flow exists but has never seen a packet in the reply direction. The request
passed through (or left) this host; the reply did not come back this way. Either it was dropped further
on, or it returned by another path, which on a router or firewall is the mark of asymmetric routing.

Fix: follow the reply: check the route back on the far end, and the devices on the other path.`},
	{NATStateMiss, Critical, "second", "The flow was translated (NAT) here, but the reply never came back to this translator",
		`NAT keeps a translation per connection. This host translated the request, but no reply reached it, so the
reply went to another device that has no translation for it: it arrives with an address nobody expects
and is dropped. Two NAT gateways with asymmetric routing between them do this.

Fix: route the replies back through the translator that saw the request, or use one NAT device per
path with shared state.`},
	{MTUBlackhole, Warning, "third", "Large packets vanish on the path while small ones pass (MTU black hole)",
		`Small packets pass both ways, large ones do not: a link on the path has a smaller MTU than the ends
(a tunnel, PPPoE, a WAN circuit), and the ICMP "fragmentation needed" (IPv6: "packet too big") that the
router in front of it sends is filtered on the way back, so path MTU discovery never learns. The
handshake and small requests work; a large answer or upload stalls, and the sender retransmits the
same full-sized segment until someone gives up. It smells like asymmetric routing and often comes
with it: the two directions can cross different links with different MTUs and ICMP policies.

asym proves it from the flow's packets (asym check --watch while the failure is reproduced) on the
host that sends the large segments: the same segment longer than 1280 bytes leaves again and again
after the retransmission timer with nothing from the other end between, while smaller packets of that
direction were answered, and no fragmentation-needed comes back. That finding is critical and says
"proven on the wire"; the black hole is usually on a link between hosts, so nothing in this host's
configuration has to look wrong. If the ICMP does arrive and the segments keep their size, asym says
this host ignores it; if they shrink, path MTU discovery works and the stall is something else.
Without packets, asym only suspects it (a warning): the request and the reply cross interfaces of
this host with different MTUs.

Fix: on the path, not here: allow ICMP fragmentation-needed / packet-too-big out of and through the
router in front of the smaller link, make the MTU consistent, or clamp the TCP MSS at that router. A
stopgap on the sender is a route to the destination with a smaller MTU (ip route add DST via GW mtu
lock 1280); asym proposes it but never applies it.`},
}

// syn_unanswered needs live evidence (packets); it is appended to the
// catalog so that the ids above keep their order.
func init() {
	Catalog = append(Catalog, Entry{SYNUnanswered, Warning, "third", "The SYN is retransmitted and no SYN-ACK is seen",
		`Seen on the wire while the failure was reproduced: the same SYN crosses this host again and again (TCP
retransmits it after 1, 3, 7… seconds) and no SYN-ACK comes back through it. On the client, the reply is
lost on the way back or returns by another path; on the server, this host drops the SYN or cannot route
its SYN-ACK; in the middle, the reply takes another way. This is the playbook's "SYN retransmits, no
SYN-ACK", and the reason to capture on both ends.

Fix: capture on the other end; if it sends the SYN-ACK, the return path loses it.`})
}

// The findings of the drop witness, appended for the same reason.
func init() {
	Catalog = append(Catalog,
		Entry{NeighbourFailed, Critical, "third", "The kernel cannot resolve the next hop's MAC address and drops the flow's packets",
			`Seen by the kernel while the failure was reproduced: packets of the flow waited for the next hop's
link-layer address (ARP, or IPv6 neighbour discovery), no answer came, and the kernel freed them with
the reason NEIGH_FAILED. Nothing leaves: a capture on the far side sees nothing of the flow, only ARP
requests here.

A cause that looks like anything but routing: strict rp_filter on the far host silently ignores an ARP
request whose sender address fails its reverse-path check (arp_process asks the same question as for
an IP packet). The sender puts the packet's source address in its request unless arp_announce=2, so a
packet sent from an address the far host routes elsewhere never gets an answer. The sender logs
NEIGH_FAILED while the far host's IPReversePathFilter counter stays at 0, which is why the far host
looks innocent. Other causes: the next hop is down, on another VLAN, or filters ARP (arptables, a
bridge or cloud fabric that drops it).

Fix: make the next hop answer: give it a route back to the source address by the interface the
request arrives on (or loose rp_filter there), or set net.ipv4.conf.IFACE.arp_announce=2 on this host
so its requests carry the interface's own address.`},
		Entry{KernelDrop, Warning, "third", "The kernel drops the flow's packets for a reason no other finding explains",
			`The kernel's drop witness (the kfree_skb tracepoint, Linux 5.17 and later) names the reason for every
packet it frees as dropped, and where in the kernel it did so. asym watches it for the flow's packets
in the target namespace while the failure is reproduced. Reasons that prove another finding join that
finding (IP_RPFILTER proves rp_filter_strict_drop, a NETFILTER_DROP counted by an INVALID rule proves
ct_invalid_drop, PKT_TOO_BIG mtu_blackhole, NEIGH_FAILED neighbour_failed); the others are listed
here with their count and location: no route (IP_INNOROUTES, IP_OUTNOROUTES), an address this host
neither owns nor forwards (IP_INADDRERRORS), a martian source (IP_INVALID_SOURCE), a firewall rule or
policy no other finding names (NETFILTER_DROP), nothing listening (NO_SOCKET, for a SYN or UDP),
queues and traffic control (QDISC_*, TC_*). TCP's own bookkeeping (old duplicates, closed sockets) and
frames flooded to this host for another MAC (OTHERHOST) are shown in the live evidence and never
made findings.

Fix: follow the reason; pwru and retis trace the packet through the stack up to the drop.`})
}

// Lookup finds a catalog entry.
func Lookup(id FindingID) (Entry, bool) {
	for _, e := range Catalog {
		if e.ID == id {
			return e, true
		}
	}
	return Entry{}, false
}

// IDs lists every finding id.
func IDs() []FindingID {
	out := make([]FindingID, len(Catalog))
	for i, e := range Catalog {
		out[i] = e.ID
	}
	return out
}

// Short is the first paragraph of an entry's explanation, for "why".
func (e Entry) Short() string {
	p, _, _ := strings.Cut(e.Explain, "\n\n")
	return strings.Join(strings.Fields(p), " ")
}

// Explains is the catalog's causality: what each finding, when it is
// there, can cause. A configuration mistake explains what the kernel then
// does with the flow (a rule that names no address of the host leaves the
// replies to the main table, so they leave by the wrong interface and the
// strict reverse-path filter drops the requests), and what the kernel does
// explains what is seen on the wire (a SYN nobody answers). It orders
// findings cause first and names the most likely root cause (Sort,
// RootCause). A finding may explain another only on its own end of the
// flow, or one across both ends. It must stay acyclic (a test holds it).
var Explains = map[FindingID][]FindingID{
	// The rules and routes that decide the way back.
	MissingSourceRule: {ReplyWrongEgress, RPFilterStrictDrop, WrongSourceAddress},
	RuleUnknownSource: {MissingSourceRule, ReplyWrongEgress, RPFilterStrictDrop, WrongSourceAddress},
	RuleEmptyTable:    {ReplyWrongEgress, RPFilterStrictDrop, WrongSourceAddress},
	RuleShadowed:      {ReplyWrongEgress, RPFilterStrictDrop, WrongSourceAddress},
	RulePortSelective: {ReplyWrongEgress, RPFilterStrictDrop, WrongSourceAddress},
	MissingLinkRoute:  {SYNUnanswered},
	// Marks: a mark never restored leaves the reply to the main table; a
	// reverse-path check blind to the mark refuses what the mark routes.
	MarkNotRestored: {ReplyWrongEgress, WrongSourceAddress},
	SrcValidMarkOff: {RPFilterStrictDrop},
	// A source address on the wrong interface: the other end answers to
	// the interface that owns it.
	WrongSourceAddress: {ReplyWrongEgress, RPFilterStrictDrop, SYNUnanswered},
	// Next hops hashed per direction: the reply meets a device without the
	// request's state.
	ECMPMultipath: {CtInvalidDrop, ConntrackUnreplied, NATStateMiss, ReplyWrongEgress, SYNUnanswered},
	NATStateMiss:  {CtInvalidDrop, ConntrackUnreplied, SYNUnanswered},
	// A route that ends the flow: nothing comes back to be checked, and
	// the request is sent again and again.
	RouteRefused: {RPFilterStrictDrop, SYNUnanswered},
	// What the kernel does with the flow, seen on the wire.
	ReplyWrongEgress:   {SYNUnanswered, ReplyLostInPath, ReplyReturnsElsewhere},
	RPFilterStrictDrop: {SYNUnanswered},
	NftFibRPFilterDrop: {SYNUnanswered},
	CtInvalidDrop:      {SYNUnanswered},
	ConntrackUnreplied: {SYNUnanswered},
	ReplyLostInPath:    {SYNUnanswered},
	RequestLostInPath:  {SYNUnanswered},
	// The kernel's own drops: nothing of the flow leaves, so the SYN is sent
	// again and again.
	NeighbourFailed: {SYNUnanswered},
	KernelDrop:      {SYNUnanswered},
}

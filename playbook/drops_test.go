package playbook

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"asym/evidence"
)

// drop is a drop of the flow as the witness reports it.
func drop(reason, loc, iface, src, dst string, flags evidence.TCPFlags, reply bool) evidence.Drop {
	d := evidence.Drop{Time: time.Date(2026, 12, 4, 8, 45, 41, 0, time.UTC), Reason: reason, Location: loc, Iface: iface, NetnsInode: 4026532000,
		Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst), Proto: 6, TCP: flags, Len: 60, Reply: reply}
	d.Text = "08:45:41.000000 " + iface + " IP " + src + " > " + dst + ": Flags [" + flags.String() + "] dropped: " + reason + " in " + loc + "+0x10"
	return d
}

// withDrops gives recorded evidence a live window that saw these drops
// (and these counter changes).
func withDrops(e evidence.Evidence, deltas map[string]int64, ds ...evidence.Drop) *evidence.Evidence {
	e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: evidence.ProbeLive, Status: evidence.StatusOK},
		Deltas: deltas, Drops: ds, DropHook: "tp_btf/kfree_skb", Captured: true}
	if e.Live.Deltas == nil {
		e.Live.Deltas = map[string]int64{}
	}
	return &e
}

func findingOf(fs []Finding, id FindingID) *Finding {
	for i := range fs {
		if fs[i].ID == id {
			return &fs[i]
		}
	}
	return nil
}

func hasLine(f *Finding, probe evidence.ProbeID, text string) bool {
	for _, l := range f.Evidence {
		if l.Probe == probe && strings.Contains(l.Text, text) {
			return true
		}
	}
	return false
}

func TestDropRPFilter(t *testing.T) {
	syn := drop("IP_RPFILTER", "ip_rcv_finish_core", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	e := withDrops(loadRecorded(t, "two-nics-strict-host"), nil, syn, syn, syn)
	fs := Analyze(e, len(Steps)-1)
	f := findingOf(fs, RPFilterStrictDrop)
	if f == nil || f.Severity != Critical {
		t.Fatalf("no critical rp_filter_strict_drop: %v", ids(fs))
	}
	want := "the kernel dropped the SYN on eth1: IP_RPFILTER, in ip_rcv_finish_core (3 times over the window) — because the way back to 203.0.113.10 leaves by eth0 (route.request)"
	if !hasLine(f, evidence.ProbeLive, want) || !hasLine(f, evidence.ProbeLive, syn.Text) {
		t.Fatalf("the kernel's word must join the finding:\n%s", evidenceText(f))
	}
	// The finding of the First step keeps its title and fix: the drop is
	// its proof, appended.
	if !strings.HasPrefix(f.Title, "Strict rp_filter on eth1") || f.Fix == nil || f.Evidence[0].Probe != evidence.ProbeRequest {
		t.Errorf("title %q, first evidence %v", f.Title, f.Evidence[0])
	}
	if findingOf(fs, KernelDrop) != nil {
		t.Error("an explained reason must not also be a kernel_drop")
	}
}

// TestDropRPFilterAlone: the kernel's word stands without the route
// probes (they were unavailable, or asym guessed another ingress).
func TestDropRPFilterAlone(t *testing.T) {
	e := loadRecorded(t, "two-nics-strict-host")
	e.Request, e.Reply = nil, nil
	syn := drop("IP_RPFILTER", "ip_rcv_finish_core", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	fs := Analyze(withDrops(e, nil, syn), len(Steps)-1)
	f := findingOf(fs, RPFilterStrictDrop)
	if f == nil || f.Severity != Critical || f.Title != "The kernel dropped the SYN on eth1 for failing the reverse-path check (IP_RPFILTER)" || f.Fix == nil {
		t.Fatalf("%+v", f)
	}
}

func TestDropCtInvalid(t *testing.T) {
	base := loadRecorded(t, "firewall-ecmp-fw2")
	var rule evidence.FirewallRule
	for _, r := range base.Firewall.Rules {
		if r.Kind == evidence.RuleCtInvalid && r.Drops() {
			rule = r
		}
	}
	if rule.Kind == "" {
		t.Fatal("the recording has no ct state invalid drop rule")
	}
	synack := drop("NETFILTER_DROP", "nft_do_chain", "eth1", "203.0.113.10:8080", "192.0.2.10:40000", evidence.TCPSyn|evidence.TCPAck, true)
	t.Run("the rule's counter rises with the drops", func(t *testing.T) {
		fs := Analyze(withDrops(base, map[string]int64{rule.CounterKey(): 2, evidence.CounterCtInvalid: 2}, synack, synack), len(Steps)-1)
		f := findingOf(fs, CtInvalidDrop)
		if f == nil || f.Severity != Critical || !strings.Contains(f.Title, "The kernel dropped the SYN-ACK on eth1 as INVALID: NETFILTER_DROP, by the ct state invalid rule of "+rule.Where()) {
			t.Fatalf("%v\n%+v", ids(fs), f)
		}
		if !hasLine(f, evidence.ProbeLive, "its counter +2 over the window") || !hasLine(f, evidence.ProbeLive, "the kernel dropped the SYN-ACK on eth1: NETFILTER_DROP, in nft_do_chain (2 times") {
			t.Errorf("the rule and the drop must be named:\n%s", evidenceText(f))
		}
		if findingOf(fs, KernelDrop) != nil {
			t.Error("a NETFILTER_DROP the INVALID rule explains is no kernel_drop")
		}
	})
	t.Run("no rule counts it: a firewall drop of its own", func(t *testing.T) {
		fs := Analyze(withDrops(base, nil, synack), len(Steps)-1)
		if f := findingOf(fs, CtInvalidDrop); f != nil && f.Severity == Critical {
			t.Errorf("nothing proves INVALID: %+v", f)
		}
		k := findingOf(fs, KernelDrop)
		if k == nil || k.Severity != Warning || !strings.Contains(k.Title, "NETFILTER_DROP ×1 (nft_do_chain on eth1)") || !strings.Contains(k.Fix.Advice, "nft list ruleset") {
			t.Fatalf("%v\n%+v", ids(fs), k)
		}
	})
}

func TestDropMTU(t *testing.T) {
	base := loadRecorded(t, "mtu-blackhole-server")
	big := drop("PKT_TOO_BIG", "ip_forward", "eth0", "203.0.113.10:8080", "192.0.2.10:40000", evidence.TCPAck, true)
	big.Len = 1500
	icmp := evidence.Drop{Reason: "NETFILTER_DROP", Location: "nft_do_chain", Quoted: true, Reply: false, Proto: 1,
		Src: netip.MustParseAddrPort("198.51.100.2:0"), Dst: netip.MustParseAddrPort("203.0.113.10:0"),
		ICMPMsg: &evidence.ICMPMessage{Type: 3, Code: 4, MTU: 1280}, Text: "… ICMP type 3 code 4 mtu 1280 … dropped: NETFILTER_DROP"}
	fs := Analyze(withDrops(base, nil, big, icmp, big, icmp), len(Steps)-1)
	f := findingOf(fs, MTUBlackhole)
	if f == nil || f.Severity != Critical || !strings.HasPrefix(f.Title, "Proven by the kernel: 1500-byte packets of the flow were refused here for their size (PKT_TOO_BIG)") {
		t.Fatalf("%v\n%+v", ids(fs), f)
	}
	if !hasLine(f, evidence.ProbeLive, "the kernel dropped an ICMP fragmentation-needed about the flow before it had an interface: NETFILTER_DROP, in nft_do_chain (2 times") {
		t.Errorf("%s", evidenceText(f))
	}
	if k := findingOf(fs, KernelDrop); k != nil {
		t.Errorf("the dropped frag-needed is mtu_blackhole's evidence, not a kernel_drop: %+v", k)
	}
	fs = Analyze(withDrops(base, nil, big), len(Steps)-1)
	if f := findingOf(fs, MTUBlackhole); f == nil || f.Severity != Warning || !strings.Contains(f.Title, "refuses the flow's 1500-byte packets on eth0 for their size") {
		t.Fatalf("PKT_TOO_BIG alone: %+v", f)
	}
}

func TestDropNeighbour(t *testing.T) {
	e := loadRecorded(t, "two-nics-strict-host")
	d := drop("NEIGH_FAILED", "neigh_invalidate", "eth0", "198.51.100.11:8080", "203.0.113.10:40000", evidence.TCPSyn|evidence.TCPAck, true)
	fs := Analyze(withDrops(e, nil, d), len(Steps)-1)
	f := findingOf(fs, NeighbourFailed)
	if f == nil || f.Severity != Critical || f.Title != "The kernel could not resolve 198.51.100.1's MAC on eth0 and dropped the SYN-ACK (NEIGH_FAILED)" {
		t.Fatalf("%v\n%+v", ids(fs), f)
	}
	if !strings.Contains(f.Fix.Advice, "arp_announce=2") || !strings.Contains(f.Fix.Advice, "rp_filter=1") {
		t.Errorf("advice: %s", f.Fix.Advice)
	}
}

// TestDropNoise: reasons of TCP's and the sockets' ordinary life, frames
// flooded for another host and unnamed reasons are never findings; a
// window without the witness is nothing.
func TestDropNoise(t *testing.T) {
	e := loadRecorded(t, "healthy-host")
	want := ids(Analyze(&e, len(Steps)-1))
	noise := []evidence.Drop{
		drop("OTHERHOST", "ip_rcv_core", "eth0", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false),
		drop("TCP_OLD_DATA", "tcp_validate_incoming", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPAck, false),
		drop("NO_SOCKET", "tcp_v4_rcv", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPAck|evidence.TCPFin, false),
		drop("NOT_SPECIFIED", "skb_release_data", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPAck, false),
	}
	if got := ids(Analyze(withDrops(e, nil, noise...), len(Steps)-1)); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("noise made findings: %v, want %v", got, want)
	}
	syn := drop("NO_SOCKET", "tcp_v4_rcv", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	if findingOf(Analyze(withDrops(e, nil, syn), len(Steps)-1), KernelDrop) == nil {
		t.Error("a SYN to no socket is something to act on: nothing listens")
	}
	e.Live = &evidence.LiveEvidence{Report: evidence.Report{Probe: evidence.ProbeLive, Status: evidence.StatusUnavailable}, Drops: []evidence.Drop{syn}}
	if findingOf(Analyze(&e, len(Steps)-1), KernelDrop) != nil {
		t.Error("an unavailable window is no evidence")
	}
}

func TestDropKernelDrop(t *testing.T) {
	e := loadRecorded(t, "healthy-host")
	a := drop("IP_INNOROUTES", "ip_error", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	b := drop("IP_INVALID_SOURCE", "ip_rcv_finish_core", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	fs := Analyze(withDrops(e, nil, a, a, b), len(Steps)-1)
	f := findingOf(fs, KernelDrop)
	if f == nil || f.Severity != Warning || f.Title != "The kernel dropped the flow's packets here: IP_INNOROUTES ×2, IP_INVALID_SOURCE ×1 (ip_error on eth1)" {
		t.Fatalf("%v\n%+v", ids(fs), f)
	}
	if !strings.Contains(f.Fix.Advice, "no route for the packet's destination") || !strings.Contains(f.Fix.Advice, "martian") || len(f.Fix.Prove) != 1 || !strings.HasPrefix(f.Fix.Prove[0], "pwru --output-tuple") {
		t.Errorf("%+v", f.Fix)
	}
}

// TestDropFibRPFilter: a NETFILTER_DROP counted by an nftables fib
// reverse-path rule proves nft_fib_rpfilter_drop, naming the rule.
func TestDropFibRPFilter(t *testing.T) {
	e := loadRecorded(t, "two-nics-fabric-host")
	r := evidence.FirewallRule{Family: "inet", Table: "filter", Chain: "prerouting", Hook: "prerouting", Handle: 4, Kind: evidence.RuleFibRPFilter,
		Verdict: "drop", HasCounter: true, Text: "fib saddr . iif oif missing counter packets 0 bytes 0 drop"}
	e.Firewall.Rules = append(e.Firewall.Rules, r)
	syn := drop("NETFILTER_DROP", "nft_do_chain", "eth1", "203.0.113.10:40000", "198.51.100.11:8080", evidence.TCPSyn, false)
	fs := Analyze(withDrops(e, map[string]int64{r.CounterKey(): 1}, syn), len(Steps)-1)
	f := findingOf(fs, NftFibRPFilterDrop)
	if f == nil || f.Severity != Critical || !hasLine(f, evidence.ProbeLive, "inet filter prerouting #4: fib saddr . iif oif missing counter packets 0 bytes 0 drop   ← its counter +1 over the window") {
		t.Fatalf("%v\n%+v", ids(fs), f)
	}
	if findingOf(fs, KernelDrop) != nil || findingOf(fs, CtInvalidDrop) != nil {
		t.Errorf("the fib rule explains the drop: %v", ids(fs))
	}
}

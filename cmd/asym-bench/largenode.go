package main

// The large node (scale issue 17): a firewall of 100,000 nftables rules in
// the shape kube-proxy and firewalld produce, 20,000 policy rules, 5,000
// interfaces with 500 addresses, a million routes and a million conntrack
// entries. Each of the first three is measured on a host of its own, then
// everything on one host; the alternative timed in the same run is the
// ruleset listing `nft list ruleset` does (a Go child reading every table,
// chain and rule, decoding each expression and printing nothing: faster
// than nft, so it understates the difference), `ip rule show` and `ip -br
// addr show`.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"asym/flow"
	"asym/lab/namespace"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/ti-mo/conntrack"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

const nftListChildArg = "__nftlist" // asym-bench __nftlist NS

// largeNode is what one host of the scenario carries.
type largeNode struct {
	name            string
	nft, rules      int // nftables rules, policy rules
	ifaces, ifAddrs int // interfaces, and how many of them hold an address
	routes, entries int // routes in main, conntrack entries
}

func (n largeNode) String() string {
	var parts []string
	add := func(v int, what string) {
		if v > 0 {
			parts = append(parts, comma(int64(v))+" "+what)
		}
	}
	add(n.nft, "nftables rules (kube-proxy shape)")
	add(n.rules, "policy rules")
	if n.ifaces > 0 {
		parts = append(parts, fmt.Sprintf("%s interfaces (%s with an address)", comma(int64(n.ifaces)), comma(int64(n.ifAddrs))))
	}
	add(n.routes, "routes")
	add(n.entries, "conntrack entries")
	return strings.Join(parts, ", ")
}

func benchLargeNode(ctx context.Context, cfg *config, res *results) error {
	alone := []largeNode{
		{name: "nft", nft: cfg.nftRules},
		{name: "rules", rules: cfg.policyRules},
		{name: "ifaces", ifaces: cfg.ifaces, ifAddrs: cfg.ifAddrs},
	}
	all := largeNode{name: "all", nft: cfg.nftRules, rules: cfg.policyRules, ifaces: cfg.ifaces, ifAddrs: cfg.ifAddrs, routes: cfg.routes, entries: cfg.entries}
	for _, n := range append(alone, all) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := benchNode(ctx, cfg, res, n); err != nil {
			return fmt.Errorf("%s: %w", n.name, err)
		}
		if err := removeLeftovers(); err != nil {
			return err
		}
	}
	return nil
}

// benchNode builds one host, loads it and measures asym on it.
func benchNode(ctx context.Context, cfg *config, res *results, n largeNode) (err error) {
	label := "largenode " + n.name
	progress("%s: building the host (%s)", label, n)
	h, err := newHost()
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.close(); cerr != nil {
			res.note(label, "cleanup failed: %v", cerr)
		}
	}()
	f, err := flow.ParseString(flow4)
	if err != nil {
		return err
	}
	if n.entries > 0 {
		restore, note, err := raiseConntrackMax(n.entries)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, restore()) }()
		res.note(label, "%s", note)
	}
	if err := loadNode(ctx, cfg, res, h, n, f, label); err != nil {
		return err
	}

	asym := &measureSet{name: "asym check --json", cmds: []cmdSpec{{
		argv: append([]string{cfg.asym, "check", "--json", "--netns", h.host.Name}, strings.Fields(flow4)...), okCodes: []int{0, 1}}}}
	out, err := asym.cmds[0].check(ctx, cfg)
	if err != nil {
		return err
	}
	if err := checkReport(res, label, out); err != nil {
		return err
	}
	noteReport(res, label, out)
	sets := []*measureSet{asym}
	var baseline *measureSet
	if cfg.baseline != "" {
		baseline = &measureSet{name: "baseline", cmds: []cmdSpec{{
			argv: append([]string{cfg.baseline, "check", "--json", "--netns", h.host.Name}, strings.Fields(flow4)...), okCodes: []int{0, 1}}}}
		bout, err := baseline.cmds[0].check(ctx, cfg)
		if err != nil {
			return err
		}
		res.note(label, "baseline (%s) writes %s bytes of JSON", cfg.baseline, comma(int64(len(bout))))
		sets = append(sets, baseline)
	}
	alts := alternatives(cfg, h, n)
	sets = append(sets, alts...)
	progress("%s: measuring asym check and the alternatives, %d runs each", label, cfg.runs)
	if err := measureAll(ctx, cfg, cfg.runs, sets...); err != nil {
		return err
	}
	ra := res.add(&row{scenario: label, what: fmt.Sprintf("asym check --json (%s; report %s KB)", n, comma(int64(len(out)/1000))), s: asym.s})
	ra.target = "≤ 100 ms, ≤ 60 MB, report ≤ 200 KB"
	ra.met = verdicts(
		"time", verdictBelow(float64(quantile(asym.s.wall, 0.5))/1e6, 100.001, "ms"),
		"RSS", verdictBelow(float64(quantile(asym.s.rss, 0.5))/1e6, 60.001, "MB"),
		"report", verdictBelow(float64(len(out))/1000, 200.001, "KB"))
	if baseline != nil {
		res.add(&row{scenario: label, what: "the same check by " + filepath.Base(cfg.baseline) + " (before the path walk)", s: baseline.s, vs: ra})
	}
	for _, m := range alts {
		r := res.add(&row{scenario: label, what: m.name, s: m.s, vs: ra})
		if strings.HasPrefix(m.name, "nft list ruleset") {
			ratio := float64(quantile(m.s.wall, 0.5)) / float64(quantile(asym.s.wall, 0.5))
			r.target, r.met = "asym ≥ 10× faster", "yes"
			if ratio < 10 {
				r.met = fmt.Sprintf("NO: %.1f×", ratio)
			}
		}
	}
	return nil
}

// alternatives are what a person would run instead, for what the host
// carries.
func alternatives(cfg *config, h *benchHost, n largeNode) []*measureSet {
	var out []*measureSet
	self, _ := os.Executable()
	if n.nft > 0 {
		out = append(out, &measureSet{name: "nft list ruleset (≈: every chain and rule read and decoded in Go, nothing printed)",
			cmds: []cmdSpec{{argv: []string{self, nftListChildArg, h.host.Name}}}})
	}
	if n.rules > 0 {
		out = append(out, &measureSet{name: "ip rule show", cmds: []cmdSpec{{argv: []string{"ip", "-n", h.host.Name, "rule", "show"}}}})
	}
	if n.ifaces > 0 {
		out = append(out, &measureSet{name: "ip -br addr show", cmds: []cmdSpec{{argv: []string{"ip", "-n", h.host.Name, "-br", "addr", "show"}}}})
	}
	return out
}

// noteReport says what the report holds: what the firewall fetched, how
// many rules and interfaces it reports and how many others it counts.
func noteReport(res *results, label string, out []byte) {
	var rep struct {
		Steps []struct {
			Probes []struct {
				Probe       string          `json:"probe"`
				Read        json.RawMessage `json:"read"`
				Rules       []any           `json:"rules"`
				Others      int             `json:"others"`
				Ifaces      []any           `json:"interfaces"`
				OtherIfaces int             `json:"other_interfaces"`
			} `json:"probes"`
		} `json:"steps"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		res.note(label, "could not read the report: %v", err)
		return
	}
	for _, s := range rep.Steps {
		for _, p := range s.Probes {
			switch p.Probe {
			case "firewall":
				var read bytes.Buffer
				json.Compact(&read, p.Read)
				res.note(label, "firewall read %s", read.String())
			case "rules":
				res.note(label, "policy rules reported %d, others counted %s", len(p.Rules), comma(int64(p.Others)))
			case "host":
				res.note(label, "interfaces reported %d, others counted %s", len(p.Ifaces), comma(int64(p.OtherIfaces)))
			}
		}
	}
	res.note(label, "asym check --json writes %s bytes", comma(int64(len(out))))
}

// loadNode loads what n carries into the host.
func loadNode(ctx context.Context, cfg *config, res *results, h *benchHost, n largeNode, f flow.Flow, label string) error {
	type step struct {
		on   bool
		what string
		load func() error
	}
	steps := []step{
		{n.nft > 0, comma(int64(n.nft)) + " nftables rules", func() error { return loadKubeRules(h.host, n.nft, f.Dst) }},
		{n.rules > 0, comma(int64(n.rules)) + " policy rules", func() error {
			path := filepath.Join(cfg.tmp, "largenode-rules.batch")
			if err := writeManyRules(path, n.rules); err != nil {
				return err
			}
			_, err := ipBatch(ctx, h, false, path)
			return err
		}},
		{n.ifaces > 0, comma(int64(n.ifaces)) + " interfaces", func() error {
			path := filepath.Join(cfg.tmp, "largenode-ifaces.batch")
			if err := writeIfaces(path, n.ifaces, n.ifAddrs); err != nil {
				return err
			}
			_, err := ipBatch(ctx, h, false, path)
			return err
		}},
		{n.routes > 0, comma(int64(n.routes)) + " routes", func() error {
			path := filepath.Join(cfg.tmp, "largenode-routes.batch")
			if err := writeBulk(path, n.routes, false); err != nil {
				return err
			}
			defer os.Remove(path)
			_, err := ipBatch(ctx, h, false, path)
			return err
		}},
		{n.entries > 0, comma(int64(n.entries)) + " conntrack entries", func() error {
			cc, err := conntrack.Dial(&mdnetlink.Config{NetNS: int(h.host.Handle)})
			if err != nil {
				return fmt.Errorf("open a conntrack socket: %w", err)
			}
			defer cc.Close()
			if err := cc.Create(conntrack.NewFlow(uint8(f.Proto), 0, f.Src.Addr(), f.Dst.Addr(), f.Src.Port(), f.Dst.Port(), 3600, 0)); err != nil {
				return fmt.Errorf("create the flow's conntrack entry: %w", err)
			}
			return fillConntrack(ctx, h.host.Handle, n.entries)
		}},
	}
	for _, s := range steps {
		if !s.on {
			continue
		}
		progress("%s: loading %s", label, s.what)
		start := time.Now()
		if err := s.load(); err != nil {
			return fmt.Errorf("load %s: %w", s.what, err)
		}
		res.note(label, "loaded %s in %s", s.what, time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

// loadKubeRules writes n rules in the shape kube-proxy (and firewalld's
// zones) give a ruleset: `table inet kube` whose input and forward base
// chains jump to a chain that drops ct state invalid and jumps, for each
// service, on its address and port to a chain of its own of 49 rules (a
// base chain cannot be jumped to).
// The first service is the flow's destination: its chain is on the flow's
// way, the others are not.
func loadKubeRules(ns namespace.NS, n int, dst netip.AddrPort) error {
	c, err := namespace.Nft(ns)
	if err != nil {
		return err
	}
	const perService = 50
	services := max(n/perService, 1)
	tb := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: "kube"})
	base := c.AddChain(&nftables.Chain{Name: "services", Table: tb})
	for _, hook := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"forward", nftables.ChainHookForward}} {
		ch := namespace.BaseChain(c, tb, hook.name, hook.hook, 0)
		c.AddRule(&nftables.Rule{Table: tb, Chain: ch, Exprs: []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: base.Name}}})
	}
	c.AddRule(&nftables.Rule{Table: tb, Chain: base, Exprs: namespace.CtInvalidDrop()})
	pending := 0
	flush := func(force bool) error {
		pending++
		// A batch must fit the socket, and its acknowledgements the
		// receive buffer.
		if pending < 100 && !force {
			return nil
		}
		pending = 0
		if err := c.Flush(); err != nil {
			return fmt.Errorf("load the kube-proxy-shaped ruleset into %s: %w", ns.Name, err)
		}
		return nil
	}
	for i := range services {
		svc := c.AddChain(&nftables.Chain{Name: fmt.Sprintf("svc-%d", i), Table: tb})
		for j := range perService - 1 {
			last := j == perService-2
			c.AddRule(&nftables.Rule{Table: tb, Chain: svc, Exprs: serviceRule(i, j, last)})
			if err := flush(false); err != nil {
				return err
			}
		}
		vip := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 19, byte(100 + i/250), byte(1 + i%250)}), 80)
		if i == 0 {
			vip = dst
		}
		c.AddRule(&nftables.Rule{Table: tb, Chain: base, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: vip.Addr().AsSlice()},
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binary.BigEndian.AppendUint16(nil, vip.Port())},
			&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: svc.Name},
		}})
		if err := flush(false); err != nil {
			return err
		}
	}
	return flush(true)
}

// serviceRule is rule j of service i's chain: an allowed source of the
// benchmarking range, or, last, an accept.
func serviceRule(i, j int, last bool) []expr.Any {
	if last {
		return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept}}
	}
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{198, 18, byte(i % 256), byte(j)}},
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// writeManyRules writes n policy rules over 50 tables of 5 routes, the
// selectors of writePolicy's: none matches the flow; rule 1000 sends
// eth0's own address to table 1001.
func writeManyRules(path string, n int) error {
	var b strings.Builder
	for i := range n {
		table, prio := 1001+i%50, 1000+i
		var sel string
		switch {
		case i == 0:
			sel = "from " + eth0v4
		case i%4 == 0:
			sel = fmt.Sprintf("from 198.18.%d.%d", (i/256)%256, i%256)
		case i%4 == 1:
			sel = fmt.Sprintf("to 198.19.%d.%d", (i/256)%256, i%256)
		case i%4 == 2:
			sel = fmt.Sprintf("fwmark 0x%x", 0x100+i)
		default:
			sel = fmt.Sprintf("ipproto udp dport %d", 5000+i%60000)
		}
		fmt.Fprintf(&b, "rule add %s lookup %d priority %d\n", sel, table, prio)
	}
	for tb := range 50 {
		for j := range 5 {
			fmt.Fprintf(&b, "route add 198.19.%d.%d/28 via %s dev eth0 table %d\n", tb, j*16, gw4, 1001+tb)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// writeIfaces writes n interfaces (veth pairs, both ends in the host) and
// an address in a /28 of 198.18.128.0/17 on the first addrs of them.
func writeIfaces(path string, n, addrs int) error {
	var b strings.Builder
	for i := range n / 2 {
		fmt.Fprintf(&b, "link add v%d type veth peer name w%d\n", i, i)
	}
	for i := range min(addrs, n) {
		a := uint32(198)<<24 | uint32(18)<<16 | uint32(128)<<8 + uint32(i)*16 + 1
		name := fmt.Sprintf("v%d", i/2)
		if i%2 == 1 {
			name = fmt.Sprintf("w%d", i/2)
		}
		fmt.Fprintf(&b, "addr add %d.%d.%d.%d/28 dev %s\n", a>>24, byte(a>>16), byte(a>>8), byte(a), name)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// nftListChild reads the whole ruleset of a namespace as `nft list
// ruleset` does (every table, chain and rule, every expression decoded)
// and prints only what it counted.
func nftListChild(args []string) int {
	if len(args) != 1 || !strings.HasPrefix(args[0], nsPrefix) {
		fmt.Fprintln(os.Stderr, "usage: asym-bench __nftlist asym-bench-NS")
		return 2
	}
	h, err := netns.GetFromName(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "open namespace %s: %v\n", args[0], err)
		return 1
	}
	defer h.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(h)), nftables.AsLasting())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.CloseLasting()
	tables, err := c.ListTables()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	chains, err := c.ListChains()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	rules := 0
	for _, ch := range chains {
		rs, err := c.GetRules(ch.Table, ch)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		rules += len(rs)
	}
	fmt.Printf("tables=%d chains=%d rules=%d\n", len(tables), len(chains), rules)
	return 0
}

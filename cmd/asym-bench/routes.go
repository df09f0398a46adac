package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"asym/flow"
	"asym/playbook"
	"asym/probes"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The bulk IPv4 routes must come from 198.18.0.0/15 (documentation and
// benchmarking ranges only), which holds 262,142 distinct prefixes of
// lengths /16 to /32. A million routes are therefore every one of those
// prefixes, longest first, at metric 100, then again at 200, 300 and 400:
// the kernel keeps routes that differ only in metric as separate entries
// (fib_alias), a dump sends each one, and iproute2 prints each one. A
// border router's table has more distinct prefixes and fewer duplicates;
// for a lookup that changes nothing (the trie is walked by prefix bits, at
// most 32 levels), for a dump nothing either (one message per entry).
const (
	perMetric4 = 1<<18 - 2 // prefixes /16…/32 inside a /15
	maxRoutes4 = 4 * perMetric4
	maxRoutes6 = 1 << 23 // /56s inside 2001:db8:8000::/33
)

// route4 is the i-th bulk IPv4 route and its metric.
func route4(i int) (netip.Prefix, int) {
	level, j := i/perMetric4, i%perMetric4
	for bits := 32; bits >= 16; bits-- {
		n := 1 << (bits - 15)
		if j < n {
			base := uint32(198)<<24 | uint32(18)<<16
			a := base + uint32(j)<<(32-bits)
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(a >> 24), byte(a >> 16), byte(a >> 8), byte(a)}), bits), 100 * (level + 1)
		}
		j -= n
	}
	panic("route4: index out of range")
}

// route6 is the i-th bulk IPv6 route: a /56 in 2001:db8:8000::/33.
func route6(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0x80 | byte(i>>16), byte(i >> 8), byte(i)}), 56)
}

// writeBulk writes the ip -batch file of n bulk routes via the gateway.
func writeBulk(path string, n int, v6 bool) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(fh, 1<<20)
	for i := range n {
		if v6 {
			fmt.Fprintf(w, "route add %s via %s dev eth0 proto 186\n", route6(i), gw6)
		} else {
			p, metric := route4(i)
			fmt.Fprintf(w, "route add %s via %s dev eth0 metric %d proto 186\n", p, gw4, metric)
		}
	}
	if err := w.Flush(); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

// writePolicy writes 200 rules over 50 tables of 5 routes. No rule matches
// the flow; rule 1000 sends eth0's own address to table 1001 (source
// routing done for eth0 only), so one small table is in play and read.
func writePolicy(path string, v6 bool) error {
	var b strings.Builder
	for i := range 200 {
		table, prio := 1001+i%50, 1000+i
		var sel string
		switch {
		case i == 0 && v6:
			sel = "from " + eth0v6
		case i == 0:
			sel = "from " + eth0v4
		case i%4 == 0 && v6:
			sel = fmt.Sprintf("from 2001:db8:f000:%x::/64", i)
		case i%4 == 0:
			sel = fmt.Sprintf("from 198.18.%d.0/24", i)
		case i%4 == 1 && v6:
			sel = fmt.Sprintf("to 2001:db8:f100:%x::/64", i)
		case i%4 == 1:
			sel = fmt.Sprintf("to 198.19.%d.0/24", i)
		case i%4 == 2:
			sel = fmt.Sprintf("fwmark 0x%x", 0x100+i)
		default:
			sel = fmt.Sprintf("ipproto udp dport %d", 5000+i)
		}
		fmt.Fprintf(&b, "rule add %s lookup %d priority %d\n", sel, table, prio)
	}
	for tb := range 50 {
		for j := range 5 {
			if v6 {
				fmt.Fprintf(&b, "route add 2001:db8:fa%02x:%x::/64 via %s dev eth0 table %d\n", tb, j, gw6, 1001+tb)
			} else {
				fmt.Fprintf(&b, "route add 198.19.%d.%d/28 via %s dev eth0 table %d\n", tb, j*16, gw4, 1001+tb)
			}
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// ipBatch loads a batch file with iproute2 (the file is this program's own,
// never user input) and returns how long it took.
func ipBatch(ctx context.Context, h *benchHost, v6 bool, path string) (time.Duration, error) {
	fam := "-4"
	if v6 {
		fam = "-6"
	}
	cmd := exec.CommandContext(ctx, "ip", fam, "-n", h.host.Name, "-batch", path)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("ip -batch %s: %v: %s", filepath.Base(path), err, strings.TrimSpace(string(out)))
	}
	return time.Since(start), nil
}

// countMain counts the routes in main of one family, to prove the load.
func countMain(h *benchHost, v6 bool) (int, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	n := 0
	err := h.nl.RouteListFilteredIter(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE, func(netlink.Route) bool {
		n++
		return true
	})
	return n, err
}

func benchRoutes(ctx context.Context, cfg *config, res *results, v6 bool) error {
	name, n, fl, src, dst := "routes", cfg.routes, flow4, "203.0.113.10", "198.51.100.11"
	label := fmt.Sprintf("%s IPv4 routes in main, 200 rules, 50 tables", comma(int64(n)))
	if v6 {
		name, n, fl, src, dst = "v6", cfg.routes6, flow6, "2001:db8:203::10", "2001:db8:100::11"
		label = fmt.Sprintf("%s IPv6 routes in main, 200 rules, 50 tables", comma(int64(n)))
	}
	progress("%s: building the host (%s)", name, label)
	h, err := newHost()
	if err != nil {
		return err
	}
	defer func() {
		progress("%s: removing %s and %s", name, h.host.Name, h.fabric.Name)
		if err := h.close(); err != nil {
			res.note(name, "cleanup failed: %v", err)
		}
	}()
	policy := filepath.Join(cfg.tmp, name+"-policy.batch")
	if err := writePolicy(policy, v6); err != nil {
		return err
	}
	if _, err := ipBatch(ctx, h, v6, policy); err != nil {
		return err
	}

	f, err := flow.ParseString(fl)
	if err != nil {
		return err
	}
	ipf := func(words ...string) cmdSpec {
		argv := []string{"ip"}
		if v6 {
			argv = append(argv, "-6")
		}
		return cmdSpec{argv: append(append(argv, "-n", h.host.Name), words...)}
	}
	sport, dport := strconv.Itoa(int(f.Src.Port())), strconv.Itoa(int(f.Dst.Port()))
	asym := &measureSet{name: "asym check --json", cmds: []cmdSpec{{
		argv:    append([]string{cfg.asym, "check", "--json", "--netns", h.host.Name}, strings.Fields(fl)...),
		okCodes: []int{0, 1}, // 1: findings, as expected on this host
	}}}
	// The request's input lookup is refused under strict rp_filter: ip
	// says so and exits 2, which is the answer a person reads.
	reqGet := ipf("route", "get", dst, "from", src, "iif", "eth1", "ipproto", "tcp", "sport", sport, "dport", dport)
	reqGet.okCodes = []int{0, 2}
	playbookSet := &measureSet{name: "ip route get ×2 + ip rule + ip route show table all", cmds: []cmdSpec{
		reqGet,
		ipf("route", "get", src, "from", dst, "ipproto", "tcp", "sport", dport, "dport", sport),
		ipf("rule", "show"),
		ipf("route", "show", "table", "all"),
	}}
	match := &measureSet{name: "ip route show match " + src, cmds: []cmdSpec{ipf("route", "show", "match", src)}}

	// The same host before the bulk load: what asym costs without it.
	progress("%s: asym check before the bulk load, %d runs", name, cfg.runs)
	base := &measureSet{name: asym.name, cmds: asym.cmds}
	if err := measureAll(ctx, cfg, cfg.runs, base); err != nil {
		return err
	}
	res.add(&row{scenario: name, what: "asym check, same host before the bulk load", s: base.s})

	progress("%s: writing and loading %s routes with ip -batch", name, comma(int64(n)))
	bulk := filepath.Join(cfg.tmp, name+"-bulk.batch")
	if err := writeBulk(bulk, n, v6); err != nil {
		return fmt.Errorf("write the route batch: %w", err)
	}
	took, err := ipBatch(ctx, h, v6, bulk)
	os.Remove(bulk)
	if err != nil {
		return err
	}
	got, err := countMain(h, v6)
	if err != nil {
		return fmt.Errorf("count the routes in main: %w", err)
	}
	shape := fmt.Sprintf("/56s of 2001:db8:8000::/33 via %s", gw6)
	if !v6 {
		shape = fmt.Sprintf("every prefix /16–/32 of 198.18.0.0/15 (%s distinct) at metric 100, then 200, 300, 400, via %s, proto bgp", comma(perMetric4), gw4)
	}
	res.note(name, "loaded %s routes (%s) into main with `ip -n NS -batch FILE` in %s (%.1f µs per route); main then holds %s routes",
		comma(int64(n)), shape, took.Round(10*time.Millisecond), took.Seconds()*1e6/float64(n), comma(int64(got)))
	if got < n {
		return fmt.Errorf("main holds %d routes after loading %d", got, n)
	}

	// One check in this process, to count what the kernel sends asym and
	// to see each probe's time.
	if err := inProcessCheck(ctx, res, name, h, f); err != nil {
		return err
	}
	// The real binary's report: every probe must have run.
	out, err := asym.cmds[0].check(ctx, cfg)
	if err != nil {
		return err
	}
	if err := checkReport(res, name, out); err != nil {
		return err
	}

	progress("%s: measuring asym check and the iproute2 equivalents, %d runs each", name, cfg.runs)
	if err := measureAll(ctx, cfg, cfg.runs, asym, playbookSet, match); err != nil {
		return err
	}
	ra := res.add(&row{scenario: name, what: "asym check --json (" + label + ")", s: asym.s})
	res.add(&row{scenario: name, what: playbookSet.name, s: playbookSet.s, vs: ra})
	rm := res.add(&row{scenario: name, what: match.name, s: match.s, vs: ra})
	ra.target = "< 100 ms, < 60 MB"
	ra.met = verdicts(
		"time", verdictBelow(float64(quantile(asym.s.wall, 0.5))/1e6, 100, "ms"),
		"RSS", verdictBelow(float64(quantile(asym.s.rss, 0.5))/1e6, 60, "MB"))
	ratio := float64(quantile(match.s.wall, 0.5)) / float64(quantile(asym.s.wall, 0.5))
	rm.target = "asym ≥ 5× faster"
	rm.met = "yes"
	if ratio < 5 {
		rm.met = fmt.Sprintf("NO: %.1f×", ratio)
	}
	return nil
}

// inProcessCheck runs every probe of every step in this process, as asym
// check does, and notes what the kernel sent back and what took time.
func inProcessCheck(ctx context.Context, res *results, name string, h *benchHost, f flow.Flow) error {
	t, err := probes.OpenTarget(h.host.Name, 0)
	if err != nil {
		return err
	}
	defer t.Close()
	c := probes.NewCollector(t, f, "")
	start := time.Now()
	var slow []string
	for _, s := range playbook.Steps {
		for _, id := range s.Probes {
			r := c.Run(ctx, id).Rep()
			if !r.OK() {
				return fmt.Errorf("probe %s: %s: %s", id, r.Status, r.Reason)
			}
			slow = append(slow, fmt.Sprintf("%s %s", id, fmtDur(r.Elapsed)))
		}
	}
	ev := c.Evidence()
	findings := playbook.Analyze(&ev, len(playbook.Steps)-1)
	took := time.Since(start)
	routes, rules, cts := t.Received()
	var ids []string
	for _, fd := range findings {
		ids = append(ids, string(fd.ID))
	}
	dump := "no dump of main or of the conntrack table"
	if routes >= 300 || cts >= 10 {
		dump = "A DUMP: more than a check needs"
	}
	res.note(name, "one check in process: %s; the kernel sent %d route messages, %d rules, %d conntrack entries (%s; counted by Target.Received); findings %s; per probe: %s",
		fmtDur(took), routes, rules, cts, dump, strings.Join(ids, ", "), strings.Join(slow, ", "))
	return nil
}

// checkReport reads asym check --json and insists that every probe ran:
// a probe that timed out or failed would make the check fast and useless.
func checkReport(res *results, name string, out []byte) error {
	var rep struct {
		Steps []struct {
			ID     string `json:"id"`
			Probes []struct {
				Probe   string `json:"probe"`
				Status  string `json:"status"`
				Reason  string `json:"reason"`
				Elapsed int64  `json:"elapsed_ns"`
			} `json:"probes"`
		} `json:"steps"`
		Findings []struct {
			ID string `json:"id"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("read asym check --json: %w", err)
	}
	var ids []string
	for _, s := range rep.Steps {
		for _, p := range s.Probes {
			if p.Status != "ok" {
				return fmt.Errorf("asym check: probe %s %s: %s", p.Probe, p.Status, p.Reason)
			}
		}
	}
	for _, f := range rep.Findings {
		ids = append(ids, f.ID)
	}
	res.note(name, "asym check --json: every probe ok; findings %s", strings.Join(ids, ", "))
	return nil
}

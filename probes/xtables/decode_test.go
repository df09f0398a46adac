package xtables

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"asym/evidence"
	labxt "asym/lab/xtables"
)

// saveText renders a table as iptables-legacy-save -c -t NAME does, for
// comparing with the tool's own output.
func saveText(t Table) []string {
	out := []string{"*" + t.Name}
	for _, c := range t.Chains {
		policy := c.Policy
		if policy == "" {
			policy = "-"
		}
		out = append(out, fmt.Sprintf(":%s %s [%d:%d]", c.Name, policy, c.PolicyPackets, c.PolicyBytes))
	}
	for _, c := range t.Chains {
		for _, r := range c.Rules {
			out = append(out, r.Text)
		}
	}
	return append(out, "COMMIT")
}

// knownDifferences are the lines of Debian's iptables-legacy-save 1.8.9
// that the reader prints otherwise, on purpose: it does not decode LOG's
// options, and it shows an inverted full port range, which matches no
// packet, where 1.8.9 printed nothing (iptables 1.8.11 prints it too).
var knownDifferences = map[string]string{
	`[26:1041] -A LOGDROP -m conntrack --ctstate INVALID -j LOG --log-prefix "invalid: "`: `[26:1041] -A LOGDROP -m conntrack --ctstate INVALID -j LOG …`,
	`[9:361] -A PREROUTING -p udp -m udp`:                                                 `[9:361] -A PREROUTING -p udp -m udp ! --sport 0:65535`,
}

// TestDecodeRecorded decodes tables the kernel handed out after Debian's
// iptables-legacy-restore 1.8.9 installed them (GET_INFO and GET_ENTRIES
// bytes in testdata/iptables-1.8.9/*.bin) and compares the text with what
// iptables-legacy-save -c printed for the same tables (*.save).
func TestDecodeRecorded(t *testing.T) {
	bins, _ := filepath.Glob("testdata/iptables-1.8.9/*.bin")
	if len(bins) != 5 {
		t.Fatalf("found %d recorded tables, want 5: %v", len(bins), bins)
	}
	for _, bin := range bins {
		t.Run(filepath.Base(bin), func(t *testing.T) {
			fam := familyIPv4
			if strings.HasPrefix(filepath.Base(bin), "ip6-") {
				fam = familyIPv6
			}
			tbl := decodeRecorded(t, fam, bin)
			want := readSave(t, strings.TrimSuffix(bin, ".bin")+".save")
			if got := saveText(tbl); !slices.Equal(got, want) {
				t.Errorf("decoded\n%s\niptables-legacy-save printed\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

func decodeRecorded(t *testing.T, fam family, path string) Table {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ti, err := decodeInfo(b[:getInfoSize])
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := decodeTable(fam, ti, b[getInfoSize:])
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

// readSave reads iptables-save output, with the known differences applied.
func readSave(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if d, ok := knownDifferences[line]; ok {
			line = d
		}
		out = append(out, line)
	}
	return out
}

// TestRecordedKinds checks what asym makes of the recorded rules: which
// are conntrack INVALID or reverse-path rules, their verdicts, hooks and
// priorities, and the chain headers.
func TestRecordedKinds(t *testing.T) {
	var rs Ruleset
	for _, name := range []string{"ip-filter", "ip-mangle", "ip-raw", "ip6-filter", "ip6-raw"} {
		fam := familyIPv4
		if strings.HasPrefix(name, "ip6-") {
			fam = familyIPv6
		}
		rs.Tables = append(rs.Tables, decodeRecorded(t, fam, "testdata/iptables-1.8.9/"+name+".bin"))
	}
	type row struct {
		where, hook string
		prio        int
		handle      uint64
		kind, verd  string
		pkts, bytes uint64
	}
	var got []row
	for _, r := range rs.FirewallRules() {
		if r.Source != "iptables-legacy" || !r.HasCounter || !strings.Contains(r.Text, " -A "+r.Chain+" ") {
			t.Errorf("rule %+v", r)
		}
		got = append(got, row{r.Where(), r.Hook, r.Priority, r.Handle, string(r.Kind), r.Verdict, r.Packets, r.Bytes})
	}
	want := []row{
		{"ip filter INPUT", "input", 0, 2, "ct_invalid", "drop", 10, 401},
		{"ip filter FORWARD", "forward", 0, 2, "ct_invalid", "jump LOGDROP", 16, 641},
		{"ip filter FORWARD", "forward", 0, 4, "ct_invalid", "drop", 18, 721},
		{"ip filter OUTPUT", "output", 0, 1, "ct_invalid", "reject", 23, 921},
		{"ip filter LOGDROP", "", 0, 1, "ct_invalid", "", 26, 1041},
		{"ip mangle FORWARD", "forward", -150, 1, "ct_invalid", "drop", 11, 441},
		{"ip raw PREROUTING", "prerouting", -300, 1, "fib_rpfilter", "drop", 3, 121},
		{"ip raw PREROUTING", "prerouting", -300, 2, "fib_rpfilter", "drop", 4, 161},
		{"ip6 filter INPUT", "input", 0, 1, "ct_invalid", "drop", 4, 161},
		{"ip6 filter u6", "", 0, 1, "ct_invalid", "drop", 9, 361},
		{"ip6 raw PREROUTING", "prerouting", -300, 1, "fib_rpfilter", "drop", 12, 481},
	}
	if !slices.Equal(got, want) {
		t.Errorf("rules\n%v\nwant\n%v", got, want)
	}
	h := rs.Headers()
	for key, line := range map[string]string{
		"iptables-legacy ip filter INPUT":       "iptables-legacy table filter  chain INPUT (policy DROP)",
		"iptables-legacy ip filter LOGDROP":     "iptables-legacy table filter  chain LOGDROP",
		"iptables-legacy ip6 raw PREROUTING":    "ip6tables-legacy table raw  chain PREROUTING (policy ACCEPT)",
		"iptables-legacy ip mangle POSTROUTING": "iptables-legacy table mangle  chain POSTROUTING (policy ACCEPT)",
	} {
		if h[key] != line {
			t.Errorf("header %q = %q, want %q", key, h[key], line)
		}
	}
	if got := rs.Names(); !slices.Equal(got, []string{"ip filter", "ip mangle", "ip raw", "ip6 filter", "ip6 raw"}) {
		t.Errorf("names %q", got)
	}
	if p := rs.Problems(); len(p) != 0 {
		t.Errorf("problems %q", p)
	}
}

// blobInfo is what GET_INFO would say about a table the writer laid out.
func blobInfo(b labxt.Blob) tableInfo {
	return tableInfo{name: b.Name, validHooks: b.ValidHooks, hookEntry: b.HookEntry, underflow: b.Underflow,
		numEntries: b.NumEntries, size: uint32(len(b.Entries))}
}

// TestDecodeWriterTables decodes the tables the kernel tests install, as
// the writer lays them out, without a kernel.
func TestDecodeWriterTables(t *testing.T) {
	for _, lt := range []labxt.Table{routerFilter(), routerRaw()} {
		b, err := lt.Encode()
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := decodeTable(familyIPv4, blobInfo(b), b.Entries)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range tbl.Chains {
			var texts []string
			for _, r := range c.Rules {
				texts = append(texts, r.Text)
			}
			want, ok := routerTexts[tbl.Name+" "+c.Name]
			if !ok || !slices.Equal(texts, want) {
				t.Errorf("%s %s: %q, want %q", tbl.Name, c.Name, texts, want)
			}
		}
	}
	b, err := loopback6Filter().Encode()
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := decodeTable(familyIPv6, blobInfo(b), b.Entries)
	if err != nil {
		t.Fatal(err)
	}
	out := tbl.Chains[2]
	want := []string{
		"[0:0] -A OUTPUT -d ::1/128 -o lo -p tcp -m conntrack --ctstate INVALID -j REJECT --reject-with icmp6-adm-prohibited",
		"[0:0] -A OUTPUT -d 2001:db8::/32 -m state --state INVALID,NEW -j DROP",
	}
	if out.Name != "OUTPUT" || len(out.Rules) != 2 || out.Rules[0].Text != want[0] || out.Rules[1].Text != want[1] {
		t.Errorf("ip6 OUTPUT %+v, want %q", out, want)
	}
	if out.Rules[0].Kind != evidence.RuleCtInvalid || out.Rules[0].Verdict != "reject" {
		t.Errorf("ip6 rule 1: kind %q verdict %q", out.Rules[0].Kind, out.Rules[0].Verdict)
	}
}

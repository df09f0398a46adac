package firewall

// iptables-legacy: x_tables rules are invisible to nf_tables. The only
// side-effect-free ways to see them are the table list in /proc and
// iptables-legacy-save, which dumps only tables that exist, whereas
// iptables-legacy -L/-S creates the filter table when it is missing.

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"asym/evidence"
)

// legacyTableLists are the /proc files that list a namespace's x_tables
// tables, by family.
var legacyTableLists = []struct{ family, path string }{
	{"ip", "thread-self/net/ip_tables_names"},
	{"ip6", "thread-self/net/ip6_tables_names"},
}

// probeLegacy adds the iptables-legacy tables and their rules that matter
// to v. Only running out of time is an error; what cannot be read is a
// line of v.
func probeLegacy(ctx context.Context, v *evidence.FirewallView, ns Namespace) error {
	procs, err := ns.ReadProc(ctx, legacyTableLists[0].path, legacyTableLists[1].path)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.Add("could not read the iptables-legacy table list (/proc/net/ip_tables_names): %v", err)
		return nil
	}
	for _, fam := range legacyTableLists {
		names := strings.Fields(procs[fam.path])
		if len(names) == 0 {
			continue
		}
		if err := probeLegacyFamily(ctx, v, ns, fam.family, names); err != nil {
			return err
		}
	}
	return nil
}

// probeLegacyFamily reads the tables of one family with
// iptables-legacy-save (ip6tables-legacy-save for ip6).
func probeLegacyFamily(ctx context.Context, v *evidence.FirewallView, ns Namespace, family string, names []string) error {
	slices.Sort(names)
	for _, n := range names {
		v.LegacyTables = append(v.LegacyTables, family+" "+n)
	}
	tool := legacyTool(family)
	save := tool + "-save"
	path, err := exec.LookPath(save)
	if err != nil {
		v.Add("%s tables exist (%s) but cannot be read without %s, which is not installed; asym does not run %s -L because that creates tables",
			tool, strings.Join(names, ", "), save, tool)
		return nil
	}
	out, err := runInNS(ctx, ns, path, "-c")
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		v.Add("%s tables exist (%s) but %s failed: %v", tool, strings.Join(names, ", "), save, err)
		return nil
	}
	rules, headers := parseLegacySave(family, out)
	v.Add("# %s", ns.Cmd(save, "-c"))
	v.Rules = append(v.Rules, rules...)
	v.Lines = append(v.Lines, renderLines(rules, headers)...)
	if len(rules) == 0 {
		v.Add("no ct state invalid or rpfilter rules in %s tables %s", tool, strings.Join(names, ", "))
	}
	return nil
}

// legacyTool is the command family of an x_tables family.
func legacyTool(family string) string {
	if family == "ip6" {
		return "ip6tables-legacy"
	}
	return "iptables-legacy"
}

// runInNS runs a program inside the namespace and returns its output. A
// child inherits the namespace of the thread that forks it, so it is
// started from the thread InNS moved into the namespace; the argument list
// goes straight to execve, no shell.
func runInNS(ctx context.Context, ns Namespace, path string, args ...string) (string, error) {
	var out string
	err := ns.InNS(ctx, func() error {
		cmd := exec.CommandContext(ctx, path, args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			if msg := strings.TrimSpace(stderr.String()); msg != "" {
				return fmt.Errorf("%w: %s", err, msg)
			}
			return err
		}
		out = stdout.String()
		return nil
	})
	if err != nil {
		// On a timeout the forked thread may still be writing out.
		return "", err
	}
	return out, nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"asym/evidence"
	"asym/fix"
	"asym/fix/apply"
	"asym/flow"
	"asym/playbook"
	"asym/probes"
	"asym/session"
)

// cmdFix is `asym fix`: show the plan (dry run), apply it with an armed
// revert, and keep, undo or inspect a pending fix.
func cmdFix(args []string, stdout io.Writer) (int, error) {
	fs := newFlagSet("fix")
	var tf targetFlags
	tf.register(fs)
	doApply := fs.Bool("apply", false, "apply the plan and arm the automatic revert")
	revertAfter := fs.Duration("revert-after", 60*time.Second, "revert unless confirmed within this time")
	doConfirm := fs.Bool("confirm", false, "keep the pending fix")
	doRollback := fs.Bool("rollback", false, "undo the pending fix now")
	doStatus := fs.Bool("status", false, "show the pending (or last) fix")
	only := fs.String("only", "", "only the fix of finding `ID`")
	noWait := fs.Bool("no-wait", false, "with --apply on a terminal: do not ask to keep, leave it to --confirm")
	watchdog := fs.String("watchdog", "", "internal: run the revert watchdog for `JOURNAL`")
	doPersist := fs.Bool("persist", false, "write the plan into the network manager's configuration (with backups); applies nothing")
	root := fs.String("root", "/", "with --persist: the root directory of the configuration files")
	var gateways gatewayFlag
	fs.Var(&gateways, "gateway", "the gateway of an interface asym could not find, `IFACE=ADDR` (repeatable)")
	watch := fs.Duration("watch", 0, "observe the flow this long before planning (retry it meanwhile): its frames name a gateway no route does")
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return 2, flagError(fs, err)
	}
	if *watchdog != "" {
		return 0, apply.Watchdog(*watchdog)
	}
	actions := 0
	for _, b := range []bool{*doApply, *doConfirm, *doRollback, *doStatus, *doPersist} {
		if b {
			actions++
		}
	}
	if actions > 1 {
		return 2, errUsage{"give one of --apply, --confirm, --rollback, --status and --persist"}
	}
	if *watch < 0 || *watch > time.Hour {
		return 2, errUsage{"--watch takes a duration up to 1h, e.g. 10s"}
	}
	if *revertAfter < 5*time.Second || *revertAfter > 24*time.Hour {
		return 2, errUsage{"--revert-after must be between 5s and 24h: long enough to check, short enough to save you"}
	}
	cfg, err := tf.config()
	if err != nil {
		return 2, err
	}
	cfg.RevertAfter, cfg.PersistRoot = *revertAfter, *root
	sess, err := session.Open(cfg)
	if err != nil {
		return 2, err
	}
	defer sess.Close()
	t := sess.Target()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	switch {
	case *doConfirm, *doRollback, *doStatus:
		if len(words) > 0 {
			return 2, errUsage{"--confirm, --rollback and --status take no flow: they act on the fix pending on the target"}
		}
		var j *apply.Journal
		switch {
		case *doConfirm:
			j, err = sess.Confirm()
		case *doRollback:
			j, err = sess.Rollback(ctx)
		default:
			j, err = sess.Status()
		}
		if j != nil {
			printJournal(stdout, j, t)
		}
		if err != nil {
			return 2, err
		}
		return 0, nil
	}

	f, err := flow.Parse(words)
	if err != nil {
		return 2, errUsage{err.Error()}
	}
	checked := sess.Check(ctx, f, session.Options{Gateways: gateways, Watch: *watch, Notify: func(s string) { fmt.Fprintf(os.Stderr, "asym: %s\n", s) }})
	before := checked.Report
	p, err := sess.Plan(before.Findings, *only)
	if err != nil {
		return 2, err
	}
	printPlan(stdout, t, f, before, p)
	printGatewayHints(stdout, t, f, checked)
	if *doPersist {
		if len(p.Steps) == 0 {
			return 2, errors.New("there is nothing to make permanent for this flow")
		}
		if err := writePersist(stdout, sess, *root, p.Steps); err != nil {
			return 2, err
		}
		return 0, nil
	}
	if len(p.Steps) > 0 {
		printPersist(stdout, sess, *root, p.Steps)
	}
	if !*doApply {
		if len(p.Steps) > 0 {
			fmt.Fprintf(stdout, "\nDry run: nothing changed. Apply with: %s\n", fixCommand(t, "--apply", f.String()))
		}
		return 0, nil
	}
	o, err := sess.Apply(ctx, f, p, before.Findings)
	if err != nil {
		return 2, err
	}
	fmt.Fprintf(stdout, "\nApplied %d changes to %s; the revert is armed: %s.\n", o.Changes, t, o.Watchdog)
	fmt.Fprintf(stdout, "before: %s\nafter:  %s\n", findingList(o.Before), findingList(o.After))
	if still := o.Unhealed(); len(still) > 0 {
		fmt.Fprintf(stdout, "\nNOT HEALED: %s still found after the fix: it did not change what breaks the flow. Undo it: %s\n", findingList(still), fixCommand(t, "--rollback"))
	} else if !o.Healed() {
		fmt.Fprintf(stdout, "\nThe findings the fix was for are gone, but a critical finding remains: read the check again before keeping it.\n")
	}
	fmt.Fprintf(stdout, "\nKeep it:  %s   (before %s UTC, in %s)\nUndo now: %s\nOtherwise it reverts by itself, even if this session dies.\n",
		fixCommand(t, "--confirm"), o.Deadline.UTC().Format("15:04:05"), time.Until(o.Deadline).Round(time.Second), fixCommand(t, "--rollback"))
	if !*noWait && isTerminal(os.Stdin) {
		return askKeep(ctx, stdout, sess, o.Deadline)
	}
	return 0, nil
}

// askKeep waits for y or n like `netplan try`. The watchdog is already
// armed: if this process is killed or its terminal closes while it waits,
// the change still reverts at the deadline.
func askKeep(ctx context.Context, w io.Writer, sess *session.Session, deadline time.Time) (int, error) {
	answers := make(chan string, 1)
	go func() {
		var s string
		fmt.Fscanln(os.Stdin, &s)
		answers <- strings.ToLower(strings.TrimSpace(s))
	}()
	fmt.Fprintf(w, "Keep this change? [y/N] ")
	select {
	case a := <-answers:
		if a == "y" || a == "yes" {
			if _, err := sess.Confirm(); err != nil {
				return 2, err
			}
			fmt.Fprintln(w, "kept.")
			return 0, nil
		}
		if _, err := sess.Rollback(ctx); err != nil {
			return 2, err
		}
		fmt.Fprintln(w, "rolled back: the host is as it was.")
		return 0, nil
	case <-time.After(time.Until(deadline)):
		fmt.Fprintln(w, "\nno answer: the watchdog reverts the change now.")
		return 0, nil
	case <-ctx.Done():
		fmt.Fprintln(w, "\ninterrupted: the watchdog reverts the change at the deadline.")
		return 0, nil
	}
}

// fixCommand renders an asym fix command line for the same target.
func fixCommand(t *probes.Target, extra ...string) string {
	w := []string{"asym", "fix"}
	switch t.Kind {
	case "netns", "path":
		w = append(w, "--netns", t.Value)
	case "pid":
		w = append(w, "--pid", t.Value)
	}
	for _, e := range extra {
		w = append(w, strings.Fields(e)...)
	}
	return evidence.Command(w...)
}

func findingList(fs []playbook.Finding) string {
	if len(fs) == 0 {
		return "no findings"
	}
	var ids []string
	for _, f := range fs {
		ids = append(ids, string(f.ID))
	}
	return fmt.Sprintf("%d finding(s): %s", len(fs), strings.Join(ids, ", "))
}

func printPlan(w io.Writer, t *probes.Target, f flow.Flow, rep playbook.Report, p playbook.Plan) {
	fmt.Fprintf(w, "asym fix  %s  on %s\n%s\n", playbook.Clean(f.Arrow()), playbook.Clean(t.String()), findingList(rep.Findings))
	if len(p.Steps) > 0 {
		fmt.Fprintf(w, "\nPlan (%s):\n", strings.Join(p.Findings, ", "))
		for _, s := range p.Summaries {
			fmt.Fprintf(w, "  # %s\n", playbook.Clean(s))
		}
		for _, s := range p.Steps {
			cmd := evidence.Command(s.Words()...)
			if pre := t.Prefix(); len(pre) > 0 {
				cmd = evidence.Command(pre...) + " " + cmd
			}
			fmt.Fprintf(w, "  %s\n", playbook.Clean(cmd))
			if o := fix.Origin(s); o != "" {
				fmt.Fprintf(w, "    # %s\n", playbook.Clean(o))
			}
		}
	} else if slices.ContainsFunc(rep.Findings, func(f playbook.Finding) bool { return f.Fix.Missing() != "" }) {
		fmt.Fprintf(w, "\nNo fix can be applied yet: what it lacks is below; asym never applies a guess.\n")
	} else {
		fmt.Fprintf(w, "\nNothing asym can change on this host fixes this flow.\n")
	}
	for _, s := range p.Skipped {
		fmt.Fprintf(w, "  - %s\n", playbook.Clean(s))
	}
}

func printJournal(w io.Writer, j *apply.Journal, t *probes.Target) {
	fmt.Fprintf(w, "fix on %s: %s\n", playbook.Clean(t.String()), j.State)
	fmt.Fprintf(w, "  flow:     %s\n  summary:  %s\n  applied:  %s UTC\n", playbook.Clean(j.Flow), playbook.Clean(j.Summary), j.Created.UTC().Format(time.RFC3339))
	if j.Pending() {
		fmt.Fprintf(w, "  reverts:  %s UTC (in %s) unless confirmed\n", j.Deadline.UTC().Format(time.RFC3339), time.Until(j.Deadline).Round(time.Second))
	}
	if j.Watchdog != "" {
		fmt.Fprintf(w, "  watchdog: %s\n", playbook.Clean(j.Watchdog))
	}
	for _, s := range j.Steps {
		mark := " "
		if s.Done {
			mark = "✓"
		} else if s.Started {
			mark = "~"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, playbook.Clean(s.Command))
	}
	for _, l := range j.Log[max(0, len(j.Log)-6):] {
		fmt.Fprintf(w, "  | %s\n", playbook.Clean(l))
	}
}

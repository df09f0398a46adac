package main

import (
	"context"
	"errors"
	"flag"
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
	ff, words, err := parseFixFlags(args)
	if err != nil {
		return 2, err
	}
	if ff.watchdog != "" {
		return 0, apply.Watchdog(ff.watchdog, ff.watchdogNS)
	}
	cfg, err := ff.config()
	if err != nil {
		return 2, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if d, ok := ff.decision(); ok {
		if len(words) > 0 {
			return 2, errUsage{"--confirm, --rollback, --undo and --status take no flow: they act on the last fix applied to the target"}
		}
		// The journal, not the namespace: the target may not open by its
		// name any more (a --pid process that exited), and its fix must
		// still be shown and decided.
		return decideFix(ctx, stdout, cfg, d)
	}
	return planFix(ctx, stdout, cfg, ff, words)
}

// fixFlags are asym fix's flags.
type fixFlags struct {
	target                                          targetFlags
	apply, confirm, rollback, undo, status, persist bool
	noWait                                          bool
	revertAfter, watch                              time.Duration
	only, root                                      string
	rootGiven                                       bool
	gateways                                        gatewayFlag
	watchdog, watchdogNS                            string // internal: the revert watchdog's own run
}

// parseFixFlags reads the flags and the flow's words, and refuses what
// cannot go together.
func parseFixFlags(args []string) (fixFlags, []string, error) {
	var ff fixFlags
	fs := newFlagSet("fix")
	ff.target.register(fs)
	fs.BoolVar(&ff.apply, "apply", false, "apply the plan and arm the automatic revert")
	fs.DurationVar(&ff.revertAfter, "revert-after", 60*time.Second, "revert unless confirmed within this time")
	fs.BoolVar(&ff.confirm, "confirm", false, "keep the pending fix")
	fs.BoolVar(&ff.rollback, "rollback", false, "undo the pending fix now")
	fs.BoolVar(&ff.undo, "undo", false, "undo the kept fix now, each change only while it is as asym left it")
	fs.BoolVar(&ff.status, "status", false, "show the pending (or last) fix")
	fs.StringVar(&ff.only, "only", "", "only the fix of finding `ID`")
	fs.BoolVar(&ff.noWait, "no-wait", false, "with --apply on a terminal: do not ask to keep, leave it to --confirm")
	fs.StringVar(&ff.watchdog, "watchdog", "", "internal: run the revert watchdog for `JOURNAL`")
	fs.StringVar(&ff.watchdogNS, "watchdog-ns", "", "internal: the watchdog reverts in the namespace `FILE`")
	fs.BoolVar(&ff.persist, "persist", false, "write the plan into the network manager's configuration (with backups); applies nothing")
	fs.StringVar(&ff.root, "root", "/", "with --persist: the root `DIR` of the configuration files")
	fs.Var(&ff.gateways, "gateway", "the gateway of an interface asym could not find, `IFACE=ADDR` (repeatable)")
	fs.DurationVar(&ff.watch, "watch", 0, "observe the flow this long before planning (retry it meanwhile): its frames name a gateway no route does")
	words, err := parseInterleaved(fs, args)
	if err != nil {
		return ff, nil, flagError(fs, err)
	}
	// Only a root given explicitly: for a namespace that is not the host's,
	// the host's / holds nothing that configures it.
	fs.Visit(func(f *flag.Flag) { ff.rootGiven = ff.rootGiven || f.Name == "root" })
	if ff.watchdog != "" {
		return ff, words, nil
	}
	actions := 0
	for _, b := range []bool{ff.apply, ff.confirm, ff.rollback, ff.undo, ff.status, ff.persist} {
		if b {
			actions++
		}
	}
	switch {
	case actions > 1:
		return ff, nil, errUsage{"give one of --apply, --confirm, --rollback, --undo, --status and --persist"}
	case ff.watch < 0 || ff.watch > time.Hour:
		return ff, nil, errUsage{"--watch takes a duration up to 1h, e.g. 10s"}
	case ff.revertAfter < 5*time.Second || ff.revertAfter > 24*time.Hour:
		return ff, nil, errUsage{"--revert-after must be between 5s and 24h: long enough to check, short enough to save you"}
	}
	return ff, words, nil
}

func (ff fixFlags) config() (session.Config, error) {
	cfg, err := ff.target.config()
	if err != nil {
		return cfg, err
	}
	cfg.RevertAfter = ff.revertAfter
	if ff.rootGiven {
		cfg.PersistRoot = ff.root
	}
	return cfg, nil
}

// decision is the one of --confirm, --rollback, --undo and --status given.
func (ff fixFlags) decision() (decision, bool) {
	switch {
	case ff.confirm:
		return decideConfirm, true
	case ff.rollback:
		return decideRollback, true
	case ff.undo:
		return decideUndo, true
	case ff.status:
		return decideStatus, true
	}
	return 0, false
}

// planFix checks the flow, prints the plan, and writes it into the network
// manager's files (--persist), applies it (--apply) or stops there (a dry
// run).
func planFix(ctx context.Context, stdout io.Writer, cfg session.Config, ff fixFlags, words []string) (int, error) {
	sess, err := session.Open(cfg)
	if err != nil {
		return 2, err
	}
	defer sess.Close()
	t := sess.Target()
	f, err := flow.Parse(words)
	if err != nil {
		return 2, errUsage{err.Error()}
	}
	if ff.apply {
		if err := apply.Settled(sess.JournalID(), t.String()); err != nil {
			return 2, err
		}
	}
	checked := sess.Check(ctx, f, session.Options{Gateways: ff.gateways, Watch: ff.watch, Notify: func(s string) { fmt.Fprintf(os.Stderr, "asym: %s\n", s) }})
	before := checked.Report
	p, err := sess.Plan(before.Findings, ff.only)
	if err != nil {
		return 2, err
	}
	printPlan(stdout, t, f, before, p)
	printGatewayHints(stdout, t, f, checked)
	switch {
	case ff.persist && len(p.Steps) == 0:
		return 2, errors.New("there is nothing to make permanent for this flow")
	case ff.persist:
		if err := writePersist(stdout, sess, ff.root, p.Steps); err != nil {
			return 2, err
		}
		return 0, nil
	}
	if len(p.Steps) > 0 {
		printPersist(stdout, sess, ff.root, p.Steps)
	}
	if !ff.apply {
		if len(p.Steps) > 0 {
			fmt.Fprintf(stdout, "\nDry run: nothing changed. Apply with: %s\n", fixCommand(t, "--apply", f.String()))
		}
		return 0, nil
	}
	return applyPlan(ctx, stdout, sess, f, p, before, ff.noWait)
}

// applyPlan applies the plan with its revert armed, says whether it
// healed, and asks to keep it when a person is at the terminal.
func applyPlan(ctx context.Context, stdout io.Writer, sess *session.Session, f flow.Flow, p playbook.Plan, before playbook.Report, noWait bool) (int, error) {
	t := sess.Target()
	if j, err := sess.Status(); err == nil && j.Stale() {
		fmt.Fprintf(stdout, "\nnote: the fix applied at %s was never made: the asym applying it (%s) stopped before its first change; asym clears it.\n",
			j.Created.UTC().Format(time.RFC3339), j.Applier)
	} else if err == nil && j.State == apply.StateConfirmed {
		fmt.Fprintf(stdout, "\nnote: %s.\n", playbook.Clean(apply.ReplacedNote(j)))
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
	fmt.Fprintf(stdout, "\nKeep it:  %s   (before %s UTC, in %s)\nUndo now: %s\nOtherwise it reverts by itself, even if this session dies. Kept, it can be undone later: %s\n",
		fixCommand(t, "--confirm"), o.Deadline.UTC().Format("15:04:05"), time.Until(o.Deadline).Round(time.Second), fixCommand(t, "--rollback"), fixCommand(t, "--undo"))
	if !noWait && isTerminal(os.Stdin) {
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
			fmt.Fprintf(w, "kept. Undo it later with: %s\n", fixCommand(sess.Target(), "--undo"))
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
	var flags []string
	for _, e := range extra {
		flags = append(flags, strings.Fields(e)...)
	}
	return apply.Command(apply.TargetRef{Kind: t.Kind, Value: t.Value}, flags...)
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

// Exit statuses of fix --status, --confirm, --rollback and --undo: 0 when
// the fix is settled as asked (for --undo also when there was nothing
// left to undo, and for --rollback when the watchdog reverted it already),
// 1 when it needs the person (--status: its
// revert will not run by itself; --rollback and --undo: something someone
// else changed since was left alone), 2 on error.
const (
	exitFixOK        = 0
	exitFixAttention = 1
	exitFixError     = 2
)

// decision is what --confirm, --rollback, --undo and --status ask.
type decision int

const (
	decideStatus decision = iota
	decideConfirm
	decideRollback
	decideUndo
)

// decideFix is --confirm, --rollback, --undo and --status.
func decideFix(ctx context.Context, w io.Writer, cfg session.Config, d decision) (int, error) {
	var j *apply.Journal
	var err error
	switch d {
	case decideConfirm:
		j, err = session.ConfirmFix(ctx, cfg)
	case decideRollback:
		j, err = session.RollbackFix(ctx, cfg)
	case decideUndo:
		j, err = session.UndoFix(ctx, cfg)
	default:
		j, err = session.FixStatus(cfg)
	}
	if j != nil {
		printJournal(w, j)
	}
	// Only an undo that had nothing to do is fine; joined with a journal
	// that could not be written, it is an error.
	nothing, ok := err.(*apply.NothingToUndo)
	switch {
	case ok:
		fmt.Fprintf(w, "%s.\n", playbook.Clean(nothing.Why))
		return exitFixOK, nil
	case err != nil:
		return exitFixError, err
	case d == decideUndo:
		return undoSaid(w, j), nil
	case d == decideRollback && len(j.LeftAlone) > 0:
		return exitFixAttention, nil
	case d == decideStatus && j.Problem(time.Now()) != "":
		return exitFixAttention, nil
	}
	return exitFixOK, nil
}

// undoSaid ends an undo with what became of the kept fix, and its status.
func undoSaid(w io.Writer, j *apply.Journal) int {
	switch {
	case j.State == apply.StateConfirmed:
		fmt.Fprintf(w, "Nothing was undone: everything of the fix still there was changed since by someone else (left alone, above); the fix stays kept.\n")
		return exitFixAttention
	case len(j.LeftAlone) > 0:
		fmt.Fprintf(w, "Undone, except what someone changed since (left alone, above): asym does not touch it; see to it by hand.\n")
		return exitFixAttention
	}
	fmt.Fprintf(w, "Undone: what the fix changed is as it was before.\n")
	return exitFixOK
}

func printJournal(w io.Writer, j *apply.Journal) {
	now := time.Now()
	fmt.Fprintf(w, "fix on %s: %s\n", playbook.Clean(j.Target.String()), j.State)
	fmt.Fprintf(w, "  flow:     %s\n  summary:  %s\n  applied:  %s UTC\n", playbook.Clean(j.Flow), playbook.Clean(j.Summary), j.Created.UTC().Format(time.RFC3339))
	switch {
	case j.Stale():
		fmt.Fprintf(w, "  nothing was changed: the asym applying it (%s) stopped before its first change; the next --apply or --rollback clears this\n", j.Applier)
	case j.Pending() && now.Before(j.Deadline):
		fmt.Fprintf(w, "  reverts:  %s UTC (in %s) unless confirmed\n", j.Deadline.UTC().Format(time.RFC3339), time.Until(j.Deadline).Round(time.Second))
	case j.Pending():
		fmt.Fprintf(w, "  deadline: %s UTC, %s ago\n", j.Deadline.UTC().Format(time.RFC3339), now.Sub(j.Deadline).Round(time.Second))
	}
	if j.Watchdog != "" {
		alive := ""
		if wd := j.WatchdogProcess; wd != nil && j.Pending() {
			alive = " (gone)"
			if wd.Alive() {
				alive = " (running)"
			}
		}
		fmt.Fprintf(w, "  watchdog: %s%s\n", playbook.Clean(j.Watchdog), alive)
	}
	if p := j.Problem(now); p != "" {
		fmt.Fprintf(w, "  !! %s\n", playbook.Clean(p))
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
	for _, l := range j.LeftAlone {
		fmt.Fprintf(w, "  left alone: %s\n", playbook.Clean(l))
	}
	printUndo(w, j)
	for _, l := range j.Log[max(0, len(j.Log)-6):] {
		fmt.Fprintf(w, "  | %s\n", playbook.Clean(l))
	}
}

// exitFixStuck is asym check's status when a fix asym applied to the
// target will not revert by itself (its watchdog is gone, its deadline
// long past, its revert failed or went unrecorded): the host carries a
// change nobody decided. It wins over 0, 1 and 3: a script must not read
// the host as healthy, nor the check's findings as the whole story.
const exitFixStuck = 4

// reportPendingFix adds a fix pending on the target to a check's output:
// a line before the text report, after the Markdown one, on stderr beside
// JSON (whose schema it is not part of). It says whether the fix is stuck.
func reportPendingFix(sess *session.Session, stdout, stderr io.Writer, asJSON, asMD bool) (stuck bool) {
	pf := sess.PendingFix()
	if pf == nil {
		return false
	}
	var line string
	switch {
	case pf.Unknown != "":
		line = "note: " + pf.Unknown
	case pf.Problem != "" && pf.Summary == "":
		line = "!! " + pf.Problem
	case pf.Problem != "":
		line = fmt.Sprintf("!! a fix asym applied here at %s (%s) is still in place: %s", pf.Applied.UTC().Format(time.RFC3339), pf.Summary, pf.Problem)
	default:
		line = fmt.Sprintf("note: a fix asym applied here at %s (%s) is pending: this check saw the host with it; it reverts at %s UTC unless kept (%s)",
			pf.Applied.UTC().Format(time.RFC3339), pf.Summary, pf.Deadline.UTC().Format(time.RFC3339), pf.Confirm)
	}
	line = playbook.Clean(line)
	switch {
	case asJSON:
		fmt.Fprintln(stderr, "asym: "+line)
	case asMD:
		fmt.Fprintf(stdout, "\n> %s\n", strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(line))
	default:
		fmt.Fprintf(stdout, "%s\n\n", line)
	}
	return pf.Problem != ""
}

// printUndo shows how to undo a kept fix, and when one was undone.
func printUndo(w io.Writer, j *apply.Journal) {
	switch {
	case j.State == apply.StateConfirmed:
		fmt.Fprintf(w, "  undo it:  %s\n", apply.Command(j.Target, "--undo"))
		fmt.Fprintf(w, "  by hand, newest first (what --undo does, without its check that each is still as asym left it):\n")
		for _, c := range j.UndoCommands(j.Target.Render()) {
			fmt.Fprintf(w, "    %s\n", playbook.Clean(c))
		}
	case j.State == apply.StateUndone && j.Undone != nil:
		fmt.Fprintf(w, "  undone:   %s UTC by %s\n", j.Undone.At.UTC().Format(time.RFC3339), playbook.Clean(j.Undone.By))
	}
}

package session

import (
	"time"

	"asym/fix/apply"
)

// KeptFix is the last fix asym applied to the target when it was kept:
// what it changed, and how to undo it later, as the fix pane and the notes
// show it.
type KeptFix struct {
	Summary string
	Flow    string
	Applied time.Time
	// Undo is the command that undoes it, checking each change first.
	Undo string
	// UndoCommands undo it by hand, newest change first, entering the
	// namespace: what Undo runs, without its checks.
	UndoCommands []string
}

// KeptFix is the fix kept on the session's target, nil when the last fix
// there is not a kept one (or there is none, or its journal cannot be
// read: PendingFix reports that).
func (s *Session) KeptFix() *KeptFix { return KeptFixFor(s.cfg) }

// KeptFixFor is KeptFix for the target cfg names.
func KeptFixFor(cfg Config) *KeptFix {
	j, err := FixStatus(cfg)
	if err != nil || j.State != apply.StateConfirmed {
		return nil
	}
	return &KeptFix{Summary: j.Summary, Flow: j.Flow, Applied: j.Created, Undo: apply.Command(j.Target, "--undo"),
		UndoCommands: j.UndoCommands(j.Target.Render())}
}

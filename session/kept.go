package session

import (
	"context"

	"asym/fix/apply"
	"asym/playbook"
)

// KeptFix is the last fix asym applied to the target when it was kept
// (the view shows it as well, so it is the playbook's data).
type KeptFix = playbook.KeptFix

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

// UndoKept is the view's undo of the kept fix (Undo, without the journal).
func (s *Session) UndoKept(ctx context.Context) error {
	_, err := s.Undo(ctx)
	return err
}

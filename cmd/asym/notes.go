package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// checkNotes refuses a --notes path that is neither a regular file nor a
// new one. The view appends notes by reading the file whole and renaming a
// new file over it: a FIFO would block each export for ever (each one
// stacking another blocked writer), a device or a directory is never what
// was meant, and a symbolic link would itself be replaced, not the file it
// names.
func checkNotes(path string) error {
	if path == "" {
		return nil
	}
	st, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if d, err := os.Stat(filepath.Dir(path)); err != nil || !d.IsDir() {
			return errUsage{fmt.Sprintf("--notes %s: the directory %s does not exist; give a file in a directory that does", clip(path), clip(filepath.Dir(path)))}
		}
		return nil
	case err != nil:
		return errUsage{fmt.Sprintf("--notes %s: %v", clip(path), err)}
	case st.Mode()&fs.ModeSymlink != 0:
		return errUsage{fmt.Sprintf("--notes %s is a symbolic link: each export replaces the notes file, so the link would be replaced, not the file it names; give the file itself", clip(path))}
	case !st.Mode().IsRegular():
		return errUsage{fmt.Sprintf("--notes %s is %s, not a regular file: asym appends its notes to a file; give a file name (a new one is created)", clip(path), kindOf(st.Mode()))}
	}
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO), which would block every export"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a plain file"
}

package main

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"runtime"

	"asym/evidence"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// The first line is what a --peer asks the far end for (asym --version):
// it stays "asym VERSION (evidence format N)".
func printVersion(w io.Writer) {
	fmt.Fprintf(w, "asym %s (evidence format %d)\n%s %s/%s, %s\n", version, evidence.CollectFormat, runtime.Version(), runtime.GOOS, runtime.GOARCH, linking("/proc/self/exe"))
}

// linking says how the binary at path is linked. A static binary runs on
// any Linux of its architecture, so it can be copied to a --peer host as
// it is; a dynamic one asks for the loader (PT_INTERP) and the C library it
// was built against, which the other host may not have. Go links
// dynamically whenever cgo is on and a package uses it (net's resolver and
// os/user here), so CGO_ENABLED=0 is what makes it static: asym resolves
// no names and looks up no users, so it loses nothing.
func linking(path string) string {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Sprintf("linking unknown (%v)", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b, _ := io.ReadAll(io.LimitReader(p.Open(), 256))
		return fmt.Sprintf("dynamically linked (%s): a --peer host needs the C library it was built with; CGO_ENABLED=0 go build -o asym ./cmd/asym makes a static one", bytes.TrimRight(b, "\x00"))
	}
	return "static: it runs as it is on a --peer host of the same architecture"
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersionSaysLinking: asym version says whether the binary is static,
// from the binary itself. CGO_ENABLED=0 gives a static one (what a --peer
// host needs); the default build links the C library whenever cgo is on.
func TestVersionSaysLinking(t *testing.T) {
	static := filepath.Join(t.TempDir(), "asym")
	build := exec.Command("go", "build", "-o", static, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v\n%s", err, out)
	}
	version := func(bin string) string {
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("%s version: %v\n%s", bin, err, out)
		}
		first, _, _ := strings.Cut(string(out), "\n")
		if !strings.HasPrefix(first, "asym "+version+" (evidence format ") {
			t.Errorf("the first line, which a --peer reads, changed: %q", first)
		}
		return string(out)
	}
	if v := version(static); !strings.Contains(v, ", static: it runs as it is on a --peer host") {
		t.Errorf("CGO_ENABLED=0 build:\n%s", v)
	}
	cgo, _ := exec.Command("go", "env", "CGO_ENABLED").Output()
	want := ", static:"
	if strings.TrimSpace(string(cgo)) == "1" {
		want = "CGO_ENABLED=0 go build -o asym ./cmd/asym makes a static one"
	}
	if v := version(asymBinary(t)); !strings.Contains(v, want) {
		t.Errorf("default build (CGO_ENABLED=%s) does not say %q:\n%s", strings.TrimSpace(string(cgo)), want, v)
	}
}

package evidence

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// kernelFacing are the imports that talk to the kernel or run programs.
var kernelFacing = []string{
	"github.com/vishvananda/", "github.com/google/nftables", "github.com/ti-mo/", "github.com/mdlayher/",
	"github.com/cilium/", "golang.org/x/sys/", "golang.org/x/net/bpf", "os/exec",
}

// allowed are leaves under a forbidden prefix that import nothing of
// asym's, by the package that may use them.
var allowed = map[string][]string{
	"asym/lab/namespace": {"asym/probes/nsthread"},
}

// TestLayout holds the boundaries of the layout with the compiler's own
// view of the dependencies (go list -deps), so that they do not hold by
// discipline alone: the flow and its evidence, the fix as data and the
// playbook that judges are pure; the view renders without a kernel; probes
// read and never depend on what judges or changes.
func TestLayout(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatal("the go command is not on the PATH: the layout test asks it for the dependency graph")
	}
	rules := []struct {
		pkg, why string
		forbid   []string
	}{
		{"asym/flow", "the flow is what a person types: plain data", kernelFacing},
		{"asym/evidence", "the shared vocabulary is a leaf", append(kernelFacing, "asym/probes", "asym/playbook", "charm.land/")},
		{"asym/fix", "a fix is data; fix/apply is the one place that changes the kernel", append(kernelFacing, "asym/probes", "asym/playbook", "charm.land/")},
		{"asym/playbook", "analyzers are pure functions of evidence", append(kernelFacing, "asym/probes", "asym/fix/apply", "asym/ui", "charm.land/")},
		// The terminal library itself needs golang.org/x/sys and os/exec
		// (termios, the clipboard), so the view is held to the kernel
		// libraries and to asym's own kernel-facing packages.
		{"asym/ui", "the view renders and dispatches; the session behind it does the work", append(kernelFacing[:5:5], "asym/probes", "asym/fix/apply", "asym/session")},
		{"asym/probes/...", "probes read the kernel; they never depend on what judges, shows or changes", []string{"asym/playbook", "asym/ui", "asym/fix", "asym/session", "charm.land/"}},
		{"asym/fix/apply", "the fix engine applies steps; it does not judge", []string{"asym/playbook", "asym/ui", "asym/session", "charm.land/"}},
		{"asym/session", "the session drives probes, playbook and the fix engine; the view drives it, never the reverse", []string{"asym/ui", "charm.land/"}},
		{"asym/fix/persist", "persistence renders files from steps", append(kernelFacing, "asym/probes", "asym/playbook", "charm.land/")},
		{"asym/lab/namespace", "probetest, the lab and the benchmark share it, and the probes' own tests import probetest: an asym import here would be a cycle",
			[]string{"asym/flow", "asym/evidence", "asym/probes", "asym/playbook", "asym/fix", "asym/session", "asym/ui", "charm.land/"}},
	}
	for _, r := range rules {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{else}}{{if eq .ImportPath \"os/exec\"}}os/exec{{end}}{{end}}", r.pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", r.pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if slices.Contains(allowed[r.pkg], dep) {
				continue
			}
			for _, f := range r.forbid {
				if dep == strings.TrimSuffix(f, "/") || strings.HasPrefix(dep, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(dep, f+"/")) {
					if strings.HasPrefix(r.pkg, strings.TrimSuffix(f, "/")) {
						continue // a package may use itself and its own subpackages
					}
					t.Errorf("%s depends on %s: %s", r.pkg, dep, r.why)
				}
			}
		}
	}
}

// TestLayoutReadme: the README's Layout section names every package, so
// that a newcomer who reads it finds each folder there.
func TestLayoutReadme(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("go", "list", "asym/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	lines := strings.Split(string(readme), "\n")
	for _, pkg := range strings.Fields(string(out)) {
		dir := strings.TrimPrefix(pkg, "asym/") + "/ "
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, dir) }) {
			t.Errorf("the README's Layout section does not name %s", strings.TrimSpace(dir))
		}
	}
}

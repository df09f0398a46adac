package playbook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"asym/evidence"
)

// TestDropsRecorded replays --watch checks recorded on the lab scenarios
// whose packets die in this kernel (go test ./cmd/asym -run
// TestDropsProveFindings -record, as root): the kernel's drops of the flow
// prove the finding they were recorded for, with the lines that say so,
// and the findings are those the live check gave.
func TestDropsRecorded(t *testing.T) {
	files, _ := filepath.Glob("testdata/drops/*.json")
	if len(files) < 5 {
		t.Fatalf("want the 5 recordings in testdata/drops, found %d", len(files))
	}
	for _, fn := range files {
		t.Run(filepath.Base(fn), func(t *testing.T) {
			b, err := os.ReadFile(fn)
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Expect   []string          `json:"expect"`
				Proves   FindingID         `json:"proves"`
				Lines    []string          `json:"lines"`
				Evidence evidence.Evidence `json:"evidence"`
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatal(err)
			}
			if rec.Evidence.Live == nil || len(rec.Evidence.Live.Drops) == 0 {
				t.Fatal("the recording holds no drop")
			}
			fs := Analyze(&rec.Evidence, len(Steps)-1)
			want := slices.Clone(rec.Expect)
			sort.Strings(want)
			if got := ids(fs); !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
			f := findingOf(fs, rec.Proves)
			if f == nil || f.Severity != Critical {
				t.Fatalf("%s not critical: %+v", rec.Proves, f)
			}
			for _, l := range rec.Lines {
				if !hasLine(f, evidence.ProbeLive, l) {
					t.Errorf("no live line of %s has %q:\n%s", rec.Proves, l, evidenceText(f))
				}
			}
			// Without the drops the same evidence proves less, or the
			// kernel's words are at least gone from it.
			rec.Evidence.Live.Drops = nil
			if g := findingOf(Analyze(&rec.Evidence, len(Steps)-1), rec.Proves); g != nil {
				for _, l := range rec.Lines {
					if hasLine(g, evidence.ProbeLive, l) {
						t.Errorf("%q without the drops", l)
					}
				}
			}
		})
	}
}

package playbook

import (
	"asym/evidence"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"
)

// TestRecordedEvidence replays evidence recorded from the lab scenarios on
// a real kernel (go test ./cmd/asym -run TestCheckLab -record, as root)
// through the analyzers: no kernel, no root, same findings.
func TestRecordedEvidence(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.json")
	if len(files) < 9 {
		t.Fatalf("want the 9 lab recordings in testdata, found %d", len(files))
	}
	for _, fn := range files {
		t.Run(filepath.Base(fn), func(t *testing.T) {
			b, err := os.ReadFile(fn)
			if err != nil {
				t.Fatal(err)
			}
			var rec struct {
				Expect   []string          `json:"expect"`
				Evidence evidence.Evidence `json:"evidence"`
			}
			if err := json.Unmarshal(b, &rec); err != nil {
				t.Fatalf("recording does not parse: %v", err)
			}
			if rec.Evidence.Host == nil || rec.Evidence.Request == nil || rec.Evidence.Firewall == nil {
				t.Fatal("recording lacks evidence")
			}
			got := ids(Analyze(&rec.Evidence, len(Steps)-1))
			want := slices.Clone(rec.Expect)
			sort.Strings(want)
			if want == nil {
				want = []string{}
			}
			if !slices.Equal(got, want) {
				t.Fatalf("findings %v, want %v", got, want)
			}
		})
	}
}

// loadRecorded reads the evidence of a lab check recorded on a real kernel
// (playbook/testdata/NAME.json).
func loadRecorded(t *testing.T, name string) evidence.Evidence {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Evidence evidence.Evidence `json:"evidence"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Evidence
}

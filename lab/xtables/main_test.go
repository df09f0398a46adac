package xtables_test

import (
	"testing"

	"asym/probes/probetest"
)

// TestMain ends the run with one line when tests were skipped for want of
// root: go test ./... shows a passing package as "ok" alone.
func TestMain(m *testing.M) { probetest.Main(m) }

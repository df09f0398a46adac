package watch

import (
	"math"
	"testing"
	"time"

	"asym/evidence"
	"asym/flow"
)

func TestWatchRates(t *testing.T) {
	t0 := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	s := func(d time.Duration, kv ...any) *evidence.Sample {
		m := map[string]uint64{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = uint64(kv[i+1].(int))
		}
		return &evidence.Sample{Time: t0.Add(d), Counters: m}
	}
	for _, tc := range []struct {
		name      string
		prev, cur *evidence.Sample
		want      map[string]float64
	}{
		{"nil prev", nil, s(time.Second, "a", 1), map[string]float64{}},
		{"nil cur", s(0, "a", 1), nil, map[string]float64{}},
		{"same instant", s(0, "a", 1), s(0, "a", 5), map[string]float64{}},
		{"out of order", s(time.Second, "a", 1), s(0, "a", 5), map[string]float64{}},
		{"one second", s(0, "a", 1, "b", 7), s(time.Second, "a", 4, "b", 7), map[string]float64{"a": 3, "b": 0}},
		{"half a second", s(0, "a", 10), s(500*time.Millisecond, "a", 11), map[string]float64{"a": 2}},
		{"only keys in both", s(0, "a", 1, "gone", 3), s(2*time.Second, "a", 5, "new", 9), map[string]float64{"a": 2}},
		{"backwards", s(0, "rule:inet filter forward #2", 10), s(time.Second, "rule:inet filter forward #2", 4), map[string]float64{"rule:inet filter forward #2": -6}},
		{"big counters", s(0, "a", math.MaxInt-1), s(time.Second, "a", math.MaxInt), map[string]float64{"a": 1}},
	} {
		got := evidence.Rates(tc.prev, tc.cur)
		if got == nil {
			t.Errorf("%s: nil map, want an empty one", tc.name)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if g, ok := got[k]; !ok || math.Abs(g-v) > 1e-9 {
				t.Errorf("%s: %s = %v, want %v (all: %v)", tc.name, k, g, v, got)
			}
		}
	}
}

func TestWatchWithoutTarget(t *testing.T) {
	ch := Start(t.Context(), nil, flow.Flow{}, Options{})
	u, ok := <-ch
	if !ok || u.Err == nil {
		t.Fatalf("want one update with an error, got %+v (open %v)", u, ok)
	}
	if _, ok := <-ch; ok {
		t.Error("the channel stayed open")
	}
}

package watch

import (
	"errors"
	"strings"
	"testing"
	"time"

	"asym/evidence"
)

func TestWatchBatch(t *testing.T) {
	b := &batch{max: 3}
	out := make(chan evidence.WatchUpdate, 1)
	if b.flush(out) {
		t.Error("an empty batch was sent")
	}
	for i := 0; i < 5; i++ {
		b.event(evidence.CtEvent{Type: "NEW"})
	}
	b.setSample(&evidence.Sample{Time: time.Unix(1, 0)})
	if !b.flush(out) {
		t.Fatal("the first batch was not sent")
	}
	// The consumer is away: the next batches merge.
	b.event(evidence.CtEvent{Type: "UPDATE"})
	b.setSample(&evidence.Sample{Time: time.Unix(2, 0)})
	if b.flush(out) {
		t.Fatal("sent into a full channel")
	}
	for i := 0; i < 4; i++ {
		b.event(evidence.CtEvent{Type: "DESTROY"})
	}
	b.setSample(&evidence.Sample{Time: time.Unix(3, 0)})
	b.dropped(7)
	for i := 0; i < 10; i++ {
		b.fail(errors.New("same sentence"))
	}
	for i := 0; i < 10; i++ {
		b.fail(errors.New("sentence " + string(rune('a'+i))))
	}
	u1 := <-out
	if len(u1.Events) != 3 || u1.Dropped != 2 || !u1.Sample.Time.Equal(time.Unix(1, 0)) {
		t.Errorf("first batch: %d events, %d dropped, sample %v; want 3, 2, t=1", len(u1.Events), u1.Dropped, u1.Sample.Time)
	}
	if !b.flush(out) {
		t.Fatal("the merged batch was not sent")
	}
	u2 := <-out
	if len(u2.Events) != 3 || u2.Events[0].Type != "UPDATE" || u2.Dropped != 2+7 || !u2.Sample.Time.Equal(time.Unix(3, 0)) {
		t.Errorf("merged batch: %d events (first %s), %d dropped, sample %v; want 3 (UPDATE first), 9, the newest (t=3)",
			len(u2.Events), u2.Events[0].Type, u2.Dropped, u2.Sample.Time)
	}
	if n := strings.Count(u2.Err.Error(), "\n") + 1; n != maxErrs || !strings.HasPrefix(u2.Err.Error(), "same sentence\n") {
		t.Errorf("merged errors: %d lines, want %d distinct:\n%v", n, maxErrs, u2.Err)
	}
	if b.flush(out) {
		t.Error("an empty batch was sent after the merge")
	}
}

package backoff

import (
	"context"
	"testing"
	"time"
)

func TestNextDoublesUpToCap(t *testing.T) {
	var b Backoff
	want := []time.Duration{Floor, 2 * Floor, 4 * Floor, 8 * Floor, 16 * Floor, 32 * Floor, Cap, Cap}
	for i, w := range want {
		if got := b.Next(); got != w {
			t.Fatalf("delay %d = %v, want %v", i, got, w)
		}
	}
	b.Reset()
	if got := b.Next(); got != Floor {
		t.Fatalf("after Reset: %v, want %v", got, Floor)
	}
}

func TestSleepEndsWithContext(t *testing.T) {
	var b Backoff
	for range 10 {
		b.Next()
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if b.Sleep(ctx) {
		t.Fatal("Sleep reported the delay passed on an ended context")
	}
}

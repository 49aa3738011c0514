package integration

import (
	"sync/atomic"
	"testing"
	"time"
)

// The helpers below are used by the fault and backend tests. The
// conformance suite, which moved to distsynctest, keeps unexported copies
// of its own.

// overlapDetector counts critical sections that overlapped.
type overlapDetector struct {
	inside, overlaps atomic.Int64
}

// holdCounter counts holders inside and the times they were more than limit.
type holdCounter struct {
	limit             int64
	inside, max, over atomic.Int64
}

func (c *holdCounter) hold(d time.Duration) {
	n := c.inside.Add(1)
	if n > c.limit {
		c.over.Add(1)
	}
	for {
		m := c.max.Load()
		if n <= m || c.max.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(d)
	c.inside.Add(-1)
}

// waitKeys waits until name has n keys (holders plus waiters).
func waitKeys(t *testing.T, keys func(*testing.T, string) []string, name string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := len(keys(t, name))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %d keys of %q: have %d", n, name, got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Package backoff is the one retry delay of distsync: every loop that
// retries a backend failure (waiting, renewal, observing, cleanup, Run)
// waits with it, so that all of them back off alike.
package backoff

import (
	"context"
	"time"
)

const (
	// Floor is the first delay.
	Floor = 20 * time.Millisecond
	// Cap is the longest delay.
	Cap = time.Second
)

// A Backoff doubles a delay from Floor up to Cap. The zero value is ready
// to use. It is not safe for concurrent use.
type Backoff struct{ d time.Duration }

// Next returns the next delay: Floor first, then twice the last, at most
// Cap.
func (b *Backoff) Next() time.Duration {
	b.d = min(max(2*b.d, Floor), Cap)
	return b.d
}

// Reset makes the next delay Floor again, after a success.
func (b *Backoff) Reset() { b.d = 0 }

// Sleep waits for the next delay or until ctx ends, and reports whether the
// delay passed.
func (b *Backoff) Sleep(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

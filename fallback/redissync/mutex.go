package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// A Mutex is a distributed mutual-exclusion lock on Redis, opened with
// Session.Mutex. Waiters are granted in arrival order. It is safe for
// concurrent use; each Lock or TryLock call is a separate acquisition, so
// two calls exclude each other even through one Mutex or one Session.
type Mutex struct{ q *redisq.Queue }

var _ distsync.Mutex = (*Mutex)(nil)

// Lock blocks until the lock is held or ctx ends, and returns a *Lease. It
// enqueues and sleeps until a release grants it the lock (or the holder's
// TTL runs out). On failure nothing is left behind. Its error wraps
// distsync.ErrNotAcquired and ctx.Err() when ctx ended, or distsync.ErrLost
// when its queue entry was deleted, expired or removed by ForceRelease
// while it waited (distsync.LostReason tells which). Otherwise
// it wraps distsync.ErrClosed, distsync.ErrDenied (at once) or
// distsync.ErrUnavailable.
func (m *Mutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(m.q.Acquire(ctx, redisq.Exclusive, 1, nil))
}

// TryLock takes the lock only if nobody holds or waits for it; otherwise
// it fails with distsync.ErrWouldBlock and writes nothing. It fails
// otherwise as Lock does.
func (m *Mutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(m.q.TryAcquire(ctx, redisq.Exclusive, 1, nil))
}

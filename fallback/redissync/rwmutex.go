package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// An RWMutex is a distributed reader/writer lock on Redis, opened with
// Session.RWMutex: any number of readers or one writer. It is
// writer-preferring: requests are granted in arrival order, so a reader
// that arrives after a waiting writer waits behind it, and a stream of
// readers cannot starve writers. Each lease is renewed on its own. It is
// safe for concurrent use.
type RWMutex struct{ q *redisq.Queue }

var _ distsync.RWMutex = (*RWMutex)(nil)

// Lock blocks until the write lock is held or ctx ends: until every
// earlier request, read or write, has been granted and released. It
// returns a *Lease, and fails and leaves nothing behind as Mutex.Lock
// does.
func (rw *RWMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, redisq.Exclusive, 1, nil))
}

// TryLock takes the write lock only if nobody holds or waits for the
// lock; otherwise it fails with distsync.ErrWouldBlock and writes nothing.
func (rw *RWMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, redisq.Exclusive, 1, nil))
}

// RLock blocks until a read lock is held or ctx ends: at once if no
// writer holds or waits, else after the writers that arrived before it.
// It returns a *Lease, and fails and leaves nothing behind as Mutex.Lock
// does.
func (rw *RWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, redisq.Shared, 1, nil))
}

// TryRLock takes a read lock only if no writer holds or waits; otherwise
// it fails with distsync.ErrWouldBlock and writes nothing.
func (rw *RWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, redisq.Shared, 1, nil))
}

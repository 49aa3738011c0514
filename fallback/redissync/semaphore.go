package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// A Semaphore is a distributed counting semaphore on Redis, opened with
// Session.Semaphore: at most its limit of permits are held at once across
// all clients. Holders live in a sorted set scored by their server-time
// expiry, so a crashed holder's permits come back within the TTL; every
// call reclaims expired holders. Each holder's member records how many
// permits it holds. Waiters are granted in arrival order: a waiting
// AcquireN holds back later acquisitions until its permits are free. It
// is safe for concurrent use.
//
// The limit is stored with the semaphore while anyone holds or waits, and
// only then: an idle semaphore leaves no limit behind. An acquisition
// with a limit other than the stored one fails with
// distsync.ErrLimitMismatch, waiting ones included.
type Semaphore struct{ q *redisq.Queue }

var _ distsync.Semaphore = (*Semaphore)(nil)

// Limit returns the limit this Semaphore acquires under.
func (s *Semaphore) Limit() int64 { return s.q.Limit() }

// Acquire is AcquireN(ctx, 1).
func (s *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return s.AcquireN(ctx, 1)
}

// TryAcquire is TryAcquireN(ctx, 1).
func (s *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return s.TryAcquireN(ctx, 1)
}

// AcquireN blocks until n permits are held together, as one *Lease, or
// ctx ends. Waiters are granted in arrival order. n must be between 1 and
// the limit (distsync.ErrInvalidConfig). It fails with
// distsync.ErrLimitMismatch when the stored limit differs from this
// Semaphore's, also while it waits; otherwise it fails as Mutex.Lock
// does. On failure nothing is left behind.
func (s *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return lease(s.q.Acquire(ctx, redisq.Shared, n, nil))
}

// TryAcquireN takes n permits only if they are free and nobody waits;
// otherwise it fails with distsync.ErrWouldBlock (or
// distsync.ErrLimitMismatch) and writes nothing.
func (s *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return lease(s.q.TryAcquire(ctx, redisq.Shared, n, nil))
}

// SetLimit changes the limit to limit (at least 1), bounded by ctx: the
// stored one, if the semaphore is in use, and this Semaphore's. Permits
// already held are kept, also above a lower limit; waiters that a higher
// limit lets in are granted at once. Acquisitions through other Semaphore
// values with the old limit then fail with distsync.ErrLimitMismatch,
// waiting ones included. On failure (distsync.ErrUnavailable,
// distsync.ErrDenied) this Semaphore's limit is unchanged and the stored
// one may or may not have changed.
func (s *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	return s.q.SetLimit(ctx, limit)
}

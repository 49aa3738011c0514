package semaphore

import (
	"context"
	"sync/atomic"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func init() {
	etcdq.RegisterLeaseOf(func(l distsync.Lease) *etcdq.Lease {
		if x, ok := l.(*Lease); ok && x != nil {
			return x.l
		}
		return nil
	})
	etcdq.RegisterSemaphore(func(q *etcdq.Queue, limit int64) distsync.Semaphore { return newSemaphore(q, limit) })
}

// Semaphore is a distributed counting semaphore on etcd. Open it with
// etcdsync.Session.Semaphore (or New, over a session of your own). It is
// safe for concurrent use; every call is a separate acquisition.
type Semaphore struct {
	q     *etcdq.Queue
	t     *telemetry.Target // its attributes, computed once
	limit atomic.Int64
}

var _ distsync.Semaphore = (*Semaphore)(nil)

func newSemaphore(q *etcdq.Queue, limit int64) *Semaphore {
	s := &Semaphore{q: q, t: q.Session().Recorder().Target(telemetry.Semaphore, "", q.Name())}
	s.limit.Store(limit)
	return s
}

// New returns the semaphore called name with the given limit on s, an
// etcd session of your own. It does no I/O. A limit that differs from the
// stored one is reported by the first acquisition. s is never renewed:
// when it ends, every permit taken through it is lost and later calls fail
// with distsync.ErrClosed (see mutex.New). It fails with
// distsync.ErrInvalidName, or distsync.ErrInvalidConfig for a nil session
// or a limit below 1.
func New(s *concurrency.Session, name string, limit int64) (*Semaphore, error) {
	if err := etcdq.CheckLimitValue(limit); err != nil {
		return nil, err
	}
	src, err := etcdq.Fixed(s)
	if err != nil {
		return nil, err
	}
	q, err := etcdq.NewSemaphoreQueue(src, name)
	if err != nil {
		return nil, err
	}
	return newSemaphore(q, limit), nil
}

// Limit returns the limit this Semaphore acquires under: the one it was
// opened with, or set by SetLimit.
func (s *Semaphore) Limit() int64 { return s.limit.Load() }

// Acquire blocks until a permit is held or ctx ends. It is AcquireN(ctx, 1).
func (s *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return s.AcquireN(ctx, 1)
}

// TryAcquire takes a permit only if one is free and nobody waits; otherwise
// it returns an error wrapping distsync.ErrWouldBlock and writes nothing.
// It is TryAcquireN(ctx, 1).
func (s *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return s.TryAcquireN(ctx, 1)
}

// AcquireN blocks until n permits are held together, as one Lease, or ctx
// ends. Waiters are served in arrival order: a waiting AcquireN holds back
// later acquisitions until it fits. n must be between 1 and the limit
// (distsync.ErrInvalidConfig otherwise).
//
// The enqueue stores the limit if the semaphore is idle. Otherwise the
// stored limit must be this Semaphore's, or the error wraps
// distsync.ErrLimitMismatch and nothing is written; a waiter fails so too
// when the stored limit changes to another. On failure nothing is left
// behind: the waiter key is deleted and no goroutine remains. Other errors
// are those of mutex.Mutex.Lock.
func (s *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	if err := s.checkN(n); err != nil {
		return nil, err
	}
	return lease(s.q.AcquireWeighted(ctx, s.t, s.Limit, n))
}

// TryAcquireN takes n permits only if they are free and nobody waits;
// otherwise it returns an error wrapping distsync.ErrWouldBlock (or
// distsync.ErrLimitMismatch) and writes nothing.
func (s *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	if err := s.checkN(n); err != nil {
		return nil, err
	}
	return lease(s.q.TryAcquireWeighted(ctx, s.t, s.Limit(), n))
}

func (s *Semaphore) checkN(n int64) error {
	if limit := s.Limit(); n < 1 || n > limit {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "cannot acquire %d permits of a semaphore with limit %d", n, limit)
	}
	return nil
}

// SetLimit changes the limit to limit (at least 1): the stored limit, if
// the semaphore is in use, and this Semaphore's. An idle semaphore stores
// nothing; its next user stores its own limit. Permits already held are
// kept, also when the new limit is lower. Acquisitions through other
// Semaphore values with the old limit then fail with
// distsync.ErrLimitMismatch, waiting ones included, until they SetLimit
// too. It fails with distsync.ErrInvalidConfig, distsync.ErrClosed,
// distsync.ErrDenied or distsync.ErrUnavailable (joined with ctx.Err()
// when ctx ended); this Semaphore's limit is unchanged then.
func (s *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	if err := etcdq.CheckLimitValue(limit); err != nil {
		return err
	}
	// This value's limit first, so that its own waiters follow the
	// stored limit when it changes.
	old := s.limit.Swap(limit)
	if err := s.q.SetLimit(ctx, limit); err != nil {
		s.limit.CompareAndSwap(limit, old)
		return err
	}
	return nil
}

// LimitKey returns the etcd key that stores the limit of the semaphore
// called name while it is in use: name + "/\x00limit".
func LimitKey(name string) string { return etcdq.LimitKey(name) }

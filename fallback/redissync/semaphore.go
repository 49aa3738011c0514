package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// Semaphore is a distributed counting semaphore on Redis: at most limit
// permits are held at once across all clients. Holders live in a sorted
// set scored by their server-time expiry, so a crashed holder's permit
// comes back within the TTL; every call reclaims expired holders. The
// limit is stored with the semaphore while anyone holds or waits, and a
// client with another limit gets distsync.ErrLimitMismatch. Waiters are
// granted in arrival order. It is safe for concurrent use.
type Semaphore struct {
	primitive
	limit int64
}

var _ distsync.Semaphore = (*Semaphore)(nil)

// NewSemaphore returns the Semaphore called name with limit permits on
// session s. It does no I/O. It fails like NewMutex, and with
// distsync.ErrInvalidConfig for a limit below 1.
func NewSemaphore(s *Session, name string, limit int64) (*Semaphore, error) {
	q, err := newSemQueue(s, name, limit)
	if err != nil {
		return nil, err
	}
	return &Semaphore{primitive{q: q}, limit}, nil
}

func newSemQueue(s *Session, name string, limit int64) (*redisq.Queue, error) {
	if limit < 1 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d below 1", limit)
	}
	return redisq.NewQueue(s, name, limit)
}

// NewSemaphoreWithClient returns the Semaphore called name on a new
// session of c, which the Semaphore owns: Close closes it.
func NewSemaphoreWithClient(ctx context.Context, c Client, name string, limit int64, opts ...Option) (*Semaphore, error) {
	p, err := open(ctx, c, opts, func(s *Session) (*redisq.Queue, error) { return newSemQueue(s, name, limit) })
	if err != nil {
		return nil, err
	}
	return &Semaphore{p, limit}, nil
}

// Limit returns the semaphore's limit.
func (s *Semaphore) Limit() int64 { return s.limit }

// Acquire blocks until a permit is held or ctx ends, granting waiters in
// arrival order. It fails with distsync.ErrLimitMismatch, writing nothing,
// when the semaphore is in use with another limit; otherwise it fails and
// leaves nothing behind as Mutex.Lock does.
func (s *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	l, err := s.q.Acquire(ctx, redisq.Shared, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryAcquire takes a permit only if one is free and nobody waits;
// otherwise it fails with distsync.ErrWouldBlock (or
// distsync.ErrLimitMismatch) and writes nothing.
func (s *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	l, err := s.q.TryAcquire(ctx, redisq.Shared, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TODO(issue 13): weighted acquisitions and SetLimit; stubs keep the tree
// building while they are written.

// AcquireN is not implemented yet.
func (s *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "AcquireN not implemented")
}

// TryAcquireN is not implemented yet.
func (s *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "TryAcquireN not implemented")
}

// SetLimit is not implemented yet.
func (s *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	return distsync.Errorf(distsync.ErrInvalidConfig, nil, "SetLimit not implemented")
}

package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// RWMutex is a distributed reader/writer lock on Redis: any number of
// readers or one writer. It is writer-preferring: requests are granted in
// arrival order, so a reader that arrives after a waiting writer waits
// behind it, and a stream of readers cannot starve writers. Readers renew
// their leases independently. It is safe for concurrent use.
type RWMutex struct{ primitive }

var _ distsync.RWMutex = (*RWMutex)(nil)

// NewRWMutex returns the RWMutex called name on session s. It does no
// I/O. It fails like NewMutex.
func NewRWMutex(s *Session, name string) (*RWMutex, error) {
	q, err := redisq.NewQueue(s, name, 0)
	if err != nil {
		return nil, err
	}
	return &RWMutex{primitive{q: q}}, nil
}

// NewRWMutexWithClient returns the RWMutex called name on a new session
// of c, which the RWMutex owns: Close closes it.
func NewRWMutexWithClient(ctx context.Context, c Client, name string, opts ...Option) (*RWMutex, error) {
	p, err := open(ctx, c, opts, func(s *Session) (*redisq.Queue, error) { return redisq.NewQueue(s, name, 0) })
	if err != nil {
		return nil, err
	}
	return &RWMutex{p}, nil
}

// Lock blocks until the write lock is held or ctx ends: until every
// earlier request, read or write, has been granted and released. It fails
// and leaves nothing behind as Mutex.Lock does.
func (rw *RWMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	l, err := rw.q.Acquire(ctx, redisq.Exclusive, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryLock takes the write lock only if nobody holds or waits for the
// lock; otherwise it fails with distsync.ErrWouldBlock and writes nothing.
func (rw *RWMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	l, err := rw.q.TryAcquire(ctx, redisq.Exclusive, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// RLock blocks until a read lock is held or ctx ends: at once if no
// writer holds or waits, else after the writers that arrived before it.
// It fails and leaves nothing behind as Mutex.Lock does.
func (rw *RWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	l, err := rw.q.Acquire(ctx, redisq.Shared, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryRLock takes a read lock only if no writer holds or waits; otherwise
// it fails with distsync.ErrWouldBlock and writes nothing.
func (rw *RWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	l, err := rw.q.TryAcquire(ctx, redisq.Shared, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

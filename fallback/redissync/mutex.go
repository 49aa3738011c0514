package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// Mutex is a distributed mutual-exclusion lock on Redis. It is safe for
// concurrent use; each Lock or TryLock call is a separate acquisition, so
// two calls exclude each other even through one Mutex or one session.
type Mutex struct{ primitive }

var _ distsync.Mutex = (*Mutex)(nil)

// NewMutex returns the Mutex called name on session s. It does no I/O. It
// fails with an error wrapping distsync.ErrInvalidName for a name that
// breaks distsync.ValidateName, or distsync.ErrInvalidConfig for a nil
// session.
func NewMutex(s *Session, name string) (*Mutex, error) {
	q, err := redisq.NewQueue(s, name, 0)
	if err != nil {
		return nil, err
	}
	return &Mutex{primitive{q: q}}, nil
}

// NewMutexWithClient returns the Mutex called name on a new session of c,
// which the Mutex owns: Close closes it. It fails like NewSession and
// NewMutex, leaving nothing behind.
func NewMutexWithClient(ctx context.Context, c Client, name string, opts ...Option) (*Mutex, error) {
	p, err := open(ctx, c, opts, func(s *Session) (*redisq.Queue, error) { return redisq.NewQueue(s, name, 0) })
	if err != nil {
		return nil, err
	}
	return &Mutex{p}, nil
}

// Lock blocks until the lock is held or ctx ends, and returns the held
// *Lease. Waiters are granted in arrival order (FIFO). The call subscribes
// to the name's channel, enqueues itself and then sleeps until a release
// grants it the lock, re-checking no later than the holder's expiry; it
// never polls.
//
// On failure nothing is left behind: the waiter entry is deleted before
// Lock returns, at most distsync.CancelGrace after ctx ended. If Redis
// has not answered by then, a goroutine of the session goes on deleting it
// until Redis answers or the session closes, and the entry otherwise
// expires within the TTL.
// The error wraps distsync.ErrNotAcquired and ctx.Err() when ctx ended,
// distsync.ErrLost when the waiter entry was deleted or expired (the
// process was paused past the TTL), distsync.ErrClosed when the session
// was closed, or distsync.ErrUnavailable when Redis failed the enqueue, or
// stayed unreachable while waiting for longer than the TTL allows.
func (m *Mutex) Lock(ctx context.Context) (distsync.Lease, error) {
	l, err := m.q.Acquire(ctx, redisq.Exclusive, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryLock takes the lock only if nobody holds or waits for it, in one
// script. Otherwise it returns an error wrapping distsync.ErrWouldBlock and
// writes nothing.
func (m *Mutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	l, err := m.q.TryAcquire(ctx, redisq.Exclusive, nil)
	if err != nil {
		return nil, err
	}
	return l, nil
}

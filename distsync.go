package distsync

import (
	"context"
	"time"
)

// A Lease is one held acquisition: a lock, a read lock, a semaphore permit or
// leadership. It is returned only by a successful acquire call and is safe for
// concurrent use by multiple goroutines. A Lease must not be copied by value
// (implementations are pointers).
type Lease interface {
	// Token returns the fencing token of this acquisition. It is strictly
	// greater than every token issued earlier for the same name on the same
	// backend, so a protected resource can reject writes from a holder whose
	// lease has since passed to someone else.
	Token() uint64

	// Done returns a channel that is closed when the lease ends, because it
	// was released or because it was lost.
	Done() <-chan struct{}

	// Err returns nil while the lease is held, an error wrapping
	// ErrReleased after Release, or an error wrapping ErrLost and its cause
	// once the lease was lost. Once non-nil it never changes.
	Err() error

	// Release gives the lease up and removes its backend state (and only
	// its own). It is idempotent: later calls return the result of the
	// first. After Release returns, Done is closed whatever the result; an
	// error wrapping ErrUnavailable means the backend did not confirm the
	// removal and the backend copy will be removed in the background or
	// expire with the session.
	Release(ctx context.Context) error
}

// A Mutex is a distributed mutual-exclusion lock: at most one Lease at a
// time, across all clients of the backend.
type Mutex interface {
	// Lock blocks until the lock is held or ctx ends. On success it returns
	// the Lease. On failure it returns an error from this package (wrapping
	// ctx.Err() when ctx ended) and leaves nothing behind: no waiter state on
	// the backend and no goroutine. When ctx ends, Lock returns within
	// CancelGrace, having removed its waiter state if the backend answered
	// in that time (else the removal goes on in the background). A grant
	// that reaches the waiter in the same instant as the cancellation may
	// still be returned as a Lease, which the caller then owns.
	Lock(ctx context.Context) (Lease, error)

	// TryLock acquires the lock only if it is free, without waiting. When
	// the lock is held (or waited for) elsewhere it returns an error wrapping
	// ErrWouldBlock and leaves nothing behind.
	TryLock(ctx context.Context) (Lease, error)
}

// An RWMutex is a distributed reader/writer lock: any number of read leases
// or one write lease. Lock and TryLock take the write lease.
type RWMutex interface {
	Mutex

	// RLock blocks until a read lease is held or ctx ends, with the same
	// guarantees as Mutex.Lock.
	RLock(ctx context.Context) (Lease, error)

	// TryRLock takes a read lease only if no writer holds or waits for the
	// lock, else it returns an error wrapping ErrWouldBlock.
	TryRLock(ctx context.Context) (Lease, error)
}

// A Semaphore is a distributed counting semaphore: at most its limit of
// permits are held at any time across all clients.
type Semaphore interface {
	// Acquire blocks until a permit is held or ctx ends, with the same
	// guarantees as Mutex.Lock.
	Acquire(ctx context.Context) (Lease, error)

	// TryAcquire takes a permit only if one is free, else it returns an
	// error wrapping ErrWouldBlock.
	TryAcquire(ctx context.Context) (Lease, error)
}

// Leader describes the current leader of an election, as seen by an
// observer.
type Leader struct {
	// Value is what the leader campaigned with or last proclaimed.
	Value []byte
	// Term is the leader's fencing token: strictly greater for each
	// successive leader. Zero with None.
	Term uint64
	// None is true when the election has no leader.
	None bool
	// Time is when the observer learned of this state (local clock).
	Time time.Time
}

// Leadership is a held leadership: a Lease whose Token is the leader's term,
// plus Proclaim to change the value observers see.
type Leadership interface {
	Lease

	// Proclaim changes the leader's value while leadership is held. It
	// fails with an error wrapping ErrLost (or ErrReleased) when leadership
	// has ended, and changes nothing then.
	Proclaim(ctx context.Context, value []byte) error
}

// An Election elects one leader among its candidates.
type Election interface {
	// Campaign blocks until this candidate leads or ctx ends. A failed or
	// cancelled campaign leaves no candidate state behind.
	Campaign(ctx context.Context, value []byte) (Leadership, error)

	// Leader returns the current leader, or an error wrapping ErrNoLeader.
	Leader(ctx context.Context) (Leader, error)

	// Observe delivers every change of leader, including "no leader"
	// (Leader.None), in order. The channel is closed when ctx ends.
	Observe(ctx context.Context) <-chan Leader
}

// CancelGrace bounds how long an acquire call goes on after its context
// ended, to remove the state it wrote (a waiter key or node) before it
// returns. When the backend answers within CancelGrace, nothing is left once
// the call returns. Otherwise the removal goes on in the background until
// the backend answers or the session ends, and the call returns anyway.
const CancelGrace = 100 * time.Millisecond

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
//
// The limit is stored with the semaphore on the backend while anyone holds
// or waits for a permit, and only then: an idle semaphore leaves nothing
// behind, and its next user stores its own limit. Opening or acquiring with
// a limit other than the stored one fails with ErrLimitMismatch, so clients
// that disagree are told instead of admitting too many. SetLimit changes the
// limit on purpose.
type Semaphore interface {
	// Acquire blocks until a permit is held or ctx ends, with the same
	// guarantees as Mutex.Lock. It is AcquireN(ctx, 1).
	Acquire(ctx context.Context) (Lease, error)

	// TryAcquire takes a permit only if one is free and nobody waits, else
	// it returns an error wrapping ErrWouldBlock. It is TryAcquireN(ctx, 1).
	TryAcquire(ctx context.Context) (Lease, error)

	// AcquireN blocks until n permits are held together, as one Lease, or
	// ctx ends, with the same guarantees as Mutex.Lock. Waiters are served
	// in arrival order: a waiting AcquireN holds back later acquisitions
	// until it fits. n must be between 1 and the limit (ErrInvalidConfig).
	AcquireN(ctx context.Context, n int64) (Lease, error)

	// TryAcquireN takes n permits only if they are free and nobody waits,
	// else it returns an error wrapping ErrWouldBlock and leaves nothing
	// behind.
	TryAcquireN(ctx context.Context, n int64) (Lease, error)

	// Limit returns the limit this Semaphore acquires under.
	Limit() int64

	// SetLimit changes the limit to limit (at least 1): the stored limit,
	// if the semaphore is in use, and this Semaphore's. Permits already
	// held are kept, also when the new limit is lower. Acquisitions through
	// other Semaphore values still opened with the old limit then fail with
	// ErrLimitMismatch, waiting ones included, until they SetLimit too.
	SetLimit(ctx context.Context, limit int64) error
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

// A Session is a process's identity on one backend, and opens that
// backend's primitives. Every backend (etcd, Redis, ZooKeeper) has a
// Session type implementing this interface, so a program written against it
// changes backend by changing the one line that creates the Session.
//
// A Session lives until Close. When the backend's own session underneath
// ends (an etcd lease expired or revoked, a ZooKeeper session expired, a
// Redis renewal that failed), the leases taken under it end as lost, and the
// Session and the primitives opened from it go on with a new one: the next
// acquisition works again. A Session and its primitives are safe for
// concurrent use by multiple goroutines.
type Session interface {
	// Mutex returns the Mutex called name. It does no I/O; it fails with
	// ErrInvalidName for a name that breaks ValidateName.
	Mutex(name string) (Mutex, error)

	// RWMutex returns the RWMutex called name, as Mutex does.
	RWMutex(name string) (RWMutex, error)

	// Semaphore returns the Semaphore called name with the given limit. It
	// checks the limit against the stored one, bounded by ctx, and fails
	// with ErrLimitMismatch when the semaphore is in use with another
	// limit, with ErrInvalidConfig for a limit below 1, or with
	// ErrInvalidName.
	Semaphore(ctx context.Context, name string, limit int64) (Semaphore, error)

	// Election returns the Election called name, as Mutex does.
	Election(name string) (Election, error)

	// Inspect reads who holds and who waits for name, of whichever
	// primitive kind, under ctx. An idle name gives a Status without
	// holders or waiters. It fails with ErrInvalidName, ErrClosed,
	// ErrDenied or ErrUnavailable (joined with ctx.Err() when ctx ended).
	Inspect(ctx context.Context, name string) (Status, error)

	// ForceRelease is an operator's break-glass: it removes the backend
	// state of the holder (or waiter) of name whose Token is token, so the
	// next waiter is served. Its Lease ends with an error wrapping ErrLost
	// whose LostReason is LossForceReleased; a waiter's acquisition fails
	// the same way. The holder learns of it from its backend (on Redis at
	// its next renewal, within a third of its TTL), so it may briefly
	// overlap the next holder: fencing tokens cover that. It fails with
	// ErrNotFound when no holder or waiter has token, or with
	// ErrInvalidName, ErrClosed, ErrDenied or ErrUnavailable.
	ForceRelease(ctx context.Context, name string, token uint64) error

	// Close ends the Session: the leases taken under it end (released where
	// the backend is reachable, else they expire), calls through its
	// primitives fail with ErrClosed, and its goroutines end. A client the
	// caller handed in stays open: the caller closes it. Close is
	// idempotent.
	Close() error
}

// CancelGrace bounds how long an acquire call goes on after its context
// ended, to remove the state it wrote (a waiter key or node) before it
// returns. When the backend answers within CancelGrace, nothing is left once
// the call returns. Otherwise the removal goes on in the background until
// the backend answers or the session ends, and the call returns anyway.
const CancelGrace = 100 * time.Millisecond

package redissync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
)

// A Lease is one held lock, read lock or set of semaphore permits on
// Redis: the Lock, RLock and Acquire calls of this package return a
// *Lease inside a distsync.Lease. It is renewed every TTL/3 by its own
// goroutine until Release, or until it is lost. It is safe for concurrent
// use.
type Lease struct{ l *redisq.Lease }

var _ distsync.Lease = (*Lease)(nil)

// Token returns the fencing token: the name's counter, advanced by the
// script that granted this lease, so strictly greater than every token
// issued before for the name (see "Fencing" in the package documentation).
func (l *Lease) Token() uint64 { return l.l.Token() }

// Done returns a channel closed when the lease ends: released or lost.
func (l *Lease) Done() <-chan struct{} { return l.l.Done() }

// Err returns nil while the lease is held, then an error wrapping
// distsync.ErrReleased after Release, or else distsync.ErrLost. A lease is
// lost, with the distsync.LostReason in brackets, when a renewal found its
// state removed by Session.ForceRelease (LossForceReleased) or otherwise
// gone (LossDeleted; LossRenewal when it had expired), when none was
// confirmed in time or Redis refused one (LossRenewal), or when the
// Session was closed (LossSessionEnded).
func (l *Lease) Err() error { return l.l.Err() }

// Release deletes the lease's state, and only its own (compared by its
// random member), and hands the name to the next waiters. It is
// idempotent: later calls return the first one's result. After it returns
// Done is closed. An error wraps distsync.ErrUnavailable (or
// distsync.ErrDenied) when Redis did not confirm the deletion before ctx
// ended; the state then expires within the TTL.
func (l *Lease) Release(ctx context.Context) error { return l.l.Release(ctx) }

// A Leadership is a held leadership of an Election: a lease whose Token
// is the leader's term, and Proclaim. Campaign returns a *Leadership
// inside a distsync.Leadership. It is safe for concurrent use.
type Leadership struct {
	l *redisq.Lease
	q *redisq.Queue
}

var _ distsync.Leadership = (*Leadership)(nil)

// Token returns the leader's term, a fencing token as Lease.Token.
func (l *Leadership) Token() uint64 { return l.l.Token() }

// Done returns a channel closed when leadership ends: resigned or lost.
func (l *Leadership) Done() <-chan struct{} { return l.l.Done() }

// Err returns nil while leadership is held, then why it ended, as
// Lease.Err.
func (l *Leadership) Err() error { return l.l.Err() }

// Release resigns, as Lease.Release; the next candidate leads.
func (l *Leadership) Release(ctx context.Context) error { return l.l.Release(ctx) }

// Proclaim changes the leader's value while leadership is held, in one
// script that checks the lease; observers see the new value. It fails
// with an error wrapping distsync.ErrLost or distsync.ErrReleased when
// leadership has ended (changing nothing), distsync.ErrDenied or
// distsync.ErrUnavailable. After a ForceRelease it fails at once with
// the reason distsync.LossForceReleased, before the lease's renewal ends
// the lease.
func (l *Leadership) Proclaim(ctx context.Context, value []byte) error {
	return l.q.Proclaim(ctx, l.l, value)
}

// lease wraps an engine lease, or returns err.
func lease(l *redisq.Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, err
	}
	return &Lease{l: l}, nil
}

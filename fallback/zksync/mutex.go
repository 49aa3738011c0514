package zksync

import (
	"context"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
)

// Mutex is a distributed mutual-exclusion lock on ZooKeeper, opened by
// Session.Mutex. Each Lock is a protected ephemeral sequential node under
// Path, and the lowest node holds, so the lock passes in arrival order. A
// Mutex and go-zookeeper's zk.Lock on Path exclude each other. It is safe
// for concurrent use; each Lock or TryLock call is a separate acquisition,
// so two calls exclude each other even through one Mutex or one Session.
type Mutex struct {
	q *queue
	t *telemetry.Target
}

var _ distsync.Mutex = (*Mutex)(nil)

// Lock blocks until the lock is held or ctx ends, and returns the held
// *Lease. It creates its node and waits for the deletion of the next older
// node only (it also watches the node before that one, to learn when the
// next older node is the oldest). On failure nothing is left behind: the node is deleted and no
// goroutine remains. When ctx ends, Lock goes on for at most
// distsync.CancelGrace to delete the node; if ZooKeeper does not answer by
// then, the deletion goes on in the background until it does or the
// session ends. A grant that raced the end of ctx is kept: Lock then
// returns the held lease.
//
// The error wraps distsync.ErrNotAcquired and ctx.Err() when ctx ended.
// It wraps distsync.ErrLost when the node was deleted or its session ended
// while waiting; distsync.LostReason says which (LossForceReleased after
// Session.ForceRelease). It wraps distsync.ErrClosed after Session.Close.
// A refusal by ZooKeeper is distsync.ErrDenied, any other failed request
// distsync.ErrUnavailable. A disconnection while waiting is waited out.
func (m *Mutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, m.t, m.q, exclusive(lockKind), m.q.identity(), false))
}

// TryLock takes the lock only if nobody holds or waits for it. Otherwise it
// returns an error wrapping distsync.ErrWouldBlock and leaves nothing
// behind (when the lock is visibly taken it writes nothing at all). On
// cancellation it cleans up as Lock does.
func (m *Mutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(take(ctx, m.t, m.q, exclusive(lockKind), m.q.identity(), true))
}

// Path returns the Mutex's node, whose children are its holder and waiters.
// A zk.NewLock on this path excludes and is excluded by the Mutex.
func (m *Mutex) Path() string { return m.q.path }

// Session returns the Session the Mutex was opened from.
func (m *Mutex) Session() *Session { return m.q.s }

// take runs one acquire call through q, of class c with value as its
// node's data, and records it on t.
func take(ctx context.Context, t *telemetry.Target, q *queue, c class, value []byte, try bool) (*Lease, error) {
	op := t.Begin(ctx, !try)
	l, err := q.acquire(ctx, c, value, try)
	if err != nil {
		op.End(ctx, nil, 0, err)
		return nil, err
	}
	op.End(ctx, &l.end, l.Token(), nil)
	return l, nil
}

// lease keeps a nil *Lease from becoming a non-nil distsync.Lease.
func lease(l *Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

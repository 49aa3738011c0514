package mutex

import (
	"context"

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
	etcdq.RegisterMutex(func(q *etcdq.Queue) distsync.Mutex { return newMutex(q) })
}

// Mutex is a distributed mutual-exclusion lock on etcd. Open it with
// etcdsync.Session.Mutex (or New, over a session of your own). It is safe
// for concurrent use; each Lock or TryLock call is a separate acquisition,
// so two calls exclude each other even through one Mutex or one Session.
type Mutex struct {
	q *etcdq.Queue
	t *telemetry.Target // its attributes, computed once
}

var _ distsync.Mutex = (*Mutex)(nil)

func newMutex(q *etcdq.Queue) *Mutex {
	return &Mutex{q: q, t: q.Session().Recorder().Target(telemetry.Mutex, "", q.Name())}
}

// New returns the Mutex called name on s, an etcd session of your own,
// for programs that already manage one. It does no I/O. s is never
// renewed: when it ends (closed, expired or revoked), every lease taken
// through it is lost and later calls fail with distsync.ErrClosed. Prefer
// etcdsync.Session, which goes on with a new lease. New fails with
// distsync.ErrInvalidName for a name that breaks distsync.ValidateName, or
// distsync.ErrInvalidConfig for a nil session.
func New(s *concurrency.Session, name string) (*Mutex, error) {
	src, err := etcdq.Fixed(s)
	if err != nil {
		return nil, err
	}
	q, err := etcdq.NewQueue(src, name)
	if err != nil {
		return nil, err
	}
	return newMutex(q), nil
}

// Lock blocks until the lock is held or ctx ends, and returns the held
// *Lease. On failure nothing is left behind: the waiter key is deleted
// (if etcd does not answer, in the background until it does or the session
// lease ends) and no goroutine remains. The error wraps
// distsync.ErrNotAcquired and ctx.Err() when ctx ended. It wraps
// distsync.ErrLost when the session lease or the waiter key went away
// while waiting, and distsync.ErrClosed after the Session's Close. It
// wraps distsync.ErrDenied when etcd refused the permission, or
// distsync.ErrUnavailable when etcd failed the enqueue request. While waiting, etcd failures such as a leader
// election are retried for as long as the session lease lives.
func (m *Mutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(m.q.Acquire(ctx, m.t, etcdq.Exclusive, m.q.Session().Identity()))
}

// TryLock takes the lock only if nobody holds or waits for it, in one
// round trip. Otherwise it returns an error wrapping distsync.ErrWouldBlock
// and writes nothing. Other errors are those of Lock.
func (m *Mutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(m.q.TryAcquire(ctx, m.t, etcdq.Exclusive, m.q.Session().Identity()))
}

package rwmutex

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
	etcdq.RegisterRWMutex(func(q *etcdq.Queue) distsync.RWMutex { return newRWMutex(q) })
}

var (
	// writer keys ("N/w<lease>_<random>") wait for every older key.
	writer = etcdq.Class{Sub: "w", Wait: ""}
	// reader keys ("N/r<lease>_<random>") wait for older writer keys only.
	reader = etcdq.Class{Sub: "r", Wait: "w"}
)

// RWMutex is a distributed reader/writer lock on etcd. Open it with
// etcdsync.Session.RWMutex (or New, over a session of your own). It is
// safe for concurrent use; every call is a separate acquisition, so a
// write lease excludes read leases taken through the same RWMutex or
// Session.
type RWMutex struct {
	q      *etcdq.Queue
	rt, wt *telemetry.Target // reads' and writes' attributes, computed once
}

var _ distsync.RWMutex = (*RWMutex)(nil)

func newRWMutex(q *etcdq.Queue) *RWMutex {
	rec := q.Session().Recorder()
	return &RWMutex{
		q:  q,
		rt: rec.Target(telemetry.RWMutex, distsync.ModeRead, q.Name()),
		wt: rec.Target(telemetry.RWMutex, distsync.ModeWrite, q.Name()),
	}
}

// New returns the RWMutex called name on s, an etcd session of your own.
// It does no I/O. s is never renewed: when it ends, every lease taken
// through it is lost and later calls fail with distsync.ErrClosed (see
// mutex.New). It fails with distsync.ErrInvalidName or
// distsync.ErrInvalidConfig (a nil session).
func New(s *concurrency.Session, name string) (*RWMutex, error) {
	src, err := etcdq.Fixed(s)
	if err != nil {
		return nil, err
	}
	q, err := etcdq.NewQueue(src, name)
	if err != nil {
		return nil, err
	}
	return newRWMutex(q), nil
}

// Lock blocks until the write lease is held or ctx ends: until every older
// reader and writer has released. On failure nothing is left behind; the
// errors are those of mutex.Mutex.Lock.
func (rw *RWMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, rw.wt, writer, rw.q.Session().Identity()))
}

// TryLock takes the write lease only if no reader or writer holds or waits
// for it; otherwise it returns an error wrapping distsync.ErrWouldBlock and
// writes nothing.
func (rw *RWMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, rw.wt, writer, rw.q.Session().Identity()))
}

// RLock blocks until a read lease is held or ctx ends: until every older
// writer has released (readers do not wait for each other). On failure
// nothing is left behind; the errors are those of Lock.
func (rw *RWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, rw.rt, reader, rw.q.Session().Identity()))
}

// TryRLock takes a read lease only if no writer holds or waits for the
// lock; otherwise it returns an error wrapping distsync.ErrWouldBlock and
// writes nothing.
func (rw *RWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, rw.rt, reader, rw.q.Session().Identity()))
}

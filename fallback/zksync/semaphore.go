package zksync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/go-zookeeper/zk"
)

// Semaphore is a distributed counting semaphore on ZooKeeper, opened by
// Session.Semaphore. Each acquisition is a node under Path whose name
// carries its weight; nodes are served in arrival order, and the oldest
// nodes whose weights fit in the limit hold. The limit is stored as the
// data of Path while the semaphore is in use, and only then (see
// distsync.Semaphore). It is safe for concurrent use; every call is a
// separate acquisition.
type Semaphore struct {
	q       *queue
	t       *telemetry.Target
	limit   atomic.Int64
	pending atomic.Int64 // the limit a SetLimit is storing; 0 when none

	setMu sync.Mutex // serialises SetLimit; guards wrote
	wrote *zk.Stat   // the node as the last SetLimit left it
}

var _ distsync.Semaphore = (*Semaphore)(nil)

// Semaphore returns the Semaphore called name with the given limit, a
// *Semaphore. It reads the stored limit, bounded by ctx, and fails with an
// error wrapping distsync.ErrLimitMismatch when the semaphore is in use
// with another limit. It also fails with distsync.ErrInvalidName,
// distsync.ErrInvalidConfig (a limit below 1), distsync.ErrClosed,
// distsync.ErrDenied, or distsync.ErrUnavailable (with ctx's error when ctx
// ended). It writes nothing: an acquisition stores the limit.
func (s *Session) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	if limit < 1 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d, want at least 1", limit)
	}
	q, err := s.queue(name)
	if err != nil {
		return nil, err
	}
	sem := &Semaphore{q: q, t: s.o.rec.Target(telemetry.Semaphore, "", name)}
	sem.limit.Store(limit)
	q.create = sem.create
	if err := s.usable(); err != nil {
		return nil, err
	}
	r, err := call(ctx, s, func() (nodeRead, error) {
		data, stat, err := s.conn.Get(q.path)
		if errors.Is(err, zk.ErrNoNode) {
			return nodeRead{}, nil
		}
		return nodeRead{true, data, stat}, err
	}, nil)
	if err != nil {
		return nil, s.classify(ctx, err, distsync.ErrUnavailable, fmt.Sprintf("read the limit of %q", name))
	}
	if err := sem.checkInUse(r, limit); err != nil {
		return nil, err
	}
	if r.ok {
		q.lastStored.Store(&r) // for the first acquisition (see create)
	}
	return sem, nil
}

// Limit returns the limit this Semaphore acquires under.
func (sem *Semaphore) Limit() int64 { return sem.limit.Load() }

// Acquire blocks until a permit is held or ctx ends. It is AcquireN(ctx, 1).
func (sem *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return sem.AcquireN(ctx, 1)
}

// TryAcquire takes a permit only if one is free and nobody waits. It is
// TryAcquireN(ctx, 1).
func (sem *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return sem.TryAcquireN(ctx, 1)
}

// AcquireN blocks until n permits are held together, as one *Lease, or ctx
// ends. Acquisitions are served in arrival order: a waiting AcquireN holds
// back later ones until it fits. Near the head of the queue it watches
// every older node and holds at the deletion that lets it in, without
// listing the queue; further back it watches a few older nodes that keep
// it out (see the package doc). On failure or
// cancellation nothing is left behind, within distsync.CancelGrace after
// ctx ended when ZooKeeper answers (see Mutex.Lock for the cleanup and the
// errors). It also fails with distsync.ErrInvalidConfig when n is not
// between 1 and the limit. It fails with distsync.ErrLimitMismatch when the
// semaphore is in use with another limit, or when a SetLimit through
// another Semaphore value changed it while this one waited.
func (sem *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return sem.acquire(ctx, n, false)
}

// TryAcquireN takes n permits only if they are free and nobody waits;
// otherwise it returns an error wrapping distsync.ErrWouldBlock and leaves
// nothing behind. Its other errors are AcquireN's.
func (sem *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return sem.acquire(ctx, n, true)
}

func (sem *Semaphore) acquire(ctx context.Context, n int64, try bool) (distsync.Lease, error) {
	if limit := sem.Limit(); n < 1 || n > limit {
		err := distsync.Errorf(distsync.ErrInvalidConfig, nil, "%d permits asked for, want 1 to the limit %d", n, limit)
		sem.t.Begin(ctx, !try).End(ctx, nil, 0, err)
		return nil, err
	}
	return lease(take(ctx, sem.t, sem.q, weighted(n, sem.stored), sem.q.identity(), try))
}

// SetLimit changes the limit to limit (at least 1): the stored one, if the
// semaphore is in use, and this Semaphore's. Permits already held are
// kept, also when the new limit is lower. Acquisitions through other
// Semaphore values opened with the old limit then fail with
// distsync.ErrLimitMismatch, waiting ones included: SetLimit writes each
// waiter's node again to wake it. Those through this one count with the
// new limit. An error wrapping distsync.ErrUnavailable (with ctx's error
// when ctx ended) means the stored limit may or may not have changed, or
// some waiters were not woken; SetLimit may be called again.
func (sem *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	if limit < 1 {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d, want at least 1", limit)
	}
	s := sem.q.s
	if err := s.usable(); err != nil {
		return err
	}
	sem.setMu.Lock()
	defer sem.setMu.Unlock()
	sem.pending.Store(limit)
	defer sem.pending.Store(0)
	type res struct {
		stat *zk.Stat
		err  error
	}
	r, err := call(ctx, s, func() (res, error) {
		stat, err := sem.setLimit(limit)
		return res{stat, err}, nil
	}, nil)
	if err == nil && (r.stat != nil || r.err == nil) {
		// Stored (or nothing to store): this value counts with it.
		sem.wrote = r.stat
		sem.limit.Store(limit)
	}
	if err = errors.Join(err, r.err); err != nil {
		return s.classify(ctx, err, distsync.ErrUnavailable, fmt.Sprintf("store the limit of %q and tell its waiters", sem.q.name))
	}
	return nil
}

// Path returns the semaphore's node.
func (sem *Semaphore) Path() string { return sem.q.path }

// Session returns the Session the Semaphore was opened from.
func (sem *Semaphore) Session() *Session { return sem.q.s }

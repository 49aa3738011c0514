package zksync

import (
	"context"
	"errors"
	"strconv"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// permitKind is the kind in a Semaphore's node names.
const permitKind = "permit"

// Semaphore is a distributed counting semaphore on ZooKeeper: the limit
// oldest nodes hold a permit. Its limit is stored as the data of its node
// (decimal) and checked by every client. It is safe for concurrent use;
// every call is a separate acquisition.
type Semaphore struct {
	q     *queue
	limit int64
}

var _ distsync.Semaphore = (*Semaphore)(nil)

// NewSemaphore returns the semaphore called name with the given limit on
// session s. It stores the limit on the semaphore's node, creating the node
// if needed, and fails with distsync.ErrLimitMismatch if another limit is
// stored. It also fails with distsync.ErrInvalidName,
// distsync.ErrInvalidConfig (a nil session, a limit below 1) or
// distsync.ErrUnavailable (wrapping ctx.Err() when ctx ended). The node is
// a container: ZooKeeper deletes it, and the stored limit with it, once it
// has had children and has none left.
func NewSemaphore(ctx context.Context, s *Session, name string, limit int64) (*Semaphore, error) {
	if limit < 1 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d, want at least 1", limit)
	}
	q, err := newQueue(s, name)
	if err != nil {
		return nil, err
	}
	sem := &Semaphore{q: q, limit: limit}
	q.parentData = []byte(strconv.FormatInt(limit, 10))
	q.checkParent = sem.checkLimit
	if err := q.ensureParents(ctx); err != nil {
		if ctx.Err() != nil { // as documented: not an acquisition
			return nil, distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), ignoreCtx(ctx, err)), "store the limit of %q", q.path)
		}
		return nil, q.fail(ctx, err, "store the limit of %q", q.path)
	}
	return sem, nil
}

// checkLimit compares a stored limit with ours, and stores ours on a node
// without one (created by someone who is not a Semaphore).
func (sem *Semaphore) checkLimit(ctx context.Context, data []byte, version int32) error {
	if len(data) == 0 {
		s := sem.q.s
		var err error
		data, err = call(ctx, s, func() ([]byte, error) {
			_, err := s.conn.Set(sem.q.path, sem.q.parentData, version)
			if errors.Is(err, zk.ErrBadVersion) {
				data, _, err := s.conn.Get(sem.q.path)
				return data, err
			}
			return sem.q.parentData, err
		}, nil)
		if err != nil || len(data) == 0 {
			return err
		}
	}
	stored, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return distsync.Errorf(distsync.ErrLimitMismatch, err, "%s holds %q, not a semaphore limit", sem.q.path, data)
	}
	if stored != sem.limit {
		return distsync.Errorf(distsync.ErrLimitMismatch, nil, "%s has limit %d, opened with %d", sem.q.path, stored, sem.limit)
	}
	return nil
}

// Limit returns the limit the semaphore was opened with.
func (sem *Semaphore) Limit() int64 { return sem.limit }

// Acquire blocks until a permit is held or ctx ends. It waits for the
// deletion of any of the limit next older nodes, so a release wakes at most
// limit waiters. On failure or cancellation nothing is left behind, within
// distsync.CancelGrace after ctx ended when ZooKeeper answers (see
// Mutex.Lock); the errors are those of Mutex.Lock, plus
// distsync.ErrLimitMismatch when the semaphore's node was re-created with
// another limit.
func (sem *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return lease(sem.q.acquire(ctx, counting(permitKind, int(sem.limit)), nil, false))
}

// TryAcquire takes a permit only if one is free and nobody waits; otherwise
// it returns an error wrapping distsync.ErrWouldBlock and leaves nothing
// behind.
func (sem *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return lease(sem.q.acquire(ctx, counting(permitKind, int(sem.limit)), nil, true))
}

// Path returns the semaphore's node.
func (sem *Semaphore) Path() string { return sem.q.path }

// Session returns the session the semaphore's nodes belong to.
func (sem *Semaphore) Session() *Session { return sem.q.s }

// TODO(issue 13): weighted acquisitions and SetLimit; stubs keep the tree
// building while they are written.

// AcquireN is not implemented yet.
func (sem *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "AcquireN not implemented")
}

// TryAcquireN is not implemented yet.
func (sem *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "TryAcquireN not implemented")
}

// SetLimit is not implemented yet.
func (sem *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	return distsync.Errorf(distsync.ErrInvalidConfig, nil, "SetLimit not implemented")
}

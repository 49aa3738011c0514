package etcdq

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// A Queue is the waiter queue of one name on one session: every
// acquisition is a key under Prefix(name) bound to the session's lease, and
// keys are served in create-revision order.
type Queue struct {
	s      *concurrency.Session
	c      *clientv3.Client
	prefix string

	h       *health        // the session lease's renewals, shared by all its queues
	bg      sync.WaitGroup // background removals and stream reaping
	reaping atomic.Bool    // a reapStream is under way

	tmu     sync.Mutex     // guards the tombstones to delete (see forget)
	tdue    []dueTombstone // in order of due time
	timer   *time.Timer    // deletes the due tombstones
	tclosed bool           // Close stopped the deletions
	owned   bool           // the session was created by Open and ends with Close

	closeOnce sync.Once // an owned session is revoked once; later Closes return that result
	closeErr  error
}

// New returns the queue of name on session s. It validates name and fails
// with ErrInvalidName or ErrInvalidConfig; it does no I/O.
func New(s *concurrency.Session, name string) (*Queue, error) {
	if s == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd session")
	}
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	return &Queue{s: s, c: s.Client(), prefix: Prefix(name), h: healthOf(s)}, nil
}

// Open returns the queue of name on a new session of client c with the
// given TTL; the queue owns the session and Close ends it. Nothing is left
// behind on failure.
func Open(ctx context.Context, c *clientv3.Client, name string, ttl time.Duration) (*Queue, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	s, err := NewSession(ctx, c, ttl)
	if err != nil {
		return nil, err
	}
	q, err := New(s, name)
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	q.owned = true
	return q, nil
}

// Close ends the session if Open created it (revoking its lease, which
// ends every lease taken through it), then waits for background removals:
// they end when their key is gone or the session ends. The session is
// ended once: a later Close returns the first one's result.
func (q *Queue) Close() error {
	q.stopForgetting()
	var err error
	if q.owned {
		q.closeOnce.Do(func() {
			if cerr := q.s.Close(); cerr != nil {
				q.closeErr = distsync.Errorf(distsync.ErrUnavailable, cerr, "revoke session lease")
			}
		})
		err = q.closeErr
	}
	q.bg.Wait()
	return err
}

// Prefix returns the key prefix under which the queue's keys live.
func (q *Queue) Prefix() string { return q.prefix }

// Session returns the session the queue's keys are bound to.
func (q *Queue) Session() *concurrency.Session { return q.s }

// A Class says where an acquisition's key goes, under the queue's prefix,
// and which keys it waits for: the older keys under the prefix plus Wait.
type Class struct {
	Sub  string // appended to the prefix for the key; "" or ending in "/"
	Wait string // appended to the prefix: the keys that block this class
}

// Exclusive waits for every older key: a mutex, a writer, a candidate.
var Exclusive = Class{}

// Acquire enqueues a key of class c holding value and blocks until no
// older key of the keys c waits for is left, then returns the held Lease.
// On failure or cancellation the key is removed (in the background if the
// backend does not answer in time) and the error wraps ErrNotAcquired and
// ctx.Err(), ErrLost or ErrUnavailable.
func (q *Queue) Acquire(ctx context.Context, c Class, value string) (*Lease, error) {
	if err := q.alive(ctx); err != nil {
		return nil, err
	}
	key := newKey(q.prefix+c.Sub, q.s.Lease())
	wait := q.prefix + c.Wait
	resp, err := q.enqueue(ctx, key, value, wait)
	if err != nil {
		q.abandonAfter(ctx, key)
		return nil, q.fail(ctx, err, "enqueue")
	}
	if !resp.Succeeded {
		return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "enqueue: key %q already used", key)
	}
	rev := resp.Header.Revision
	var pred *mvccpb.KeyValue
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if kv.CreateRevision < rev {
			pred = kv
			break
		}
	}
	if pred == nil {
		return q.hold(ctx, key, rev, nil, rev+1)
	}
	own, err := q.waitFirst(ctx, key, rev, wait, pred)
	if err != nil {
		q.removeAfter(ctx, key, rev)
		return nil, err
	}
	return q.hold(ctx, key, rev, own, 0)
}

// enqueue creates key, unless it exists or was abandoned, and reads the
// two newest keys under wait: the newest older than ours is the one we
// wait for (ours may be among them).
func (q *Queue) enqueue(ctx context.Context, key, value, wait string) (*clientv3.TxnResponse, error) {
	return q.c.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
	).Then(
		clientv3.OpPut(key, value, clientv3.WithLease(q.s.Lease())),
		clientv3.OpGet(wait, clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(2)),
	).Commit()
}

// TryAcquire takes a key of class c only if none of the keys c waits for
// exists, in one Txn; otherwise it returns ErrWouldBlock and writes nothing.
func (q *Queue) TryAcquire(ctx context.Context, c Class, value string) (*Lease, error) {
	if err := q.alive(ctx); err != nil {
		return nil, err
	}
	key := newKey(q.prefix+c.Sub, q.s.Lease())
	resp, err := q.c.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(q.prefix+c.Wait), "=", 0).WithPrefix(),
		clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
	).Then(
		clientv3.OpPut(key, value, clientv3.WithLease(q.s.Lease())),
	).Commit()
	if err != nil {
		q.abandonAfter(ctx, key)
		return nil, q.fail(ctx, err, "try-acquire")
	}
	if !resp.Succeeded {
		return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.prefix)
	}
	return q.hold(ctx, key, resp.Header.Revision, nil, resp.Header.Revision+1)
}

// alive fails fast when the session has already ended, or when its lease
// can no longer be trusted (see health); for the first use of a session
// this package did not grant, it waits until the lease's deadline is known.
func (q *Queue) alive(ctx context.Context) error {
	select {
	case <-q.s.Done():
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd session ended")
	default:
	}
	if ctx.Err() != nil {
		return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
	}
	return q.h.ready(ctx)
}

// Flat returns an error with err's message that wraps nothing, for an
// error that already wraps a sentinel and becomes the detail of another:
// every error of the contract wraps exactly one sentinel.
func Flat(err error) error {
	if err == nil {
		return nil
	}
	return errors.New(err.Error())
}

// fail turns an RPC error into a contract error.
func (q *Queue) fail(ctx context.Context, err error, op string) error {
	switch {
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), err), "%s", op)
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return distsync.Errorf(distsync.ErrLost, err, "%s: session lease expired", op)
	default:
		return distsync.Errorf(distsync.ErrUnavailable, err, "%s", op)
	}
}

// check asks, in one Txn, whether key (created at rev) is still there and
// which is the newest key under wait older than it. first is true when
// there is none.
//
// With at > 0, a revision at which the waiter saw its predecessor deleted,
// the read is serializable at revision at: no quorum round. That is enough
// because being first is monotone. Keys are created at ever higher
// revisions, so if no key under wait older than ours existed at revision
// at, none exists at any later one; and the comparison, run at the member's
// revision, which is at least at (else the read fails), shows our key still
// there then. A later deletion of our key is the Lease's to report, from
// the own-key watch the waiter hands it. Such a read fails on a member that
// has not applied revision at yet, or after a compaction; the caller then
// asks again with at = 0.
func (q *Queue) check(ctx context.Context, key string, rev int64, wait string, at int64) (first bool, pred *mvccpb.KeyValue, err error) {
	read := append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))
	if at > 0 {
		read = append(read, clientv3.WithRev(at), clientv3.WithSerializable())
	}
	// A member without a leader answers at once instead of after its
	// request timeout, and the waiter retries elsewhere or later.
	resp, err := q.c.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", rev),
	).Then(
		clientv3.OpGet(wait, read...),
	).Commit()
	if err != nil {
		return false, nil, q.fail(ctx, err, "check queue")
	}
	if !resp.Succeeded {
		return false, nil, distsync.Errorf(distsync.ErrLost, nil, "waiter key %q was deleted", key)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return true, nil, nil
	}
	return false, kvs[0], nil
}

// hold turns an acquired key into a Lease that follows it.
// Without own, the Lease's follower watches key from revision from on.
// A key acquired after the session's renewal deadline passed is removed
// and the acquisition fails with ErrLost: its Lease would be lost at once.
func (q *Queue) hold(ctx context.Context, key string, rev int64, own *keyWatch, from int64) (*Lease, error) {
	if err := q.h.check(time.Now()); err != nil {
		own.stop()
		q.removeAfter(ctx, key, rev)
		return nil, err
	}
	return newLease(q, key, rev, own, from), nil
}

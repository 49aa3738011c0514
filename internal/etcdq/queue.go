package etcdq

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A Queue is the waiter queue of one name on one Session: every
// acquisition is a key under Prefix(name) bound to the Session's current
// lease, and keys are served in create-revision order.
type Queue struct {
	src     *Session
	c       *clientv3.Client
	name    string
	prefix  string
	limited bool         // a semaphore's: its limit key goes with its last key
	reaping atomic.Bool  // a reapStream is under way
	rtt     atomic.Int64 // the last acquisition's write round trip, in ns (see followDelay)

	spareMu sync.Mutex
	spare   []spareKey // keys released cleanly, for reuse (see takeKey)
}

// NewQueue returns the queue of name on src. It validates name and fails
// with ErrInvalidName or ErrInvalidConfig; it does no I/O.
func NewQueue(src *Session, name string) (*Queue, error) {
	if src == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd session")
	}
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	return &Queue{src: src, c: src.c, name: name, prefix: src.keyPrefix + Prefix(name)}, nil
}

// Prefix returns the key prefix under which the queue's keys live.
func (q *Queue) Prefix() string { return q.prefix }

// Name returns the name of the queue.
func (q *Queue) Name() string { return q.name }

// Session returns the Session the queue takes its leases from.
func (q *Queue) Session() *Session { return q.src }

// A Class says where an acquisition's key goes, under the queue's prefix,
// and which keys it waits for: the older keys under the prefix plus Wait.
type Class struct {
	Sub  string // appended to the prefix for the key: no "/", so keys stay direct children
	Wait string // appended to the prefix: the keys that block this class
	// Confirm makes every acquisition that waited end with one Txn that
	// finds its own key there and no older one, after the last older key
	// went: a candidate's promise never to lead after its lease died.
	// Without it, a waiter that knows its predecessor to be the oldest key
	// holds on that key's deletion event (see waitFirst).
	Confirm bool
}

// Exclusive waits for every older key: a mutex, a writer.
var Exclusive = Class{}

// Candidate is Exclusive for an election's candidate: it confirms.
var Candidate = Class{Confirm: true}

// Acquire enqueues a key of class c holding value and blocks until no
// older key of the keys c waits for is left, then returns the held Lease.
// On failure or cancellation the key is removed (in the background if the
// backend does not answer in time) and the error wraps ErrNotAcquired and
// ctx.Err(), ErrLost, ErrClosed, ErrDenied or ErrUnavailable.
//
// The call is recorded as one acquire call of t, the primitive's telemetry
// target.
func (q *Queue) Acquire(ctx context.Context, t *telemetry.Target, c Class, value string) (*Lease, error) {
	op := t.Begin(ctx, true)
	l, err := q.acquire(ctx, t, c, value)
	end(ctx, op, l, err)
	return l, err
}

func (q *Queue) acquire(ctx context.Context, t *telemetry.Target, c Class, value string) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		e, err := q.src.epoch(ctx)
		if err != nil {
			return nil, err
		}
		key := q.takeKey(q.prefix+c.Sub, e)
		wait := q.prefix + c.Wait
		sent := time.Now()
		resp, err := q.enqueue(ctx, e, key, value, wait)
		q.noteRTT(sent)
		if err != nil {
			if q.leaseGone(e, err) && attempt == 0 && !q.src.IsFixed() {
				continue // the next try grants a new lease
			}
			q.abandonAfter(ctx, e, key, err)
			return nil, q.fail(ctx, err, "enqueue")
		}
		if !resp.Succeeded {
			return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "enqueue: key %q already used", key)
		}
		rev := resp.Header.Revision
		read := resp.Responses[1].GetResponseRange()
		older, err := scanN(ctx, q.c, q.prefix, wait, true, rev-1, rev, read, 2)
		if err != nil {
			q.removeAfter(ctx, e, key, rev)
			return nil, q.fail(ctx, err, "read queue")
		}
		if len(older) == 0 {
			return q.hold(ctx, e, key, rev, nil, rev+1)
		}
		own, err := q.waitFirst(ctx, t, e, key, rev, wait, c.Confirm, newView(older, read.Count, rev))
		if err != nil {
			q.removeAfter(ctx, e, key, rev)
			return nil, q.src.closedErr(err)
		}
		return q.hold(ctx, e, key, rev, own, 0)
	}
}

// end records the end of an acquire call begun with op.
func end(ctx context.Context, op telemetry.Op, l *Lease, err error) {
	if err != nil {
		op.End(ctx, nil, 0, err)
		return
	}
	op.End(ctx, l, l.Token(), nil)
}

// leaseGone reports whether err says that e's lease no longer exists (it
// was revoked or expired before its renewals noticed), and ends e then:
// an acquisition whose first request fails so tries once more, on a new
// lease of a renewing Session. Nothing was written: a Txn that puts a key
// on a missing lease fails whole.
func (q *Queue) leaseGone(e *epoch, err error) bool {
	if !isLeaseGone(err) {
		return false
	}
	e.finish(distsync.Lost(distsync.LossSessionEnded, nil, "session lease %x expired or was revoked", int64(e.id)), false)
	return true
}

// enqueue creates key, unless it exists or was abandoned, and reads the
// three newest keys under wait: ours, the one we wait for and the one
// before it (see waitFirst), when no deeper keys are among them.
func (q *Queue) enqueue(ctx context.Context, e *epoch, key, value, wait string) (*clientv3.TxnResponse, error) {
	return q.c.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
	).Then(
		clientv3.OpPut(key, value, clientv3.WithLease(e.id)),
		clientv3.OpGet(wait, clientv3.WithPrefix(),
			clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(3)),
	).Commit()
}

// TryAcquire takes a key of class c only if none of the keys c waits for
// exists; otherwise it returns ErrWouldBlock and writes nothing. The call
// is recorded as one acquire call of t.
func (q *Queue) TryAcquire(ctx context.Context, t *telemetry.Target, c Class, value string) (*Lease, error) {
	op := t.Begin(ctx, false)
	l, err := q.tryAcquire(ctx, c, value)
	end(ctx, op, l, err)
	return l, err
}

func (q *Queue) tryAcquire(ctx context.Context, c Class, value string) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		e, err := q.src.epoch(ctx)
		if err != nil {
			return nil, err
		}
		key := q.takeKey(q.prefix+c.Sub, e)
		sent := time.Now()
		resp, err := q.tryPut(ctx, e, c, key, value)
		q.noteRTT(sent)
		if err != nil {
			if q.leaseGone(e, err) && attempt == 0 && !q.src.IsFixed() {
				continue
			}
			q.abandonAfter(ctx, e, key, err)
			return nil, q.fail(ctx, err, "try-acquire")
		}
		if resp == nil {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.name)
		}
		return q.hold(ctx, e, key, resp.Header.Revision, nil, resp.Header.Revision+1)
	}
}

// tryPut creates key holding value if no contender under the keys c waits
// for exists, and returns nil (having written nothing) if one does. The
// first Txn asks etcd whether the range is empty; keys of deeper names or
// control keys there make it read the range and filter it, then create
// key only if nothing in the range changed since that read.
func (q *Queue) tryPut(ctx context.Context, e *epoch, c Class, key, value string) (*clientv3.TxnResponse, error) {
	wait := q.prefix + c.Wait
	start, end := wait, clientv3.GetPrefixRangeEnd(wait)
	if c.Wait == "" {
		start, end = contenders(q.prefix)
	}
	put := clientv3.OpPut(key, value, clientv3.WithLease(e.id))
	fresh := clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0)
	resp, err := q.c.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(start), "=", 0).WithRange(end), fresh,
	).Then(put).Else(clientv3.OpGet(wait, clientv3.WithPrefix(), clientv3.WithKeysOnly())).Commit()
	for attempt := 0; err == nil && !resp.Succeeded; attempt++ {
		for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
			if isContender(q.prefix, kv.Key) {
				return nil, nil
			}
		}
		if attempt > 100 {
			return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "try-acquire: %q keeps changing", q.name)
		}
		rev := resp.Header.Revision
		resp, err = q.c.Txn(ctx).If(
			clientv3.Compare(clientv3.ModRevision(start), "<", rev+1).WithRange(end), fresh,
		).Then(put).Else(clientv3.OpGet(wait, clientv3.WithPrefix(), clientv3.WithKeysOnly())).Commit()
	}
	return resp, err
}

// A queueView is what one read of the queue showed a waiter: the newest
// keys under its wait prefix older than its own (the one it waits for
// first, then the one before that; none when it is first), how many keys
// the range held then (older, newer and of deeper names alike), and the
// revision of the read. It keeps the keys' names only, copied: a waiter
// holds its view for as long as it waits, and the KeyValues would keep
// their values and the decoded messages around them alive as well.
type queueView struct {
	older [2]string // "" past the last one
	count int64
	at    int64
}

// newView copies the names of older (at most two) into a view.
func newView(older []*mvccpb.KeyValue, count, at int64) queueView {
	v := queueView{count: count, at: at}
	for i, kv := range older[:min(len(older), len(v.older))] {
		v.older[i] = string(kv.Key)
	}
	return v
}

// pred returns the key the waiter waits for, or "" when it is first.
func (v queueView) pred() string { return v.older[0] }

// pred2 returns the key before pred, or "" when pred is the oldest.
func (v queueView) pred2() string { return v.older[1] }

// checkPage is how many keys the check's first read returns: the two it
// needs and one more, as the enqueue reads. Keys of deeper names or control
// keys among them make scanN read further pages; a full page of 64 keys,
// with their values, was read and thrown away at every check of a long
// queue.
const checkPage = 3

// check asks, in one Txn, whether key (created at rev) is still there and
// which are the two newest keys under wait older than it (none: it is
// first).
//
// With at > 0, a revision at which the waiter saw a key older than its own
// deleted, the read is serializable at revision at: no quorum round. That
// is enough because being first (or second) is monotone. Keys are created
// at ever higher revisions, so the keys older than ours only ever go: if
// none (or one) existed at revision at, none (or at most that one) exists
// at any later one; and the comparison, run at the member's revision,
// which is at least at (else the read fails), shows our key still there
// then. A later deletion of our key is the Lease's to report, from the
// own-key watch the waiter hands it. Such a read fails on a member that
// has not applied revision at yet, or after a compaction; the caller then
// asks again with at = 0.
func (q *Queue) check(ctx context.Context, key string, rev int64, wait string, at int64) (queueView, error) {
	read := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithMaxCreateRev(rev - 1),
		clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend), clientv3.WithLimit(checkPage)}
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
		return queueView{}, q.fail(ctx, err, "check queue")
	}
	if !resp.Succeeded {
		// The reason is read even if ctx just ended: the key is gone.
		return queueView{}, q.deletedErr(context.WithoutCancel(ctx), nil, key, "waiter key")
	}
	if at == 0 {
		at = resp.Header.Revision
	}
	page := resp.Responses[0].GetResponseRange()
	older, err := scanN(ctx, q.c, q.prefix, wait, true, rev-1, at, page, 2)
	if err != nil {
		return queueView{}, q.fail(ctx, err, "check queue")
	}
	return newView(older, page.Count, at), nil
}

// hold turns an acquired key into a Lease that follows it.
// Without own, the Lease's follower watches key from revision from on.
// A key acquired after the lease's renewal deadline passed is removed
// and the acquisition fails with ErrLost: its Lease would be lost at once.
func (q *Queue) hold(ctx context.Context, e *epoch, key string, rev int64, own *keyWatch, from int64) (*Lease, error) {
	if err := e.h.check(time.Now()); err != nil {
		own.stop()
		q.removeAfter(ctx, e, key, rev)
		return nil, err
	}
	l, err := newLease(q, e, key, rev, own, from)
	if err != nil {
		own.stop() // the Session closed: its lease, and the key, are revoked
		return nil, err
	}
	return l, nil
}

package etcdq

import (
	"context"
	"errors"
	"time"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cleanupTimeout bounds one attempt to remove a waiter key after the
// caller's context ended; past it the removal goes on in the background.
const cleanupTimeout = 5 * time.Second

// remove deletes key if it is still the one created at rev (P9), with
// a context of its own: the caller's may have ended.
func (q *Queue) remove(ctx context.Context, key string, rev int64) error {
	op := func(ctx context.Context) error {
		_, err := q.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
			Then(clientv3.OpDelete(key)).Commit()
		return err
	}
	return q.retry(ctx, op)
}

// removeAfter is remove after a failed acquisition, bounded by afterCtx.
func (q *Queue) removeAfter(ctx context.Context, key string, rev int64) {
	ctx, cancel := afterCtx(ctx)
	defer cancel()
	_ = q.remove(ctx, key, rev)
}

// abandonAfter is abandon after a failed enqueue, bounded by afterCtx.
func (q *Queue) abandonAfter(ctx context.Context, key string) {
	ctx, cancel := afterCtx(ctx)
	defer cancel()
	q.abandon(ctx, key)
}

// afterCtx bounds the foreground cleanup of a failed acquisition, so that
// the call returns at most distsync.CancelGrace past the end of ctx: the
// grace after ctx's deadline or cancellation, else cleanupTimeout. What
// is not confirmed by then goes on in the background (see retry).
func afterCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	end := time.Now().Add(cleanupTimeout)
	if d, ok := ctx.Deadline(); ok {
		end = minTime(end, d.Add(distsync.CancelGrace))
	}
	if ctx.Err() != nil {
		end = minTime(end, time.Now().Add(distsync.CancelGrace))
	}
	return context.WithDeadline(context.WithoutCancel(ctx), end)
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// abandon removes key after an enqueue whose outcome is unknown, and
// leaves a tombstone (bound to the session lease) so that the enqueue,
// should it still be applied later, finds it and writes nothing.
//
// The tombstone is deleted once no late enqueue can land any more (see
// forget), so that a session used for hours, with waits cancelled often,
// does not pile tombstones up; the end of the session deletes it sooner.
func (q *Queue) abandon(ctx context.Context, key string) {
	op := func(ctx context.Context) error {
		_, err := q.c.Txn(ctx).Then(
			clientv3.OpDelete(key),
			clientv3.OpPut(tombstone(key), "", clientv3.WithLease(q.s.Lease())),
		).Commit()
		return err
	}
	if q.retry(ctx, op) == nil {
		q.forget(tombstone(key))
	}
}

// forget deletes tombstone once the session's TTL plus tombstoneGrace
// have passed. That is long enough: a late enqueue puts its key on the
// session lease, so it can land only while that lease is renewed, which
// takes a working connection; a working connection delivers what it
// carries at once, and etcd stops processing a request after its request
// timeout. The deletions of a queue are batched on one timer; Close stops
// it, and the session's end deletes what is left.
func (q *Queue) forget(tombstone string) {
	q.tmu.Lock()
	defer q.tmu.Unlock()
	if q.tclosed {
		return
	}
	q.tdue = append(q.tdue, dueTombstone{key: tombstone, at: time.Now().Add(q.tombstoneLinger())})
	if q.timer == nil {
		q.timer = time.AfterFunc(time.Until(q.tdue[0].at), q.deleteDue)
	}
}

type dueTombstone struct {
	key string
	at  time.Time
}

// deleteDue deletes the tombstones that are due, in one Txn, and sets the
// timer for the next.
func (q *Queue) deleteDue() {
	q.tmu.Lock()
	var ops []clientv3.Op
	for len(q.tdue) > 0 && !q.tdue[0].at.After(time.Now()) && len(ops) < 64 {
		ops = append(ops, clientv3.OpDelete(q.tdue[0].key))
		q.tdue = q.tdue[1:]
	}
	q.tmu.Unlock()
	ok := true
	if len(ops) > 0 && q.s.Ctx().Err() == nil {
		ctx, cancel := context.WithTimeout(q.s.Ctx(), attemptTimeout)
		_, err := q.c.Txn(ctx).Then(ops...).Commit()
		cancel()
		ok = err == nil
	}
	q.tmu.Lock()
	defer q.tmu.Unlock()
	next := time.Second // after a failure: try again
	if ok && len(q.tdue) > 0 {
		next = max(time.Until(q.tdue[0].at), 0)
	}
	if !ok {
		// Put them back at the front, to be deleted with the next batch.
		for i := len(ops) - 1; i >= 0; i-- {
			q.tdue = append([]dueTombstone{{key: string(ops[i].KeyBytes())}}, q.tdue...)
		}
	}
	switch {
	case q.tclosed || q.s.Ctx().Err() != nil || len(q.tdue) == 0:
		q.timer = nil
	default:
		q.timer = time.AfterFunc(next, q.deleteDue)
	}
}

// stopForgetting ends the deletion of tombstones: Close calls it, after
// which the session's end deletes them.
func (q *Queue) stopForgetting() {
	q.tmu.Lock()
	defer q.tmu.Unlock()
	q.tclosed = true
	if q.timer != nil {
		q.timer.Stop()
		q.timer = nil
	}
}

// tombstoneGrace is how much longer than the session's TTL a tombstone
// lives: more than etcd's default request timeout (5 s plus two election
// timeouts).
const tombstoneGrace = 8 * time.Second

// tombstoneLinger is how long a tombstone is kept.
func (q *Queue) tombstoneLinger() time.Duration {
	ttl := q.h.grantedTTL()
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return ttl + tombstoneGrace
}

// retry runs op once in the foreground, unless the session or the client
// has ended, and, if it fails while the session lives, again in the background with backoff until it succeeds or the
// session ends; an orphaned key would block the name for the session's life.
//
// The foreground attempt runs under ctx (bounded by cleanupTimeout).
func (q *Queue) retry(ctx context.Context, op func(context.Context) error) error {
	attempt := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		err := op(ctx)
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return nil // the lease is gone and its keys with it
		}
		return err
	}
	switch {
	case q.s.Ctx().Err() != nil:
		// The session has ended: its keys end with its lease, and a
		// request now could only wait on a closing client.
		return nil
	case q.c.Ctx().Err() != nil:
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd client closed; the key ends with the session lease")
	}
	err := attempt(ctx)
	if err == nil {
		return nil
	}
	if q.s.Ctx().Err() != nil {
		return distsync.Errorf(distsync.ErrUnavailable, err, "removal not confirmed; the key ends with the session lease")
	}
	q.bg.Add(1)
	go func() {
		defer q.bg.Done()
		backoff := 50 * time.Millisecond
		for {
			select {
			case <-q.s.Done():
				return
			case <-time.After(backoff):
			}
			if attempt(q.s.Ctx()) == nil {
				return
			}
			backoff = min(2*backoff, 2*time.Second)
		}
	}()
	return distsync.Errorf(distsync.ErrUnavailable, err, "removal not confirmed; retrying in the background")
}

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
// leaves a tombstone so that the enqueue, should it still be applied
// later, finds it and writes nothing.
//
// The tombstone lives on a lease of its own, granted for the session's TTL
// plus tombstoneGrace, and goes away by itself: a session used for hours,
// with waits cancelled often, would otherwise pile tombstones up until it
// ended. That is long enough: a late enqueue puts its key on the session
// lease, so it can land only while that lease is renewed, which takes a
// working connection; a working connection delivers what it carries at
// once, and etcd stops processing a request after its request timeout.
func (q *Queue) abandon(ctx context.Context, key string) {
	op := func(ctx context.Context) error {
		g, err := q.c.Grant(ctx, q.tombstoneTTL())
		if err != nil {
			return err
		}
		_, err = q.c.Txn(ctx).Then(
			clientv3.OpDelete(key),
			clientv3.OpPut(tombstone(key), "", clientv3.WithLease(g.ID)),
		).Commit()
		return err
	}
	_ = q.retry(ctx, op)
}

// tombstoneGrace is how much longer than the session's TTL a tombstone
// lives: more than etcd's default request timeout (5 s plus two election
// timeouts).
const tombstoneGrace = 8 * time.Second

// tombstoneTTL is the TTL of a tombstone's lease, in whole seconds.
func (q *Queue) tombstoneTTL() int64 {
	ttl := q.h.grantedTTL()
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return int64((ttl + tombstoneGrace + time.Second - 1) / time.Second)
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

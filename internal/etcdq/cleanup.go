package etcdq

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// cleanupTimeout bounds one attempt to remove a waiter key after the
// caller's context ended; past it the removal goes on in the background.
const cleanupTimeout = 5 * time.Second

// remove deletes key if it is still the one created at rev (P9), with
// a context of its own: the caller's may have ended. A semaphore's limit
// is deleted with its last key. When key is gone already, the marker a
// ForceRelease may have left for it is deleted instead, in the same Txn:
// a waiter cancelled as it was force-released leaves nothing behind.
func (q *Queue) remove(ctx context.Context, e *epoch, key string, rev int64) error {
	_, err := q.removeOwn(ctx, e, key, rev)
	return err
}

// removeOwn is remove that also reports whether this call deleted the key
// (it was still the one created at rev), confirmed before it returned.
func (q *Queue) removeOwn(ctx context.Context, e *epoch, key string, rev int64) (bool, error) {
	var deleted atomic.Bool // set by the foreground attempt; a late background one may write it too
	op := func(ctx context.Context) error {
		then := []clientv3.Op{clientv3.OpDelete(key)}
		if q.limited {
			start, end := contenders(q.prefix)
			then = append(then, clientv3.OpGet(start, clientv3.WithRange(end), clientv3.WithKeysOnly()))
		}
		resp, err := q.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).
			Then(then...).Else(clientv3.OpDelete(forcedKey(key))).Commit()
		if err == nil && resp.Succeeded {
			deleted.Store(true)
		}
		if err != nil || !q.limited {
			return err
		}
		if resp.Succeeded && len(filter(q.prefix, resp.Responses[1].GetResponseRange().Kvs)) > 0 {
			return nil // in use: the limit stays
		}
		return q.dropIdleLimit(ctx)
	}
	if err := q.retry(ctx, e, op); err != nil {
		return false, err
	}
	return deleted.Load(), nil
}

// dropIdleLimit deletes the semaphore's limit if no contender is left
// under its prefix: the limit is stored while the semaphore is in use, and
// only then. Keys of deeper names there are read and skipped; the limit is
// deleted only if nothing in the range changed since that read.
func (q *Queue) dropIdleLimit(ctx context.Context) error {
	start, end := contenders(q.prefix)
	resp, err := q.c.Txn(ctx).If(idle(q.prefix)).Then(clientv3.OpDelete(q.limitKey())).
		Else(clientv3.OpGet(start, clientv3.WithRange(end), clientv3.WithKeysOnly())).Commit()
	if err != nil || resp.Succeeded || len(filter(q.prefix, resp.Responses[0].GetResponseRange().Kvs)) > 0 {
		return err
	}
	_, err = q.c.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(start), "<", resp.Header.Revision+1).WithRange(end)).
		Then(clientv3.OpDelete(q.limitKey())).Commit()
	return err
}

// idle holds when no key exists under prefix but control keys: etcd
// compares an empty range as one empty key, whose create revision is 0.
// Keys of deeper names count, so idle is a cheap first test and callers
// that must skip them read the range.
func idle(prefix string) clientv3.Cmp {
	start, end := contenders(prefix)
	return clientv3.Compare(clientv3.CreateRevision(start), "=", 0).WithRange(end)
}

// removeAfter is remove after a failed acquisition, bounded by afterCtx.
func (q *Queue) removeAfter(ctx context.Context, e *epoch, key string, rev int64) {
	ctx, cancel := afterCtx(ctx)
	defer cancel()
	_ = q.remove(ctx, e, key, rev)
}

// abandonAfter is abandon after an enqueue that failed with err, bounded by
// afterCtx. An enqueue that etcd refused (permission denied, or its lease
// gone) wrote nothing and needs none.
func (q *Queue) abandonAfter(ctx context.Context, e *epoch, key string, err error) {
	if Denied(err) || isLeaseGone(err) {
		return
	}
	ctx, cancel := afterCtx(ctx)
	defer cancel()
	q.abandon(ctx, e, key)
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
// leaves a tombstone (bound to the lease) so that the enqueue, should it
// still be applied later, finds it and writes nothing.
//
// The tombstone is deleted once no late enqueue can land any more (see
// forget), so that a Session used for hours, with waits cancelled often,
// does not pile tombstones up; the end of the lease deletes it sooner.
func (q *Queue) abandon(ctx context.Context, e *epoch, key string) {
	op := func(ctx context.Context) error {
		_, err := q.c.Txn(ctx).Then(
			clientv3.OpDelete(key),
			clientv3.OpPut(tombstone(key), "", clientv3.WithLease(e.id)),
		).Commit()
		if err == nil && q.limited {
			err = q.dropIdleLimit(ctx)
		}
		return err
	}
	if q.retry(ctx, e, op) == nil {
		e.forget(tombstone(key))
	}
}

// forget deletes tombstone once the lease's TTL plus tombstoneGrace
// have passed. That is long enough: a late enqueue puts its key on the
// lease, so it can land only while that lease is renewed, which takes a
// working connection; a working connection delivers what it carries at
// once, and etcd stops processing a request after its request timeout.
// The deletions of a lease are batched on one timer; the lease's end
// stops it, and deletes what is left.
func (e *epoch) forget(tombstone string) {
	e.tmu.Lock()
	defer e.tmu.Unlock()
	if e.tclosed {
		return
	}
	e.tdue = append(e.tdue, dueTombstone{key: tombstone, at: time.Now().Add(e.tombstoneLinger())})
	if e.timer == nil {
		e.timer = time.AfterFunc(time.Until(e.tdue[0].at), e.deleteDue)
	}
}

type dueTombstone struct {
	key string
	at  time.Time
}

// deleteDue deletes the tombstones that are due, in one Txn, and sets the
// timer for the next. It runs as a goroutine of the Session.
func (e *epoch) deleteDue() {
	if !e.src.Go(e.deleteDueNow) {
		return
	}
}

func (e *epoch) deleteDueNow() {
	e.tmu.Lock()
	var ops []clientv3.Op
	for len(e.tdue) > 0 && !e.tdue[0].at.After(time.Now()) && len(ops) < 64 {
		ops = append(ops, clientv3.OpDelete(e.tdue[0].key))
		e.tdue = e.tdue[1:]
	}
	e.tmu.Unlock()
	ok := true
	if len(ops) > 0 && e.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(e.ctx, attemptTimeout)
		_, err := e.src.c.Txn(ctx).Then(ops...).Commit()
		cancel()
		ok = err == nil
	}
	e.tmu.Lock()
	defer e.tmu.Unlock()
	next := time.Second // after a failure: try again
	if ok && len(e.tdue) > 0 {
		next = max(time.Until(e.tdue[0].at), 0)
	}
	if !ok {
		if rec := e.src.Recorder(); rec.Enabled(e.ctx, slog.LevelWarn) {
			rec.Warn(e.ctx, "tombstone cleanup retrying", slog.Int("tombstones", len(ops)), slog.Duration("after", next))
		}
		// Put them back at the front, to be deleted with the next batch.
		for i := len(ops) - 1; i >= 0; i-- {
			e.tdue = append([]dueTombstone{{key: string(ops[i].KeyBytes())}}, e.tdue...)
		}
	}
	switch {
	case e.tclosed || e.ctx.Err() != nil || len(e.tdue) == 0:
		e.timer = nil
	default:
		e.timer = time.AfterFunc(next, e.deleteDue)
	}
}

// stopForgetting ends the deletion of tombstones: the lease's end (revoked,
// expired or given up) deletes them.
func (e *epoch) stopForgetting() {
	e.tmu.Lock()
	defer e.tmu.Unlock()
	e.tclosed = true
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
}

// tombstoneGrace is how much longer than the lease's TTL a tombstone
// lives: more than etcd's default request timeout (5 s plus two election
// timeouts).
const tombstoneGrace = 8 * time.Second

// tombstoneLinger is how long a tombstone is kept.
func (e *epoch) tombstoneLinger() time.Duration {
	ttl := e.h.grantedTTL()
	if ttl <= 0 {
		ttl = 10 * time.Second
	}
	return ttl + tombstoneGrace
}

// retry runs op once in the foreground, unless the lease or the client
// has ended, and, if it fails while the lease lives, again in the
// background with backoff until it succeeds or the lease ends; an orphaned
// key would block the name for the lease's life. A denied op is not
// retried. The foreground attempt runs under ctx (bounded by
// cleanupTimeout).
func (q *Queue) retry(ctx context.Context, e *epoch, op func(context.Context) error) error {
	attempt := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
		defer cancel()
		err := op(ctx)
		if isLeaseGone(err) {
			return nil // the lease is gone and its keys with it
		}
		return err
	}
	switch {
	case e.ctx.Err() != nil:
		// The lease has ended for us: its keys end with it (revoked,
		// expired, or given up and revoked), and a request now could
		// only wait on a closing client.
		return nil
	case q.c.Ctx().Err() != nil:
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd client closed; the key ends with the session lease")
	}
	err := attempt(ctx)
	switch {
	case err == nil:
		return nil
	case Denied(err):
		return distsync.Errorf(distsync.ErrDenied, err, "removal refused; the key ends with the session lease")
	case e.ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrUnavailable, err, "removal not confirmed; the key ends with the session lease")
	}
	rec := q.src.Recorder()
	last := err // the background's own: err is returned below
	background := func() {
		var b backoff.Backoff
		for n := 1; ; n++ {
			next := b.Next()
			if rec.Enabled(e.ctx, slog.LevelWarn) {
				rec.Warn(e.ctx, "cleanup retrying", slog.String("name", q.name), slog.Int("attempt", n),
					slog.Duration("after", next), slog.Any("error", last))
			}
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(next):
			}
			if last = attempt(e.ctx); last == nil || Denied(last) {
				return
			}
		}
	}
	if !q.src.Go(background) {
		return distsync.Errorf(distsync.ErrUnavailable, err, "removal not confirmed; the key ends with the session lease")
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, "removal not confirmed; retrying in the background")
}

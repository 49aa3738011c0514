package etcdq

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The counting side of the queue, for semaphores: a key's value is its
// weight, and a key holds when the weights of all older keys plus its own
// fit in the limit. Older keys are counted once; after that the waiter
// follows delete events of the prefix, so a
// release costs the waiters no round trip until one of them may proceed.

// LimitKey returns the key that stores the limit of the semaphore name
// while it is in use: "name/\x00limit". It lies under the name's prefix
// but is no contender, and no other name owns it (no valid name contains
// a NUL byte).
func LimitKey(name string) string { return limitKeyOf(Prefix(name)) }

func limitKeyOf(prefix string) string { return prefix + ctl + "limit" }

func (q *Queue) limitKey() string { return limitKeyOf(q.prefix) }

// NewSemaphoreQueue is NewQueue for a semaphore: its limit is stored while
// it is in use, and deleted with its last key (or, for the keys a renewing
// Session's Close revokes, by that Close).
func NewSemaphoreQueue(src *Session, name string) (*Queue, error) {
	q, err := NewQueue(src, name)
	if err != nil {
		return nil, err
	}
	q.limited = true
	if !src.IsFixed() {
		src.mu.Lock()
		src.semaphore[q.prefix] = true
		src.mu.Unlock()
	}
	return q, nil
}

// mismatch is the error of a limit that differs from the stored one.
func (q *Queue) mismatch(limit int64, stored []byte) error {
	return distsync.Errorf(distsync.ErrLimitMismatch, nil, "opened with limit %d, but semaphore %q stores limit %s", limit, q.name, stored)
}

// AcquireWeighted enqueues a key of weight w and blocks until the weights
// of the older keys plus w are at most the limit. The enqueue stores the
// limit when the semaphore is idle (replacing one left by expired
// holders); otherwise the stored limit must equal limit(), or the error
// wraps ErrLimitMismatch and nothing is written. A waiter follows the
// stored limit too, and fails with ErrLimitMismatch when it changes to
// another than limit(). Failure and cancellation leave nothing behind, as
// with Acquire.
//
// The call is recorded as one acquire call of t.
func (q *Queue) AcquireWeighted(ctx context.Context, t *telemetry.Target, limit func() int64, w int64) (*Lease, error) {
	op := t.Begin(ctx, true)
	l, err := q.acquireWeighted(ctx, t, limit, w)
	end(ctx, op, l, err)
	return l, err
}

func (q *Queue) acquireWeighted(ctx context.Context, t *telemetry.Target, limit func() int64, w int64) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		e, err := q.src.epoch(ctx)
		if err != nil {
			return nil, err
		}
		lim := limit()
		if w > lim {
			return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "cannot acquire %d permits of a semaphore with limit %d", w, lim)
		}
		key := q.takeKey(q.prefix, e)
		sent := time.Now()
		resp, err := q.enqueueWeighted(ctx, e, key, lim, w)
		q.noteRTT(sent)
		if err != nil {
			if q.leaseGone(e, err) && attempt == 0 && !q.src.IsFixed() {
				continue
			}
			q.abandonAfter(ctx, e, key, err)
			return nil, q.fail(ctx, err, "enqueue")
		}
		var got *etcdserverpb.RangeResponse
		if resp.Succeeded {
			got = resp.Responses[2].GetResponseRange()
		} else if inner := resp.Responses[0].GetResponseTxn(); inner.Succeeded {
			got = inner.Responses[1].GetResponseRange()
		} else {
			stored := inner.Responses[0].GetResponseRange().Kvs
			idleNow := len(filter(q.prefix, inner.Responses[1].GetResponseRange().Kvs)) == 0
			if len(stored) == 1 && !(idleNow && attempt < 2) {
				return nil, q.mismatch(lim, stored[0].Value)
			}
			if len(stored) == 1 { // a stale limit beside keys of deeper names
				if err := q.dropIdleLimit(ctx); err != nil {
					return nil, q.fail(ctx, err, "drop stale limit")
				}
				continue
			}
			// In use (by foreign keys?) with no limit stored: store it.
			if attempt > 2 {
				return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "enqueue: the limit of %q cannot be stored", q.name)
			}
			if _, err := q.c.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(q.limitKey()), "=", 0)).
				Then(clientv3.OpPut(q.limitKey(), strconv.FormatInt(lim, 10))).Commit(); err != nil {
				return nil, q.fail(ctx, err, "store limit")
			}
			continue
		}
		rev := resp.Header.Revision
		if olderWeight(filter(q.prefix, got.Kvs), rev)+w <= lim {
			return q.hold(ctx, e, key, rev, nil, rev+1)
		}
		own, err := q.waitWeight(ctx, t, e, key, rev, limit, w)
		if err != nil {
			q.removeAfter(ctx, e, key, rev)
			return nil, q.src.closedErr(err)
		}
		return q.hold(ctx, e, key, rev, own, 0)
	}
}

// enqueueWeighted creates key with weight w, unless it exists or was
// abandoned, in one Txn: if the semaphore is idle, with the limit lim
// stored beside it; otherwise only if the stored limit is lim (else it
// reads the stored limit). Either way it reads the keys under the prefix.
func (q *Queue) enqueueWeighted(ctx context.Context, e *epoch, key string, lim, w int64) (*clientv3.TxnResponse, error) {
	l := strconv.FormatInt(lim, 10)
	fresh := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
	}
	put := clientv3.OpPut(key, q.weightValue(w), clientv3.WithLease(e.id))
	start, end := contenders(q.prefix)
	read := clientv3.OpGet(start, clientv3.WithRange(end))
	return q.c.Txn(ctx).If(
		append([]clientv3.Cmp{idle(q.prefix)}, fresh...)...,
	).Then(
		clientv3.OpPut(q.limitKey(), l), put, read,
	).Else(
		clientv3.OpTxn(
			append([]clientv3.Cmp{clientv3.Compare(clientv3.Value(q.limitKey()), "=", l)}, fresh...),
			[]clientv3.Op{put, read},
			[]clientv3.Op{clientv3.OpGet(q.limitKey()), clientv3.OpGet(start, clientv3.WithRange(end), clientv3.WithKeysOnly())},
		),
	).Commit()
}

// TryAcquireWeighted takes a key of weight w only if the weights of all
// keys (holders and waiters) plus w fit in the limit; otherwise it returns
// ErrWouldBlock. It writes nothing unless it succeeds: it reads the keys
// and the stored limit, then creates its own key only if no key was
// created or changed since, storing the limit if the semaphore was idle.
// The call is recorded as one acquire call of t.
func (q *Queue) TryAcquireWeighted(ctx context.Context, t *telemetry.Target, lim, w int64) (*Lease, error) {
	op := t.Begin(ctx, false)
	l, err := q.tryAcquireWeighted(ctx, lim, w)
	end(ctx, op, l, err)
	return l, err
}

func (q *Queue) tryAcquireWeighted(ctx context.Context, lim, w int64) (*Lease, error) {
	for attempt := 0; ; attempt++ {
		e, err := q.src.epoch(ctx)
		if err != nil {
			return nil, err
		}
		key := q.takeKey(q.prefix, e)
		start, end := contenders(q.prefix)
		got, err := q.c.Txn(ctx).Then(
			clientv3.OpGet(start, clientv3.WithRange(end)),
			clientv3.OpGet(q.limitKey()),
		).Commit()
		if err != nil {
			return nil, q.fail(ctx, err, "read holders")
		}
		kvs := filter(q.prefix, got.Responses[0].GetResponseRange().Kvs)
		stored := got.Responses[1].GetResponseRange().Kvs
		l := strconv.FormatInt(lim, 10)
		ops := []clientv3.Op{clientv3.OpPut(key, q.weightValue(w), clientv3.WithLease(e.id))}
		// In use with no limit stored (foreign keys): store it.
		limitCmp := clientv3.Compare(clientv3.CreateRevision(q.limitKey()), "=", 0)
		switch {
		case len(kvs) == 0:
			// Idle: a stored limit is stale and is replaced.
			limitCmp = clientv3.Compare(clientv3.ModRevision(q.limitKey()), "<", got.Header.Revision+1)
		case len(stored) == 1 && string(stored[0].Value) != l:
			return nil, q.mismatch(lim, stored[0].Value)
		case len(stored) == 1:
			limitCmp = clientv3.Compare(clientv3.Value(q.limitKey()), "=", l)
		}
		if len(kvs) == 0 || len(stored) == 0 {
			ops = append(ops, clientv3.OpPut(q.limitKey(), l))
		}
		if olderWeight(kvs, got.Header.Revision+1)+w > lim {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q has no %d free permits of %d", q.name, w, lim)
		}
		resp, err := q.c.Txn(ctx).If(
			limitCmp,
			// Nothing created or changed since the read; deletions only free permits.
			clientv3.Compare(clientv3.ModRevision(start), "<", got.Header.Revision+1).WithRange(end),
			clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
		).Then(ops...).Commit()
		if err != nil {
			if q.leaseGone(e, err) && attempt == 0 && !q.src.IsFixed() {
				continue
			}
			q.abandonAfter(ctx, e, key, err)
			return nil, q.fail(ctx, err, "try-acquire")
		}
		if resp.Succeeded {
			return q.hold(ctx, e, key, resp.Header.Revision, nil, resp.Header.Revision+1)
		}
		if attempt > 100 {
			return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "try-acquire: %q keeps changing", q.name)
		}
	}
}

// CheckLimit fails with ErrLimitMismatch if the semaphore is in use with a
// stored limit other than limit. It writes nothing.
func (q *Queue) CheckLimit(ctx context.Context, limit int64) error {
	resp, err := q.c.Txn(ctx).If(idle(q.prefix)).Else(clientv3.OpGet(q.limitKey())).Commit()
	if err != nil {
		return RPCError(ctx, q.c, err, fmt.Sprintf("read the stored limit of %q", q.name))
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) != strconv.FormatInt(limit, 10) {
		return q.mismatch(limit, kvs[0].Value)
	}
	return nil
}

// SetLimit replaces the stored limit with limit if the semaphore is in
// use; an idle semaphore stores nothing.
func (q *Queue) SetLimit(ctx context.Context, limit int64) error {
	if q.src.IsFixed() {
		if _, err := q.src.epoch(ctx); err != nil && !errors.Is(err, distsync.ErrLost) {
			return err
		}
	} else if q.src.Closed() {
		return errClosed()
	}
	_, err := q.c.Txn(ctx).If(idle(q.prefix)).Else(clientv3.OpPut(q.limitKey(), strconv.FormatInt(limit, 10))).Commit()
	if err != nil {
		return RPCError(ctx, q.c, err, fmt.Sprintf("store the limit of %q", q.name))
	}
	return nil
}

// olderWeight sums the weights of the keys created before rev.
func olderWeight(kvs []*mvccpb.KeyValue, rev int64) int64 {
	var sum int64
	for _, kv := range kvs {
		if kv.CreateRevision < rev {
			sum += weight(kv)
		}
	}
	return sum
}

// weightValue is the value of a semaphore key of weight w: the weight, a
// space and the holder's identity ("2 host:4711").
func (q *Queue) weightValue(w int64) string {
	return strconv.FormatInt(w, 10) + " " + q.src.Identity()
}

// weight is a key's weight: its value up to the first space (the rest is
// the holder's identity); a key without one (a foreign key under the
// prefix) counts as one permit.
func weight(kv *mvccpb.KeyValue) int64 {
	v, _, _ := strings.Cut(string(kv.Value), " ")
	w, err := strconv.ParseInt(v, 10, 64)
	if err != nil || w < 1 {
		return 1
	}
	return w
}

// waitWeight blocks until the weight of the keys older than key plus w is
// at most limit(). It counts them at the start revision of a synced prefix
// watch and then follows that watch's delete events; the watch also
// reports the deletion of key itself. A second watch follows the stored
// limit: a change to another value than limit() fails with
// ErrLimitMismatch. It returns the prefix watch, which has reported every
// deletion since the count and goes on doing so, for the Lease to follow
// key with: a waiter that acquires sets up no watch of its own key.
func (q *Queue) waitWeight(ctx context.Context, t *telemetry.Target, e *epoch, key string, rev int64, limit func() int64, w int64) (*keyWatch, error) {
	rw := e.watchRenewal()
	defer rw.stop()
	var b backoff.Backoff
	for {
		own, err := q.countFrom(ctx, e, key, rev, limit, w, rw)
		if err == nil {
			return own, nil
		}
		if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
			return nil, err
		}
	}
}

// countFrom is one attempt of waitWeight: it returns the prefix watch for
// the Lease, or an error (ErrUnavailable when a watch broke and the count
// must be made again).
func (q *Queue) countFrom(ctx context.Context, e *epoch, key string, rev int64, limit func() int64, w int64, rw *renewalWatch) (*keyWatch, error) {
	pw, err := q.watchPrefix(ctx, e)
	if err != nil {
		return nil, err
	}
	held := false
	defer func() {
		if !held {
			pw.stop()
		}
	}()
	lw, _, err := q.watchOpts(ctx, e, q.limitKey(), clientv3.WithFilterDelete())
	if err != nil {
		return nil, err
	}
	defer lw.stop()
	got, err := q.c.Txn(ctx).Then(
		clientv3.OpGet(q.prefix, clientv3.WithPrefix(), clientv3.WithRev(pw.start)),
		clientv3.OpGet(q.limitKey()),
	).Commit()
	if err != nil {
		return nil, q.fail(ctx, err, "count holders")
	}
	lim := limit()
	if kvs := got.Responses[1].GetResponseRange().Kvs; len(kvs) == 1 {
		if lim, err = q.followLimit(lim, limit, w, kvs[0].Value); err != nil {
			return nil, err
		}
	}
	// The older keys and their weights, at the watch's start; only their
	// deletion can make room, so put events are not even sent.
	older := make(map[string]int64)
	var sum int64
	present := false
	for _, kv := range got.Responses[0].GetResponseRange().Kvs {
		switch {
		case string(kv.Key) == key && kv.CreateRevision == rev:
			present = true
		case kv.CreateRevision < rev && isContender(q.prefix, kv.Key):
			older[string(kv.Key)] = weight(kv)
			sum += weight(kv)
		}
	}
	if !present {
		return nil, q.waiterDeleted(e, key)
	}
	for sum+w > lim {
		select {
		case <-ctx.Done():
			return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for permits")
		case <-e.ctx.Done():
			return nil, e.waitErr()
		case <-rw.changed:
			if err := rw.check(); err != nil {
				return nil, err
			}
		case <-rw.expiry:
			if err := rw.check(); err != nil {
				return nil, err
			}
		case wr, ok := <-lw.ch:
			if err := watchBroken(wr, ok, "limit watch ended"); err != nil {
				return nil, err
			}
			for _, ev := range wr.Events {
				if lim, err = q.followLimit(lim, limit, w, ev.Kv.Value); err != nil {
					return nil, err
				}
			}
		case wr, ok := <-pw.ch:
			if err := watchBroken(wr, ok, "prefix watch ended"); err != nil {
				return nil, err
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if k == key {
					return nil, q.waiterDeleted(e, key)
				}
				if w, ok := older[k]; ok {
					sum -= w
					delete(older, k)
				}
			}
		}
	}
	held = true
	return &pw.keyWatch, nil
}

// followLimit returns the limit to wait under once the stored limit is
// stored: lim if they agree, the Semaphore's new limit if SetLimit
// changed both, else ErrLimitMismatch.
func (q *Queue) followLimit(lim int64, limit func() int64, w int64, stored []byte) (int64, error) {
	if string(stored) == strconv.FormatInt(lim, 10) {
		return lim, nil
	}
	if now := limit(); string(stored) == strconv.FormatInt(now, 10) {
		if w > now {
			return 0, distsync.Errorf(distsync.ErrInvalidConfig, nil, "waiting for %d permits, but the limit changed to %d", w, now)
		}
		return now, nil
	}
	return 0, q.mismatch(lim, stored)
}

// watchBroken returns the error of a watch response that ended the watch,
// or nil for a usable one.
func watchBroken(wr clientv3.WatchResponse, ok bool, what string) error {
	if ok && wr.Err() == nil {
		return nil
	}
	var err error
	if ok {
		err = wr.Err()
	}
	if Denied(err) {
		return distsync.Errorf(distsync.ErrDenied, err, "%s", what)
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, "%s", what)
}

// prefixWatch is a synced watch on the delete events of the queue's
// prefix, and the revision at which it started.
type prefixWatch struct {
	keyWatch
	start int64
}

func (q *Queue) watchPrefix(ctx context.Context, e *epoch) (*prefixWatch, error) {
	w, hdr, err := q.watchOpts(ctx, e, q.prefix, clientv3.WithPrefix(), clientv3.WithFilterPut())
	if err != nil {
		return nil, err
	}
	return &prefixWatch{keyWatch: *w, start: hdr}, nil
}

// deleteIdleLimits deletes the limit of every semaphore of prefixes that
// is idle, in batches of nested Txns; Close calls it after revoking the
// lease of its holders. Failures are left for the next user to overwrite.
func deleteIdleLimits(ctx context.Context, c *clientv3.Client, prefixes []string) {
	for len(prefixes) > 0 {
		n := min(len(prefixes), 64)
		ops := make([]clientv3.Op, 0, n)
		for _, p := range prefixes[:n] {
			ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{idle(p)}, []clientv3.Op{clientv3.OpDelete(limitKeyOf(p))}, nil))
		}
		prefixes = prefixes[n:]
		if _, err := c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return
		}
	}
}

package etcdq

import (
	"context"
	"strconv"
	"strings"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The counting side of the queue, for semaphores: a key's value is its
// weight, and a key holds when the weights of all older keys plus its own
// fit in the limit. Older keys are counted once; after that the waiter
// follows delete events of the prefix, so a
// release costs the waiters no round trip until one of them may proceed.

// LimitKey returns the key that stores the limit of the semaphore name.
// It lies outside every name's prefix: prefixes end in '/', and an encoded
// name never holds "%l".
func LimitKey(name string) string {
	return strings.TrimSuffix(Prefix(name), "/") + "%limit"
}

func (q *Queue) limitKey() string { return strings.TrimSuffix(q.prefix, "/") + "%limit" }

// AcquireWeighted enqueues a key of weight w and blocks until the weights
// of the older keys plus w are at most limit. The limit stored with the
// name must equal limit (it is stored by the first caller): otherwise the
// error wraps ErrLimitMismatch and nothing is written. Failure and
// cancellation leave nothing behind, as with Acquire.
func (q *Queue) AcquireWeighted(ctx context.Context, limit, w int64) (*Lease, error) {
	if err := q.alive(ctx); err != nil {
		return nil, err
	}
	key := newKey(q.prefix, q.s.Lease())
	var resp *clientv3.TxnResponse
	for attempt := 0; ; attempt++ {
		var err error
		resp, err = q.c.Txn(ctx).If(
			clientv3.Compare(clientv3.Value(q.limitKey()), "=", strconv.FormatInt(limit, 10)),
			clientv3.Compare(clientv3.CreateRevision(key), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
		).Then(
			clientv3.OpPut(key, strconv.FormatInt(w, 10), clientv3.WithLease(q.s.Lease())),
			clientv3.OpGet(q.prefix, clientv3.WithPrefix()),
		).Else(
			clientv3.OpGet(q.limitKey()),
		).Commit()
		if err != nil {
			q.abandonAfter(ctx, key)
			return nil, q.fail(ctx, err, "enqueue")
		}
		if resp.Succeeded {
			break
		}
		if attempt > 0 {
			return nil, distsync.Errorf(distsync.ErrUnavailable, nil, "enqueue: key %q already used", key)
		}
		if err := q.EnsureLimit(ctx, limit); err != nil {
			return nil, err
		}
	}
	rev := resp.Header.Revision
	if olderWeight(resp.Responses[1].GetResponseRange().Kvs, rev)+w <= limit {
		return q.hold(ctx, key, rev, nil, rev+1)
	}
	from, err := q.waitWeight(ctx, key, rev, limit-w)
	if err != nil {
		q.removeAfter(ctx, key, rev)
		return nil, err
	}
	return q.hold(ctx, key, rev, nil, from)
}

// TryAcquireWeighted takes a key of weight w only if the weights of all
// keys (holders and waiters) plus w fit in limit; otherwise it returns
// ErrWouldBlock. It writes nothing unless it succeeds: it reads the keys,
// then creates its own only if none was created or changed since.
func (q *Queue) TryAcquireWeighted(ctx context.Context, limit, w int64) (*Lease, error) {
	if err := q.alive(ctx); err != nil {
		return nil, err
	}
	if err := q.EnsureLimit(ctx, limit); err != nil {
		return nil, err
	}
	key := newKey(q.prefix, q.s.Lease())
	for {
		got, err := q.c.Get(ctx, q.prefix, clientv3.WithPrefix())
		if err != nil {
			return nil, q.fail(ctx, err, "read holders")
		}
		if olderWeight(got.Kvs, got.Header.Revision+1)+w > limit {
			return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q has no %d free permits of %d", q.prefix, w, limit)
		}
		resp, err := q.c.Txn(ctx).If(
			clientv3.Compare(clientv3.Value(q.limitKey()), "=", strconv.FormatInt(limit, 10)),
			// Nothing created or changed since the read; deletions only free permits.
			clientv3.Compare(clientv3.ModRevision(q.prefix), "<", got.Header.Revision+1).WithPrefix(),
			clientv3.Compare(clientv3.CreateRevision(tombstone(key)), "=", 0),
		).Then(
			clientv3.OpPut(key, strconv.FormatInt(w, 10), clientv3.WithLease(q.s.Lease())),
		).Commit()
		if err != nil {
			q.abandonAfter(ctx, key)
			return nil, q.fail(ctx, err, "try-acquire")
		}
		if resp.Succeeded {
			return q.hold(ctx, key, resp.Header.Revision, nil, resp.Header.Revision+1)
		}
		if err := q.EnsureLimit(ctx, limit); err != nil {
			return nil, err
		}
	}
}

// EnsureLimit stores limit with the name if none is stored, and fails
// with ErrLimitMismatch if another limit is.
func (q *Queue) EnsureLimit(ctx context.Context, limit int64) error {
	lim := strconv.FormatInt(limit, 10)
	resp, err := q.c.Txn(ctx).If(
		clientv3.Compare(clientv3.CreateRevision(q.limitKey()), "=", 0),
	).Then(
		clientv3.OpPut(q.limitKey(), lim),
	).Else(
		clientv3.OpGet(q.limitKey()),
	).Commit()
	if err != nil {
		return q.fail(ctx, err, "store limit")
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 1 && string(kvs[0].Value) != lim {
		return distsync.Errorf(distsync.ErrLimitMismatch, nil, "opened with limit %d, but %q stores limit %s", limit, q.limitKey(), kvs[0].Value)
	}
	return nil
}

// SetLimit stores limit with the name whatever was stored before.
func SetLimit(ctx context.Context, c *clientv3.Client, name string, limit int64) error {
	if _, err := c.Put(ctx, LimitKey(name), strconv.FormatInt(limit, 10)); err != nil {
		return distsync.Errorf(distsync.ErrUnavailable, err, "store limit")
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

// weight is a key's weight; a key without one (a foreign key under the
// prefix) counts as one permit.
func weight(kv *mvccpb.KeyValue) int64 {
	w, err := strconv.ParseInt(string(kv.Value), 10, 64)
	if err != nil || w < 1 {
		return 1
	}
	return w
}

// waitWeight blocks until the weight of the keys older than key is at
// most room. It counts them at the start revision of a synced prefix watch
// and then follows that watch's delete events; the watch also reports the
// deletion of key itself. It returns the revision from which the Lease
// must watch key: the one after the last event it saw.
func (q *Queue) waitWeight(ctx context.Context, key string, rev, room int64) (int64, error) {
	rw := q.watchRenewal()
	defer rw.stop()
	backoff := newBackoff()
	for {
		from, err := q.countFrom(ctx, key, rev, room, rw)
		if err == nil {
			return from, nil
		}
		if err = q.retryAfter(ctx, rw, backoff, err); err != nil {
			return 0, err
		}
	}
}

// countFrom is one attempt of waitWeight: it returns the revision after
// which the own-key watch must start, or an error (ErrUnavailable when the
// prefix watch broke and the count must be made again).
func (q *Queue) countFrom(ctx context.Context, key string, rev, room int64, rw *renewalWatch) (int64, error) {
	pw, err := q.watchPrefix(ctx)
	if err != nil {
		return 0, err
	}
	defer pw.stop()
	got, err := q.c.Get(ctx, q.prefix, clientv3.WithPrefix(), clientv3.WithRev(pw.start))
	if err != nil {
		return 0, q.fail(ctx, err, "count holders")
	}
	// The older keys and their weights, at the watch's start; only their
	// deletion can make room, so put events are not even sent.
	older := make(map[string]int64)
	var sum int64
	present := false
	for _, kv := range got.Kvs {
		switch {
		case string(kv.Key) == key && kv.CreateRevision == rev:
			present = true
		case kv.CreateRevision < rev:
			older[string(kv.Key)] = weight(kv)
			sum += weight(kv)
		}
	}
	if !present {
		return 0, distsync.Errorf(distsync.ErrLost, nil, "waiter key %q was deleted", key)
	}
	last := pw.start
	for sum > room {
		select {
		case <-ctx.Done():
			return 0, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for permits")
		case <-q.s.Done():
			return 0, distsync.Errorf(distsync.ErrLost, nil, "etcd session ended while waiting")
		case <-rw.changed:
			if err := rw.check(); err != nil {
				return 0, err
			}
		case <-rw.expiry:
			if err := rw.check(); err != nil {
				return 0, err
			}
		case wr, ok := <-pw.ch:
			if !ok || wr.Err() != nil {
				var err error
				if ok {
					err = wr.Err()
				}
				return 0, distsync.Errorf(distsync.ErrUnavailable, err, "prefix watch ended")
			}
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if k == key {
					return 0, distsync.Errorf(distsync.ErrLost, nil, "waiter key %q was deleted", key)
				}
				if w, ok := older[k]; ok {
					sum -= w
					delete(older, k)
				}
			}
			last = wr.Header.Revision
		}
	}
	return last + 1, nil
}

// prefixWatch is a synced watch on the delete events of the queue's
// prefix, and the revision at which it started.
type prefixWatch struct {
	keyWatch
	start int64
}

func (q *Queue) watchPrefix(ctx context.Context) (*prefixWatch, error) {
	w, hdr, err := q.watchOpts(ctx, q.prefix, clientv3.WithPrefix(), clientv3.WithFilterPut())
	if err != nil {
		return nil, err
	}
	return &prefixWatch{keyWatch: *w, start: hdr}, nil
}

package etcdq

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// attemptTimeout bounds one round trip of a waiter, which then retries.
const attemptTimeout = 2 * time.Second

// cleanupTimeout bounds one attempt to remove a waiter key after the
// caller's context ended; past it the removal goes on in the background.
const cleanupTimeout = 5 * time.Second

// A Queue is the waiter queue of one name on one session: every
// acquisition is a key under Prefix(name) bound to the session's lease, and
// keys are served in create-revision order.
type Queue struct {
	s      *concurrency.Session
	c      *clientv3.Client
	prefix string

	renew renewal        // last confirmed keep-alive, shared by this queue's leases
	bg    sync.WaitGroup // background removals
	owned bool           // the session was created by Open and ends with Close
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
	return &Queue{s: s, c: s.Client(), prefix: Prefix(name)}, nil
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
// they end when their key is gone or the session ends.
func (q *Queue) Close() error {
	var err error
	if q.owned {
		if cerr := q.s.Close(); cerr != nil {
			err = distsync.Errorf(distsync.ErrUnavailable, cerr, "revoke session lease")
		}
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
		q.abandon(context.WithoutCancel(ctx), key)
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
		return q.hold(key, rev, nil, rev+1), nil
	}
	own, err := q.waitFirst(ctx, key, rev, wait, pred)
	if err != nil {
		_ = q.remove(context.WithoutCancel(ctx), key, rev)
		return nil, err
	}
	return q.hold(key, rev, own, 0), nil
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
		q.abandon(context.WithoutCancel(ctx), key)
		return nil, q.fail(ctx, err, "try-acquire")
	}
	if !resp.Succeeded {
		return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q is held", q.prefix)
	}
	return q.hold(key, resp.Header.Revision, nil, resp.Header.Revision+1), nil
}

// alive fails fast when the session has already ended.
func (q *Queue) alive(ctx context.Context) error {
	select {
	case <-q.s.Done():
		return distsync.Errorf(distsync.ErrClosed, nil, "etcd session ended")
	default:
	}
	if ctx.Err() != nil {
		return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
	}
	return nil
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
func (q *Queue) check(ctx context.Context, key string, rev int64, wait string) (first bool, pred *mvccpb.KeyValue, err error) {
	// A member without a leader answers at once instead of after its
	// request timeout, and the waiter retries elsewhere or later.
	resp, err := q.c.Txn(clientv3.WithRequireLeader(ctx)).If(
		clientv3.Compare(clientv3.CreateRevision(key), "=", rev),
	).Then(
		clientv3.OpGet(wait, append(clientv3.WithLastCreate(), clientv3.WithMaxCreateRev(rev-1))...),
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

// waitFirst blocks until key is older than every key under wait. It watches only
// its predecessor (for the handoff) and its own key (a deleted waiter key
// must not wait forever), and returns the own-key watch for the Lease.
//
// etcd failures (a leader election, a member restart) are retried until ctx
// ends or the session does: a waiter cut off from the quorum cannot renew
// its session lease, so it fails within the session TTL instead of hanging.
func (q *Queue) waitFirst(ctx context.Context, key string, rev int64, wait string, pred *mvccpb.KeyValue) (own *keyWatch, err error) {
	rw, err := q.watchRenewal()
	if err != nil {
		return nil, err
	}
	var pw *keyWatch
	defer func() {
		rw.stop()
		pw.stop()
		if err != nil {
			own.stop()
		}
	}()
	backoff := newBackoff()
	for {
		if own == nil {
			if own, err = q.watch(ctx, key); err != nil {
				if err = q.retryAfter(ctx, rw, backoff, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		if pw == nil || pw.key != string(pred.Key) {
			pw.stop()
			// A synced watch sees every delete after its creation; the
			// check below covers the time before it.
			if pw, err = q.watch(ctx, string(pred.Key)); err != nil {
				if err = q.retryAfter(ctx, rw, backoff, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		first, next, err := q.checkWithin(ctx, key, rev, wait)
		if err != nil {
			if err = q.retryAfter(ctx, rw, backoff, err); err != nil {
				return nil, err
			}
			continue
		}
		backoff.reset()
		if first {
			return own, nil
		}
		if pred = next; pw.key != string(pred.Key) {
			continue
		}
		if err := q.waitDelete(ctx, key, rw, own, pw); err != nil {
			return nil, err
		}
		if own.broken {
			own.stop()
			own = nil
		}
		if pw.broken {
			pw.stop()
			pw = nil
		}
	}
}

// retryAfter waits before the next attempt after err, if err is an etcd
// failure worth retrying; it returns an error when the wait should end.
func (q *Queue) retryAfter(ctx context.Context, rw *renewalWatch, b *backoff, err error) error {
	if !errors.Is(err, distsync.ErrUnavailable) {
		return err
	}
	pause := time.NewTimer(b.next())
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), err), "")
		case <-q.s.Done():
			return distsync.Errorf(distsync.ErrLost, err, "etcd session ended while waiting")
		case resp, ok := <-rw.ka:
			if rerr := rw.renewed(resp, ok); rerr != nil {
				return errors.Join(rerr, err)
			}
		case <-rw.expiry:
			return errors.Join(rw.expired(), err)
		case <-pause.C:
			return nil
		}
	}
}

// checkWithin is check bounded by attemptTimeout: a member cut off from its
// leader may hold a linearizable read for its whole request timeout (5 s).
func (q *Queue) checkWithin(ctx context.Context, key string, rev int64, wait string) (bool, *mvccpb.KeyValue, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	first, pred, err := q.check(actx, key, rev, wait)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		err = distsync.Errorf(distsync.ErrUnavailable, err, "queue check not answered within %v", attemptTimeout)
	}
	return first, pred, err
}

// backoff doubles a delay from 20 ms up to one second.
type backoff struct{ d time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.d = 0 }

func (b *backoff) next() time.Duration {
	b.d = min(max(2*b.d, 20*time.Millisecond), time.Second)
	return b.d
}

// waitDelete blocks until pw's key is deleted or one of the watches
// breaks (marked broken; the caller re-creates it and re-checks).
func (q *Queue) waitDelete(ctx context.Context, key string, rw *renewalWatch, own, pw *keyWatch) error {
	for {
		select {
		case resp, ok := <-rw.ka:
			if err := rw.renewed(resp, ok); err != nil {
				return err
			}
		case <-rw.expiry:
			return rw.expired()
		case <-ctx.Done():
			return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for %q", pw.key)
		case <-q.s.Done():
			return distsync.Errorf(distsync.ErrLost, nil, "etcd session ended while waiting")
		case wr, ok := <-own.ch:
			if !ok || wr.Err() != nil {
				own.broken = true
				return nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return distsync.Errorf(distsync.ErrLost, nil, "waiter key %q was deleted", key)
				}
			}
		case wr, ok := <-pw.ch:
			if !ok || wr.Err() != nil {
				pw.broken = true
				return nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return nil
				}
			}
		}
	}
}

// hold turns an acquired key into a Lease that follows it.
// Without own, the Lease's follower watches key from revision from on.
func (q *Queue) hold(key string, rev int64, own *keyWatch, from int64) *Lease {
	return newLease(q, key, rev, own, from)
}

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

// abandon removes key after an enqueue whose outcome is unknown, and
// leaves a tombstone (bound to the session lease) so that the enqueue,
// should it still be applied later, finds it and writes nothing.
func (q *Queue) abandon(ctx context.Context, key string) {
	op := func(ctx context.Context) error {
		_, err := q.c.Txn(ctx).Then(
			clientv3.OpDelete(key),
			clientv3.OpPut(tombstone(key), "", clientv3.WithLease(q.s.Lease())),
		).Commit()
		return err
	}
	_ = q.retry(ctx, op)
}

// retry runs op once in the foreground and, if it fails while the session
// lives, again in the background with backoff until it succeeds or the
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

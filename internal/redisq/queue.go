package redisq

import (
	"context"
	"time"

	"github.com/distsync/distsync"
	"github.com/redis/go-redis/v9"
)

// Kinds of members.
const (
	Exclusive byte = 'x' // holds alone: a Mutex, a writer, a candidate
	Shared    byte = 's' // holds with other shared members, up to the limit
)

// A Queue is one name on a session, for one kind of member: the one
// algorithm behind the Redis Mutex, RWMutex, Semaphore and Election.
//
// Waiters are granted in arrival order: the queue is a sorted set by
// arrival number, and every script that frees room promotes the head
// waiters that fit (a shared waiter does not pass an exclusive one ahead
// of it, which is what makes the RWMutex writer-preferring).
type Queue struct {
	s     *Session
	name  string
	k     Keys
	limit int64 // 0: no limit on shared members
}

// NewQueue returns the queue of name on s. limit bounds the shared
// holders (0: unbounded); it is stored while anyone holds or waits, and an
// acquisition with another limit fails with ErrLimitMismatch.
func NewQueue(s *Session, name string, limit int64) (*Queue, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil session")
	}
	if limit < 0 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "negative limit %d", limit)
	}
	k := KeysFor(name)
	if _, ok := s.c.(*redis.ClusterClient); ok {
		// The hash tag keeps a name's keys in one slot; a Cluster
		// rejects a script whose keys are not, so say so here rather
		// than at the first Lock.
		if err := k.checkSlot(); err != nil {
			return nil, distsync.Errorf(distsync.ErrInvalidConfig, err, "%q on a cluster", name)
		}
	}
	return &Queue{s: s, name: name, k: k, limit: limit}, nil
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Session returns the queue's session.
func (q *Queue) Session() *Session { return q.s }

// Keys returns the queue's Redis keys.
func (q *Queue) Keys() Keys { return q.k }

func (q *Queue) limitFor(kind byte) int64 {
	if kind == Exclusive {
		return 0
	}
	return q.limit
}

// lease starts the lease of a granted member whose last confirmation was
// sent at sent, after the replicas acknowledged it if the session asks for
// that; on failure it deletes the member.
func (q *Queue) lease(ctx context.Context, member string, token uint64, sent time.Time) (*Lease, error) {
	sent, err := q.acked(ctx, member, sent)
	if err != nil {
		q.abandon(nil, member)
		return nil, err
	}
	l, ok := newLease(q.s, q.k, member, token, sent)
	if !ok {
		q.abandon(nil, member)
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	return l, nil
}

// gaveUp deletes member after ctx ended or the session closed while p (nil
// if none) was in flight (see abandon), and returns the error that says
// which.
func (q *Queue) gaveUp(ctx context.Context, p pending, member, what string) error {
	q.abandon(p, member)
	if ctx.Err() == nil && q.s.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "%s %q", what, q.name)
}

func (q *Queue) mismatch(r result) error {
	return distsync.Errorf(distsync.ErrLimitMismatch, nil, "%q has limit %d, not %d", q.name, r.n, q.limit)
}

// TryAcquire takes a member of kind only if it fits now and nobody waits,
// in one script; otherwise it fails with ErrWouldBlock and writes nothing.
// value, if non-nil, is stored with the member (an election's value). It
// returns within distsync.CancelGrace after ctx ends (see abandon).
func (q *Queue) TryAcquire(ctx context.Context, kind byte, value []byte) (*Lease, error) {
	if q.s.Closed() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	if ctx.Err() != nil {
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
	}
	if !q.s.enter() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	defer q.s.bgDone()
	member := q.s.member(kind)
	sent := time.Now()
	p := q.start(ctx, "try", member, kind, value)
	r, err, ok := q.await(ctx, p)
	switch {
	case !ok:
		return nil, q.gaveUp(ctx, p, member, "try")
	case err != nil:
		// The script may have run: delete what it may have written.
		q.abandon(nil, member)
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "try %q", q.name)
	case r.status == -2:
		return nil, q.mismatch(r)
	case r.status == 1:
		if ctx.Err() != nil {
			return nil, q.gaveUp(ctx, nil, member, "try")
		}
		return q.lease(ctx, member, uint64(r.n), sent)
	}
	return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q", q.name)
}

// Acquire enqueues a member of kind and waits until it is granted or ctx
// ends. It registers with the session's pub/sub connection (subscribed to
// the session's own channel since it opened) before enqueueing, wakes when
// a release grants it (one message to this session, no polling), trusts
// the grant without a round trip (see the wake case below), and re-checks
// no later
// than the earliest holder's expiry or its own renewal time (TTL/3), to
// reclaim crashed holders and to keep its own entry alive. On failure its
// member is deleted before it returns (or, when Redis does not answer
// within distsync.CancelGrace of ctx's end, in the background; it expires
// within the TTL if Redis never answers). Every request runs under
// opTimeout, not ctx, so that its outcome is known; the call does not
// wait for it past ctx's end (plus CancelGrace).
func (q *Queue) Acquire(ctx context.Context, kind byte, value []byte) (*Lease, error) {
	if ctx.Err() != nil {
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "")
	}
	if q.s.Closed() || !q.s.enter() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	defer q.s.bgDone()
	member := q.s.member(kind)
	sb, err := q.s.hub.wait(member)
	if err != nil {
		return nil, err
	}
	defer q.s.hub.unwait(sb)

	sent := time.Now()
	p := q.start(ctx, "acq", member, kind, value)
	r, err, ok := q.await(ctx, p)
	switch {
	case !ok:
		return nil, q.gaveUp(ctx, p, member, "enqueue on")
	case err != nil:
		q.abandon(nil, member)
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "enqueue on %q", q.name)
	case r.status == -2:
		return nil, q.mismatch(r)
	case r.status == 1:
		if ctx.Err() != nil {
			return nil, q.gaveUp(ctx, nil, member, "enqueue on")
		}
		return q.lease(ctx, member, uint64(r.n), sent)
	}
	next := time.Duration(r.n) * time.Millisecond
	confirmed := sent // the last time the waiter's entry was refreshed
	timer := time.NewTimer(q.wait(next))
	defer timer.Stop()
	for {
		check := false
		select {
		case <-ctx.Done():
			return nil, q.gaveUp(ctx, nil, member, "waiting for")
		case <-q.s.hub.closing:
			return nil, q.gaveUp(ctx, nil, member, "waiting for")
		case <-sb.wake:
			if tok := sb.granted(); tok != 0 {
				// The grant ran after the server answered the request
				// sent at confirmed (that answer still saw a waiter), so
				// the holder's server-side expiry, a TTL after the grant,
				// is later than confirmed+TTL: the lease may start its
				// deadline from confirmed, with no round trip. When too
				// little of that is left for a renewal to get through,
				// confirm with a renewal sent now instead.
				if time.Until(confirmed.Add(q.s.ttl-q.s.margin())) >= q.s.interval()/2 {
					return q.lease(ctx, member, tok, confirmed)
				}
				sent := time.Now()
				p := q.start(ctx, "renew", member, kind, nil)
				r, err, ok := q.await(ctx, p)
				if !ok {
					return nil, q.gaveUp(ctx, p, member, "waiting for")
				}
				if err == nil && r.status == 1 {
					return q.lease(ctx, member, tok, sent)
				}
			}
			check = true
		case <-timer.C:
			check = true
		}
		if !check {
			continue
		}
		sent := time.Now()
		p := q.start(ctx, "chk", member, kind, nil)
		r, err, ok := q.await(ctx, p)
		switch {
		case !ok:
			return nil, q.gaveUp(ctx, p, member, "waiting for")
		case err != nil:
			if time.Since(confirmed) > q.s.ttl-q.s.margin() {
				q.abandon(nil, member)
				return nil, distsync.Errorf(distsync.ErrUnavailable, err, "waiting for %q", q.name)
			}
			next = q.s.interval() / 4
		case r.status == 1:
			return q.lease(ctx, member, uint64(r.n), sent)
		case r.status == -1:
			return nil, distsync.Errorf(distsync.ErrLost, nil, "waiter state of %q gone from redis (expired or deleted)", q.name)
		default:
			confirmed = sent
			next = time.Duration(r.n) * time.Millisecond
		}
		timer.Reset(q.wait(next))
	}
}

// wait returns how long to wait before the next check: until the earliest
// holder expiry (next, -1 when none) or the waiter's own refresh, whichever
// is first.
func (q *Queue) wait(next time.Duration) time.Duration {
	d := q.s.interval()
	if next >= 0 && next < d {
		d = next
	}
	return d
}

// Members lists the holders and then the waiters of the queue's name.
func (q *Queue) Members(ctx context.Context) ([]string, error) {
	m, err := call(ctx, func(ctx context.Context) ([]string, error) { return list(ctx, q.s.c, q.k) })
	if err != nil {
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "list %q", q.name)
	}
	return m, nil
}

package redisq

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/redis/go-redis/v9"
)

// Kinds of members.
const (
	Exclusive byte = 'x' // holds alone: a Mutex, a writer, a candidate
	Shared    byte = 's' // holds with other shared members, up to the limit
)

// A Queue is one name on a session, opened by one primitive value: the one
// algorithm behind the Redis Mutex, RWMutex, Semaphore and Election.
//
// Waiters are granted in arrival order: the queue is a sorted set by
// arrival number, and every script that frees room promotes the head
// waiters that fit (a shared waiter does not pass an exclusive one ahead
// of it, which is what makes the RWMutex writer-preferring; a semaphore's
// waiter that needs more permits than are free holds back the ones behind
// it).
type Queue struct {
	s    *Session
	name string
	k    Keys

	// The telemetry targets and recorded modes of the exclusive and the
	// shared members (an RWMutex's writers and readers); computed once.
	xt, st     *telemetry.Target
	xmod, smod distsync.Mode

	// The semaphore's limit (0: no limit on shared members), and the
	// limits SetLimit is storing right now: until it returns, the stored
	// limit may be either, and neither is a mismatch.
	mu       sync.Mutex
	limit    int64
	settings map[int64]int
}

// NewQueue returns the queue of name on s, for a primitive of kind prim.
// limit bounds the shared holders' weight (0: unbounded); it is stored
// while anyone holds or waits, and an acquisition with another limit
// fails with ErrLimitMismatch. An Election's queue is exclusive (the
// leader is the holder, candidates are the waiters), and its changes of
// leader and value are recorded for observers.
func NewQueue(s *Session, name string, limit int64, prim telemetry.Primitive) (*Queue, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	if s == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil session")
	}
	if limit < 0 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "negative limit %d", limit)
	}
	k := s.Keys(name)
	if _, ok := s.c.(*redis.ClusterClient); ok {
		// The hash tag keeps a name's keys in one slot; a Cluster
		// rejects a script whose keys are not, so say so here rather
		// than at the first Lock.
		if err := k.checkSlot(); err != nil {
			return nil, distsync.Errorf(distsync.ErrInvalidConfig, err, "%q on a cluster", name)
		}
	}
	q := &Queue{s: s, name: name, k: k, limit: limit}
	switch prim {
	case telemetry.RWMutex:
		q.xt = s.rec.Target(prim, distsync.ModeWrite, name)
		q.st = s.rec.Target(prim, distsync.ModeRead, name)
		q.xmod, q.smod = distsync.ModeWrite, distsync.ModeRead
	default:
		q.xt = s.rec.Target(prim, "", name)
		q.st = q.xt
		q.xmod, q.smod = distsync.ModeExclusive, distsync.ModePermit
	}
	if prim == telemetry.Election {
		q.k.history = true
	}
	return q, nil
}

// target returns the telemetry target and the recorded mode of members
// of kind.
func (q *Queue) target(kind byte) (*telemetry.Target, distsync.Mode) {
	if kind == Exclusive {
		return q.xt, q.xmod
	}
	return q.st, q.smod
}

// ended returns what telemetry's Op.End takes of an acquisition's result.
func ended(l *Lease) (telemetry.Ender, uint64) {
	if l == nil {
		return nil, 0
	}
	return l, l.token
}

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Session returns the queue's session.
func (q *Queue) Session() *Session { return q.s }

// Limit returns the queue's limit (0: none).
func (q *Queue) Limit() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.limit
}

func (q *Queue) limitFor(kind byte) int64 {
	if kind == Exclusive {
		return 0
	}
	return q.Limit()
}

// limitAgrees reports whether stored, a limit Redis reported, is no
// mismatch for this queue: none stored, this queue's limit, or one that
// SetLimit is storing now.
func (q *Queue) limitAgrees(stored int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return stored == 0 || q.limit == 0 || stored == q.limit || q.settings[stored] > 0
}

func (q *Queue) mismatch(stored int64) error {
	return distsync.Errorf(distsync.ErrLimitMismatch, nil, "%q has limit %d, not %d", q.name, stored, q.Limit())
}

// CheckLimit compares the queue's limit with the stored one, bounded by
// ctx: ErrLimitMismatch when the semaphore is in use with another limit.
func (q *Queue) CheckLimit(ctx context.Context) error {
	if q.s.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	r, err := runCtx(ctx, q.s.c, limitScript, q.k, "", q.Limit(), "open")
	switch {
	case err != nil:
		return failure(err, "limit of %q", q.name)
	case r.status == -2:
		return q.mismatch(r.n)
	}
	return nil
}

// SetLimit makes limit the queue's limit and, if the semaphore is in use,
// the stored one, bounded by ctx. Held permits are kept. On failure the
// queue's limit is unchanged, and the stored one may or may not be.
func (q *Queue) SetLimit(ctx context.Context, limit int64) error {
	if limit < 1 {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d below 1", limit)
	}
	if q.s.Closed() {
		return distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	q.mu.Lock()
	if q.settings == nil {
		q.settings = map[int64]int{}
	}
	q.settings[limit]++
	q.mu.Unlock()
	_, err := runCtx(ctx, q.s.c, limitScript, q.k, "", limit, "set")
	q.mu.Lock()
	if q.settings[limit]--; q.settings[limit] == 0 {
		delete(q.settings, limit)
	}
	if err == nil {
		q.limit = limit
	}
	q.mu.Unlock()
	if err != nil {
		return failure(err, "set the limit of %q", q.name)
	}
	return nil
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
	l, ok := newLease(q.s, q.name, q.k, member, token, sent)
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

// checkWeight validates an acquisition's weight against the queue's limit.
func (q *Queue) checkWeight(kind byte, weight int64) error {
	if kind == Exclusive {
		return nil
	}
	if limit := q.Limit(); weight < 1 || (limit > 0 && weight > limit) {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "%d permits of %q, whose limit is %d", weight, q.name, limit)
	}
	return nil
}

// enqueue runs the acquire script for member, again while the limit
// Redis reports is one that SetLimit is storing now. ok false means ctx
// ended or the session closed, with p in flight (or p is unanswered or
// answeredLate: the first attempt ran on this goroutine).
func (q *Queue) enqueue(ctx context.Context, member string, kind byte, op string, value []byte) (r result, err error, p pending, ok bool) {
	t, mode := q.target(kind)
	extra := []any{op, q.s.identity, string(mode)}
	if value != nil {
		extra = append(extra, value)
	}
	var delay backoff.Backoff
	inline := q.s.deadlines
	for {
		if inline {
			// The first attempt runs on this goroutine if it can: the
			// script may be sent again (a member that holds or waits
			// already is reported as it is), so an attempt whose answer
			// did not arrive in time goes on below as a new one.
			inline = false
			var known bool
			r, err, known = q.s.runInline(ctx, acquireScript, q.k, member, q.limitFor(kind), extra...)
			switch {
			case !known && ctx.Err() != nil:
				q.s.unsure.Store(member, struct{}{})
				return r, err, unanswered, false
			case !known:
				q.s.unsure.Store(member, struct{}{})
				p = q.start(ctx, acquireScript, member, q.limitFor(kind), extra...)
				r, err, ok = q.await(ctx, p)
			case ctx.Err() != nil:
				return r, err, answeredLate, false
			default:
				p, ok = nil, true
			}
		} else {
			p = q.start(ctx, acquireScript, member, q.limitFor(kind), extra...)
			r, err, ok = q.await(ctx, p)
		}
		if !ok || err != nil || r.status != -2 || !q.limitAgrees(r.n) {
			return r, err, p, ok
		}
		t.Debug(ctx, "limit being set, retrying", slog.Int64("stored", r.n))
		if !delay.Sleep(ctx) {
			return r, err, nil, false
		}
	}
}

// TryAcquire takes a member of kind and weight only if it fits now and
// nobody waits, in one script; otherwise it fails with ErrWouldBlock and
// writes nothing. value, if non-nil, is stored with the member (an
// election's value). It returns within distsync.CancelGrace after ctx ends
// (see abandon).
func (q *Queue) TryAcquire(ctx context.Context, kind byte, weight int64, value []byte) (*Lease, error) {
	t, _ := q.target(kind)
	op := t.Begin(ctx, false)
	l, err := q.tryAcquire(ctx, kind, weight, value)
	e, tok := ended(l)
	op.End(ctx, e, tok, err)
	return l, err
}

func (q *Queue) tryAcquire(ctx context.Context, kind byte, weight int64, value []byte) (*Lease, error) {
	if q.s.Closed() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	if err := q.checkWeight(kind, weight); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "%q", q.name)
	}
	if !q.s.enter() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	defer q.s.bgDone()
	member := q.s.member(kind, weight)
	sent := time.Now()
	r, err, p, ok := q.enqueue(ctx, member, kind, "try", value)
	switch {
	case !ok:
		return nil, q.gaveUp(ctx, p, member, "try")
	case err != nil:
		// The script may have run: delete what it may have written.
		q.abandon(nil, member)
		return nil, failure(err, "try %q", q.name)
	case r.status == -2:
		return nil, q.mismatch(r.n)
	case r.status == 1:
		if ctx.Err() != nil {
			return nil, q.gaveUp(ctx, nil, member, "try")
		}
		return q.lease(ctx, member, uint64(r.n), sent)
	}
	return nil, distsync.Errorf(distsync.ErrWouldBlock, nil, "%q", q.name)
}

// Acquire enqueues a member of kind and weight and waits until it is
// granted or ctx ends. It registers with the session's pub/sub connection
// (subscribed to the session's own channel since it opened) before
// enqueueing, wakes when a release grants it (one message to this session,
// no polling), trusts the grant without a round trip (see the wake case
// below), and re-checks no later than the earliest holder's expiry or its
// own renewal time (TTL/3), to reclaim crashed holders and to keep its own
// entry alive. On failure its member is deleted before it returns (or,
// when Redis does not answer within distsync.CancelGrace of ctx's end, in
// the background; it expires within the TTL if Redis never answers). Every
// request runs under opTimeout, not ctx, so that its outcome is known; the
// call does not wait for it past ctx's end (plus CancelGrace). A refusal
// (ErrDenied) ends it at once. A waiter that ForceRelease removed fails
// with ErrLost (LossForceReleased) as soon as the re-check request the
// removal publishes reaches it.
func (q *Queue) Acquire(ctx context.Context, kind byte, weight int64, value []byte) (*Lease, error) {
	t, _ := q.target(kind)
	op := t.Begin(ctx, true)
	l, err := q.acquire(ctx, t, kind, weight, value)
	e, tok := ended(l)
	op.End(ctx, e, tok, err)
	return l, err
}

func (q *Queue) acquire(ctx context.Context, t *telemetry.Target, kind byte, weight int64, value []byte) (*Lease, error) {
	if err := q.checkWeight(kind, weight); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "%q", q.name)
	}
	if q.s.Closed() || !q.s.enter() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	defer q.s.bgDone()
	member := q.s.member(kind, weight)
	sb, err := q.s.hub.wait(q.k, member)
	if err != nil {
		return nil, err
	}
	defer q.s.hub.unwait(sb)

	sent := time.Now()
	r, err, p, ok := q.enqueue(ctx, member, kind, "acq", value)
	switch {
	case !ok:
		return nil, q.gaveUp(ctx, p, member, "enqueue on")
	case err != nil:
		q.abandon(nil, member)
		return nil, failure(err, "enqueue on %q", q.name)
	case r.status == -2:
		return nil, q.mismatch(r.n)
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
		select {
		case <-ctx.Done():
			return nil, q.gaveUp(ctx, nil, member, "waiting for")
		case <-q.s.hub.closing:
			return nil, q.gaveUp(ctx, nil, member, "waiting for")
		case <-sb.wake:
			if err := q.s.hub.err(); err != nil {
				q.abandon(nil, member)
				return nil, err
			}
			if sb.suspend.Load() {
				continue
			}
			if err := q.checkWeight(kind, weight); err != nil {
				// SetLimit lowered this value's limit below weight.
				q.abandon(nil, member)
				return nil, err
			}
			if tok, stored := sb.granted(); tok != 0 {
				if !q.limitAgrees(stored) {
					q.abandon(nil, member)
					return nil, q.mismatch(stored)
				}
				// The grant ran after the server answered the request
				// sent at confirmed (that answer still saw a waiter), so
				// the holder's server-side expiry, a TTL after the grant,
				// is later than confirmed+TTL: the lease may start its
				// deadline from confirmed, with no round trip. When too
				// little of that is left for a renewal to get through,
				// confirm with a renewal sent now instead.
				if time.Until(confirmed.Add(q.s.ttl-q.s.margin())) >= q.s.interval()/2 {
					if q.s.rec.Enabled(ctx, slog.LevelDebug) {
						t.Debug(ctx, "handoff", slog.Uint64("token", tok))
					}
					return q.lease(ctx, member, tok, confirmed)
				}
				if q.s.rec.Enabled(ctx, slog.LevelDebug) {
					t.Debug(ctx, "handoff, confirming with a renewal", slog.Uint64("token", tok))
				}
				sent := time.Now()
				p := q.start(ctx, renewScript, member, 0)
				r, err, ok := q.await(ctx, p)
				if !ok {
					return nil, q.gaveUp(ctx, p, member, "waiting for")
				}
				if err == nil && r.status == 1 {
					return q.lease(ctx, member, tok, sent)
				}
				if err == nil {
					// Gone since the grant: the renewal said why.
					return nil, goneError(r.n, "new lease", q.name)
				}
			}
		case <-timer.C:
			if sb.suspend.Load() {
				timer.Reset(q.s.interval())
				continue
			}
		}
		sent := time.Now()
		p := q.start(ctx, checkScript, member, q.limitFor(kind))
		r, err, ok := q.await(ctx, p)
		switch {
		case !ok:
			return nil, q.gaveUp(ctx, p, member, "waiting for")
		case err != nil && isDenied(err):
			q.abandon(nil, member)
			return nil, failure(err, "waiting for %q", q.name)
		case err != nil:
			if time.Since(confirmed) > q.s.ttl-q.s.margin() {
				q.abandon(nil, member)
				return nil, failure(err, "waiting for %q", q.name)
			}
			t.Debug(ctx, "re-check failed, retrying", slog.Any("error", err))
			next = q.s.interval() / 4
		case r.status == 1:
			var stored int64
			if len(r.extra) > 0 {
				stored, _ = r.extra[0].(int64)
			}
			if !q.limitAgrees(stored) {
				q.abandon(nil, member)
				return nil, q.mismatch(stored)
			}
			return q.lease(ctx, member, uint64(r.n), sent)
		case r.status == -1:
			return nil, goneError(r.n, "waiter", q.name)
		case r.status == -2 && !q.limitAgrees(r.n):
			q.abandon(nil, member)
			return nil, q.mismatch(r.n)
		case r.status == -2:
			// SetLimit is storing the limit Redis has: look again soon.
			confirmed = sent
			next = backoff.Floor
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

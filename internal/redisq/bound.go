package redisq

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/redis/go-redis/v9"
)

// go-redis reads a reply until the client's ReadTimeout (3 s by default),
// or the context's deadline only with Options.ContextTimeoutEnabled, and
// never stops at a context cancelled without a deadline. A connection
// whose packets are dropped (a blackhole, not a close) would hold a call
// that long, whatever its caller's context says. So every request of
// this package runs in a goroutine of its own, and the caller stops
// waiting when its context ends: the abandoned request goes on until the
// client gives up on it (ReadTimeout, or the context's deadline when
// ContextTimeoutEnabled is set), and its outcome is then ignored or, when
// it may have written state, cleaned up (see abandon).
//
// A client that gives up at a context's deadline lets a request run on its
// caller's goroutine instead (see runInline).

// A request on the caller's goroutine. Handing each request to a goroutine
// of its own costs the caller two wake-ups per round trip (the goroutine's
// start and its answer), each of which may wake an idle processor: on a
// small machine that is as much as the request itself. When the client
// gives up at a context's deadline (go-redis's ContextTimeoutEnabled), a
// request that may be sent again runs on the caller's goroutine instead,
// under a deadline inlineBound away (or the caller's, if sooner). A
// cancellation without a deadline then takes effect when the answer
// arrives or at that bound. When the bound passes first, the outcome is
// unknown, and the caller goes on as if the request had not been answered:
// it sends it again in a goroutine, or, having given up, cleans up.

// inlineBound bounds a request on the caller's goroutine: half of
// distsync.CancelGrace, so that an acquisition cancelled meanwhile still
// has the other half to delete what it wrote.
const inlineBound = distsync.CancelGrace / 2

// honorsDeadlines reports whether c gives up on a request at its context's
// deadline.
func honorsDeadlines(c Client) bool {
	switch c := c.(type) {
	case *redis.Client:
		return c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return c.Options().ContextTimeoutEnabled
	}
	return false
}

// runInline runs script s for member on the caller's goroutine when the
// session's client honours deadlines (see inlineBound). known is false when
// it did not run (the client does not), or when its answer did not arrive
// by the bound: the script may or may not have run.
func (s *Session) runInline(ctx context.Context, sc *redis.Script, k Keys, member string, limit int64, extra ...any) (r result, err error, known bool) {
	if !s.deadlines {
		return result{}, nil, false
	}
	bctx := boundedBy(ctx, inlineBound)
	r, err = run(bctx, s.c, sc, k, member, limit, extra...)
	if err != nil && bctx.Err() != nil {
		// Cut off by the bound, or by ctx (a cancellation seen only while
		// waiting for a connection or between retries): unknown.
		return result{}, err, false
	}
	return r, err, true
}

// bounded is its parent with a deadline no later than its own: what
// context.WithTimeout makes, without the timer and its allocations, for the
// requests on the caller's goroutine (runInline), two per Lock+Release. A
// client that honours deadlines sets its connection's read and write
// deadlines from Deadline, which is what ends a request the server does not
// answer; the parent's cancellation still shows through Done and Err. What
// the client waits for on Done alone (a free connection of a full pool, a
// pause between retries) is cut short by the parent's cancellation, not by
// the deadline; the next read or write then fails at once.
type bounded struct {
	context.Context
	deadline time.Time
}

// boundedBy returns ctx bounded to d from now.
func boundedBy(ctx context.Context, d time.Duration) *bounded {
	dl := time.Now().Add(d)
	if pd, ok := ctx.Deadline(); ok && pd.Before(dl) {
		dl = pd
	}
	return &bounded{ctx, dl}
}

func (b *bounded) Deadline() (time.Time, bool) { return b.deadline, true }

func (b *bounded) Err() error {
	if err := b.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(b.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// closeTimeout bounds Session.Close's deletion of its leases' state: what
// Redis did not confirm by then expires within the TTL.
const closeTimeout = time.Second

type outcome[T any] struct {
	v   T
	err error
}

// call runs f under ctx and returns its result, or ctx's cause as soon as
// ctx ends (f then runs on unobserved, until the client gives up).
func call[T any](ctx context.Context, f func(context.Context) (T, error)) (T, error) {
	if ctx.Done() == nil {
		return f(ctx)
	}
	c := make(chan outcome[T], 1)
	go func() {
		v, err := f(ctx)
		c <- outcome[T]{v, err}
	}()
	select {
	case o := <-c:
		return o.v, o.err
	case <-ctx.Done():
		var zero T
		return zero, context.Cause(ctx)
	}
}

// pending is a request whose outcome must be known, whatever its caller
// does meanwhile: its reply arrives on the channel, once.
type pending <-chan outcome[result]

// start runs script s for member, with the caller's limit and the
// script's own arguments, in the background under opTimeout (not the
// caller's context, so that a cancellation cannot leave its outcome
// unknown) and returns the channel its outcome arrives on.
func (q *Queue) start(ctx context.Context, s *redis.Script, member string, limit int64, extra ...any) pending {
	c := make(chan outcome[result], 1)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	go func() {
		defer cancel()
		r, err := run(rctx, q.s.c, s, q.k, member, limit, extra...)
		c <- outcome[result]{r, err}
	}()
	return c
}

// unanswered is the pending of a request sent on the caller's goroutine
// whose answer did not arrive in time: it may or may not have run (see
// abandon).
var unanswered pending = make(chan outcome[result])

// answeredLate is the pending of a request sent on the caller's goroutine
// that was answered after the caller's context ended: there is nothing to
// wait for, and part of the caller's grace is spent (see abandon).
var answeredLate pending = make(chan outcome[result])

// releaseArgs returns the release script's own arguments for member:
// "abandon" when an acquire request for it went unanswered (see
// abandon), none otherwise.
func (s *Session) releaseArgs(member string) []any {
	if _, ok := s.unsure.LoadAndDelete(member); ok {
		return []any{"abandon"}
	}
	return nil
}

// await waits for p's outcome; it returns ok false, leaving p unread, when
// ctx ends or the session closes first.
func (q *Queue) await(ctx context.Context, p pending) (r result, err error, ok bool) {
	select {
	case o := <-p:
		return o.v, o.err, true
	case <-ctx.Done():
	case <-q.s.hub.closing:
	}
	return result{}, nil, false
}

// abandon deletes member, held or waiting, after its caller gave up:
// once p (the request that may have written it, nil if none) has
// answered, it runs the release script. It returns when that first
// attempt is done or after distsync.CancelGrace, whichever comes first;
// the rest (retries included) goes on in the background, each request
// bounded by opTimeout, and stops when the session closes. A failed deletion is logged at Warn and retried with a
// backoff until it succeeds, Redis refuses it for good, or a TTL has
// passed (the member has expired by then). If Redis never answers, member
// expires within the TTL.
//
// When p is unanswered, the script that may have written member may also
// run after this deletion: the release then leaves a record that member
// was abandoned, and the acquire script refuses such a member. When p is
// unanswered or answeredLate, the caller's context ended while the request
// ran on its goroutine, up to inlineBound ago: the caller then waits only
// what is left of the grace.
func (q *Queue) abandon(p pending, member string) {
	grace := distsync.CancelGrace
	if p == unanswered || p == answeredLate {
		p, grace = nil, distsync.CancelGrace-inlineBound
	}
	done := make(chan struct{})
	// The caller waits for the first attempt only: retries after a failed
	// one go on in the background.
	attempted := sync.OnceFunc(func() { close(done) })
	if !q.s.goBackground(func(ctx context.Context) {
		defer attempted()
		if p != nil {
			select {
			case <-p:
			case <-ctx.Done():
				return
			}
		}
		start := time.Now()
		var delay backoff.Backoff
		extra := q.s.releaseArgs(member)
		for {
			rctx, cancel := context.WithTimeout(ctx, opTimeout)
			r, err := runCtx(rctx, q.s.c, releaseScript, q.k, member, 0, extra...)
			cancel()
			attempted()
			if err == nil {
				deliver(r.extra) // the waiters it granted, as a Release does
			}
			if err == nil || ctx.Err() != nil {
				return
			}
			retry := !isDenied(err) && time.Since(start) < q.s.ttl
			if q.s.rec.Enabled(ctx, slog.LevelWarn) {
				q.s.rec.Warn(ctx, "cleanup failed", slog.String("name", q.name), slog.String("member", member),
					slog.String("identity", q.s.identity), slog.Bool("retrying", retry), slog.Any("error", err))
			}
			if !retry || !delay.Sleep(ctx) {
				return
			}
		}
	}) {
		return
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

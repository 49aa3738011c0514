package redisq

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/leaseend"
)

// A Lease is one held member of a name, renewed every TTL/3 until it is
// released or lost. It is safe for concurrent use.
type Lease struct {
	s      *Session
	name   string // the user's name, for errors
	k      Keys
	member string
	token  uint64

	leaseend.Lifecycle // Done, Err and how Release ends the lease

	stop     chan struct{}
	cancel   context.CancelFunc // set by the renewal loop, before it starts
	loopDone chan struct{}
	suspend  atomic.Bool

	// The renewal loop starts at the first renewal, in the goroutine of
	// the timer that fires then: a lease released before (most are) has
	// run no goroutine, and its release waits for none.
	mu      sync.Mutex
	first   *time.Timer
	started bool // the loop runs (or ran): Release waits for loopDone
	stopped bool // Release began: the loop does not start
}

var _ distsync.Lease = (*Lease)(nil)

// newLease starts the renewal of member, held with token, whose last
// confirmed refresh was sent at sent.
func newLease(s *Session, name string, k Keys, member string, token uint64, sent time.Time) (*Lease, bool) {
	l := &Lease{
		s: s, name: name, k: k, member: member, token: token,
		stop: make(chan struct{}), loopDone: make(chan struct{}),
	}
	if !s.track(l) {
		return nil, false
	}
	deadline := sent.Add(s.ttl - s.margin())
	// A lease that starts from an earlier confirmation (a waiter granted
	// while it slept) renews sooner, while half its time is left. The
	// first renewal comes before the deadline, so the loop started then
	// is in time to report a loss.
	l.mu.Lock()
	l.first = time.AfterFunc(min(s.interval(), time.Until(deadline)/2), func() { l.run(deadline) })
	l.mu.Unlock()
	return l, true
}

// run runs the renewal loop, unless Release began first.
func (l *Lease) run(deadline time.Time) {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.started = true
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.mu.Unlock()
	l.renew(ctx, deadline)
}

// halt keeps the renewal loop from starting and reports whether it had
// started (it then exits once stop is closed).
func (l *Lease) halt() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopped = true
	l.first.Stop()
	return l.started
}

// Token returns the fencing token: a counter of the name, bumped by the
// script that granted this lease.
func (l *Lease) Token() uint64 { return l.token }

// end ends the lease as lost, once, unless a Release is under way.
func (l *Lease) end(err error) { l.Lose(err) }

type renewal struct {
	sent time.Time
	res  result
	err  error
}

// renew refreshes the member every TTL/3. The lease is lost when the
// server says the member is gone, or when no refresh sent before
// deadline-TTL+margin was confirmed by deadline (monotonic clock): the
// server copy may expire a margin later. With replica acknowledgement, a
// refresh too few replicas acknowledged is not a confirmation: it is
// retried like a failed one.
func (l *Lease) renew(ctx context.Context, deadline time.Time) {
	defer close(l.loopDone)
	defer l.cancel()
	interval := l.s.interval()
	deadlineT := time.NewTimer(time.Until(deadline))
	defer deadlineT.Stop()
	// The first renewal is due now (see newLease).
	renewT := time.NewTimer(0)
	defer renewT.Stop()
	var (
		inflight chan renewal
		lastErr  error
		due      time.Time // when the renewal now being tried was first due
	)
	wait := func() {
		if inflight != nil {
			l.cancel()
			<-inflight
		}
	}
	rec := l.s.rec
	for {
		select {
		case <-l.stop:
			wait()
			return
		case <-deadlineT.C:
			l.end(distsync.Lost(distsync.LossRenewal, lastErr, "%q: renewal not confirmed within %v", l.name, l.s.ttl-l.s.margin()))
			wait()
			return
		case now := <-renewT.C:
			if l.suspend.Load() {
				renewT.Reset(interval)
				continue
			}
			if due.IsZero() {
				due = now
			}
			inflight = make(chan renewal, 1)
			sent := time.Now()
			go func(c chan<- renewal, deadline time.Time) {
				rctx, cancel := context.WithDeadline(ctx, deadline)
				defer cancel()
				res, err := runAckedCtx(rctx, l.s, l.k, renewScript, l.member)
				c <- renewal{sent: sent, res: res, err: err}
			}(inflight, deadline)
		case r := <-inflight:
			inflight = nil
			select {
			case <-l.stop:
				// Released meanwhile: the answer may predate or follow
				// the release and means nothing.
				return
			default:
			}
			took := time.Since(r.sent)
			switch {
			case r.err == nil && r.res.status == 1:
				rec.Renewal(ctx, took, nil)
				// A confirmation more than a quarter interval after its
				// due time needed a retry or a slow server: say how
				// little was left.
				if late := time.Since(due); late > interval/4 {
					rec.RenewalLate(ctx, late, time.Until(deadline), l.attrs()...)
				}
				due = time.Time{}
				deadline = r.sent.Add(l.s.ttl - l.s.margin())
				deadlineT.Reset(time.Until(deadline))
				renewT.Reset(interval)
			case r.err == nil:
				err := goneError(r.res.n, "lease", l.name)
				rec.Renewal(ctx, took, err, l.attrs()...)
				l.end(err)
				return
			case isDenied(r.err):
				// Redis refuses us for good: no renewal will get
				// through, so the lease is lost now, not at its deadline.
				rec.Renewal(ctx, took, r.err, l.attrs()...)
				l.end(distsync.Lost(distsync.LossRenewal, r.err, "%q: renewal denied", l.name))
				return
			default:
				rec.Renewal(ctx, took, r.err, l.attrs()...)
				lastErr = r.err
				renewT.Reset(max(interval/4, 5*time.Millisecond))
			}
		}
	}
}

// attrs are the log attributes of the lease, built only for a record
// that is logged.
func (l *Lease) attrs() []slog.Attr {
	return []slog.Attr{slog.String("name", l.name), slog.Uint64("token", l.token), slog.String("identity", l.s.identity)}
}

// Release deletes the lease's member, only its own (compare by member), and
// hands the name to the next waiters. It is idempotent. After it returns
// Done is closed; an error wraps ErrUnavailable when Redis did not confirm
// the deletion before ctx ended, and the member then expires within the
// TTL. It returns when ctx ends, even if Redis does not answer.
func (l *Lease) Release(ctx context.Context) error {
	return l.shutdown(ctx, distsync.ErrReleased)
}

func (l *Lease) shutdown(ctx context.Context, final error) error {
	return l.Lifecycle.Release(ctx, final,
		func(ctx context.Context) error {
			// Stop the renewals, but release at once (the next holder
			// waits on this script): a renewal that runs after the
			// release finds nothing to refresh and recreates nothing, and
			// the loop, seeing stop closed, ignores its answer.
			close(l.stop)
			// The release may run twice: on this goroutine first, and
			// again in a goroutine when its answer is late (runInline).
			extra := l.s.releaseArgs(l.member)
			// The reply names the waiters the release granted: those of
			// this process are woken at once (see deliver).
			r, err, known := l.s.runInline(ctx, releaseScript, l.k, l.member, 0, extra...)
			if !known {
				r, err = runCtx(ctx, l.s.c, releaseScript, l.k, l.member, 0, extra...)
			}
			if err != nil {
				return failure(err, "release %q", l.name)
			}
			deliver(r.extra)
			return nil
		},
		func() {
			if l.halt() {
				<-l.loopDone
			}
			l.s.untrack(l)
		})
}

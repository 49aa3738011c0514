package distsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync/internal/backoff"
)

// Callbacks are what an Elector calls as leadership comes and goes, in the
// manner of Kubernetes' leaderelection.
type Callbacks struct {
	// OnStartedLeading is called, in a goroutine of its own, each time the
	// candidate becomes leader, with the Leadership (for its term, the
	// fencing token to hand to the resources the leader writes to, and
	// Proclaim). Its context is cancelled the moment leadership is lost
	// (context.Cause is then the Leadership's Err, wrapping ErrLost) or
	// Run's context ends. It should do the leader's work and return once
	// its context is cancelled: leadership is released (resigned) only
	// after it returned, so after a shutdown the next leader never starts
	// while this one's work still runs. (After a loss it may: the backend
	// has already handed leadership on, which is what the term is for.)
	// When it returns while still leading, the work is over: Run resigns
	// and returns; calling the Leadership's Release (resigning early)
	// cancels the context and ends Run the same way. Required.
	OnStartedLeading func(ctx context.Context, l Leadership)

	// OnStoppedLeading is called, in Run's goroutine, once after each
	// OnStartedLeading. When leadership is lost it is called as soon as
	// the loss is known, together with the cancellation of the work's
	// context, without waiting for the work to return or for any backend
	// request. Otherwise (Run's context ended, or the work returned) it
	// is called after the work returned and leadership was released.
	// Optional.
	OnStoppedLeading func()

	// OnNewLeader is called with every change of the election's state that
	// Election.Observe delivers, in order, starting with the state when
	// Run started: each new leader (this candidate included), each
	// proclaimed value, and "no leader" (Leader.None). It runs in a
	// goroutine of its own, concurrently with the other callbacks, one
	// call at a time; Run returns only after the last call returned.
	// Optional.
	OnNewLeader func(Leader)
}

// DefaultReleaseTimeout bounds the resignation after the leader's work
// returned when Elector.ReleaseTimeout is zero.
const DefaultReleaseTimeout = 5 * time.Second

// An Elector campaigns in an Election and runs the leader's work while it
// leads, like client-go's LeaderElector. It works with any Election:
// etcd's, Redis' or ZooKeeper's. Set its fields, then call Run; IsLeader,
// Leader, Check and Healthz may be called from any goroutine at any time,
// also while Run runs. An Elector runs one Run at a time and must not be
// copied after first use.
type Elector struct {
	// Election is what the Elector campaigns in. Required.
	Election Election

	// Value is the campaign value observers see.
	Value []byte

	// Identity names this candidate in logs and health reports (default
	// DefaultIdentity(), "host:pid").
	Identity string

	// Callbacks are called as leadership comes and goes.
	// OnStartedLeading is required.
	Callbacks Callbacks

	// StopOnLoss makes Run return, with the Leadership's Err (wrapping
	// ErrLost), when leadership is lost, instead of campaigning again.
	StopOnLoss bool

	// ReleaseTimeout bounds the resignation after the leader's work
	// returned, since Run's own context may have ended by then (default
	// DefaultReleaseTimeout).
	ReleaseTimeout time.Duration

	// Logger receives the Elector's records (default none): Info when
	// leadership starts and stops, Warn when it is lost, when a campaign
	// fails and is retried, and when the work outlives a lost leadership.
	Logger *slog.Logger

	running atomic.Bool
	mu      sync.Mutex
	lead    Leadership // the leadership whose work runs; nil otherwise
	lostAt  time.Time  // when lead was seen ending while its work ran
	seen    Leader     // the last state observed
	hasSeen bool
}

// IsLeader reports whether this Elector holds leadership now: a Campaign
// succeeded and the Leadership has not ended. It does no I/O. It turns
// false the moment a loss is known, before the work returns.
func (el *Elector) IsLeader() bool {
	el.mu.Lock()
	defer el.mu.Unlock()
	return el.lead != nil && el.lead.Err() == nil
}

// Leader returns the last state of the election that Run observed, and
// false before the first one (or when Run is not running and never ran).
// It does no I/O.
func (el *Elector) Leader() (Leader, bool) {
	el.mu.Lock()
	defer el.mu.Unlock()
	return el.seen, el.hasSeen
}

// Check is a health check in the manner of client-go's HealthzAdaptor. It
// returns nil unless this process still runs the leader's work for a
// leadership that ended (lost, or released from elsewhere) more than
// tolerance ago: a leader whose work ignores its context, and may write
// after another leader started. Such a process is unhealthy; restarting
// it is the safe way out.
func (el *Elector) Check(tolerance time.Duration) error {
	el.mu.Lock()
	defer el.mu.Unlock()
	if el.lead == nil {
		return nil
	}
	err := el.lead.Err()
	if err == nil {
		return nil
	}
	if el.lostAt.IsZero() {
		// Run has not seen the end yet: it will within its select.
		return nil
	}
	if since := time.Since(el.lostAt); since > tolerance {
		return fmt.Errorf("distsync: %s still runs the leader's work %v after its leadership (term %d) ended: %w",
			el.identity(), since.Round(time.Millisecond), el.lead.Token(), err)
	}
	return nil
}

// Healthz returns an http.Handler that answers 200 "ok" while Check
// (tolerance) passes and 500 with Check's error otherwise.
func (el *Elector) Healthz(tolerance time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if err := el.Check(tolerance); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

func (el *Elector) identity() string {
	if el.Identity != "" {
		return el.Identity
	}
	return DefaultIdentity()
}

func (el *Elector) log(level slog.Level, msg string, attrs ...slog.Attr) {
	if el.Logger != nil && el.Logger.Enabled(context.Background(), level) {
		el.Logger.LogAttrs(context.Background(), level, msg, append(attrs, slog.String("identity", el.identity()))...)
	}
}

// Run campaigns and calls the Callbacks as leadership comes and goes,
// until ctx ends, until the leader's work returns by itself, or, with
// StopOnLoss, until leadership is lost.
//
// When leadership is lost Run cancels the work's context and calls
// OnStoppedLeading at once, waits for OnStartedLeading to return and
// campaigns again. When ctx ends Run cancels the work's context, waits
// for OnStartedLeading to return, and only then releases leadership,
// handing it over at once, and calls OnStoppedLeading; a campaign in
// progress is withdrawn. Campaign failures that may pass (ErrUnavailable,
// ErrLost) are retried with a backoff of 50 ms doubling up to 2 s.
//
// Run returns nil when ctx ended or the work returned by itself and
// leadership, if held, was released. Otherwise its error wraps ErrLost
// (StopOnLoss), ErrUnavailable (the final Release was not confirmed; the
// backend state is removed in the background or expires with the
// session), ErrInvalidConfig (no Election or OnStartedLeading, a negative
// ReleaseTimeout, or a second Run while one runs), or the error of a
// Campaign that cannot succeed later (ErrClosed, ErrDenied). When Run has
// returned, no callback runs and its goroutines have ended; no candidacy is
// left, except one whose removal the backend did not confirm, which the
// backend goes on removing or lets expire.
func (el *Elector) Run(ctx context.Context) error {
	if el.Election == nil || el.Callbacks.OnStartedLeading == nil || el.ReleaseTimeout < 0 {
		return Errorf(ErrInvalidConfig, nil, "elector: nil Election or OnStartedLeading, or a negative ReleaseTimeout")
	}
	if !el.running.CompareAndSwap(false, true) {
		return Errorf(ErrInvalidConfig, nil, "elector: Run is already running")
	}
	defer el.running.Store(false)

	octx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for l := range el.Election.Observe(octx) {
			el.mu.Lock()
			el.seen, el.hasSeen = l, true
			el.mu.Unlock()
			if el.Callbacks.OnNewLeader != nil {
				el.Callbacks.OnNewLeader(l)
			}
		}
	})
	defer func() {
		stop()
		wg.Wait()
	}()

	var delay backoff.Backoff
	for {
		l, err := el.Election.Campaign(ctx, el.Value)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrLost) {
				return err
			}
			el.log(slog.LevelWarn, "campaign failed; retrying", slog.Any("error", err))
			if !delay.Sleep(ctx) {
				return nil
			}
			continue
		}
		delay.Reset()
		lost, relErr := el.leadWith(ctx, l)
		switch {
		case lost != nil && ctx.Err() == nil && !el.StopOnLoss:
			continue // a lost leadership left nothing to release
		case lost != nil && ctx.Err() == nil:
			return lost
		default:
			return relErr
		}
	}
}

// leadWith runs the leader's work under l and then resigns. lost is l's
// Err if leadership was lost before the work returned; relErr is
// Release's result.
func (el *Elector) leadWith(ctx context.Context, l Leadership) (lost, relErr error) {
	el.mu.Lock()
	el.lead, el.lostAt = l, time.Time{}
	el.mu.Unlock()
	defer func() {
		el.mu.Lock()
		el.lead = nil
		el.mu.Unlock()
	}()
	el.log(slog.LevelInfo, "started leading", slog.Uint64("term", l.Token()))

	wctx, cancel := LeaseContext(ctx, l)
	workDone := make(chan struct{})
	go func() {
		defer close(workDone)
		el.Callbacks.OnStartedLeading(wctx, l)
	}()
	stopped := false
	select {
	case <-workDone:
	case <-l.Done():
		el.mu.Lock()
		el.lostAt = time.Now()
		el.mu.Unlock()
		if err := l.Err(); errors.Is(err, ErrLost) {
			el.log(slog.LevelWarn, "leadership lost", slog.Uint64("term", l.Token()), slog.Any("error", err))
			stopped = true
			if el.Callbacks.OnStoppedLeading != nil {
				el.Callbacks.OnStoppedLeading()
			}
		}
		<-workDone
	}
	cancel()
	if err := l.Err(); errors.Is(err, ErrLost) {
		lost = err
		if !stopped {
			// The work returned just as leadership was lost: the loss
			// needs no Release to be confirmed before it is told.
			el.log(slog.LevelWarn, "leadership lost", slog.Uint64("term", l.Token()), slog.Any("error", err))
			stopped = true
			if el.Callbacks.OnStoppedLeading != nil {
				el.Callbacks.OnStoppedLeading()
			}
		}
	}
	timeout := el.ReleaseTimeout
	if timeout == 0 {
		timeout = DefaultReleaseTimeout
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	relErr = l.Release(rctx)
	rcancel()
	if !stopped && el.Callbacks.OnStoppedLeading != nil {
		el.Callbacks.OnStoppedLeading()
	}
	el.log(slog.LevelInfo, "stopped leading", slog.Uint64("term", l.Token()))
	return lost, relErr
}

// A RunOption configures Run.
type RunOption func(*Elector)

// StopOnLoss makes Run return, with the Leadership's Err (wrapping
// ErrLost), when leadership is lost, instead of campaigning again (see
// Elector.StopOnLoss).
func StopOnLoss() RunOption { return func(el *Elector) { el.StopOnLoss = true } }

// Run is a one-off Elector: it runs an Elector of e, value and cb (and
// opts) until ctx ends, as Elector.Run does. Use an Elector to ask
// IsLeader, Leader or Check while it runs.
func Run(ctx context.Context, e Election, value []byte, cb Callbacks, opts ...RunOption) error {
	el := &Elector{Election: e, Value: value, Callbacks: cb}
	for _, opt := range opts {
		opt(el)
	}
	return el.Run(ctx)
}

package distsync

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync/internal/backoff"
)

// Callbacks are what Run calls as leadership comes and goes, in the manner
// of Kubernetes' leaderelection.
type Callbacks struct {
	// OnStartedLeading is called, in Run's goroutine, each time the
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

	// OnStoppedLeading is called, in Run's goroutine, after each return of
	// OnStartedLeading, once leadership has been released or was lost.
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

// A RunOption configures Run.
type RunOption func(*runOptions)

type runOptions struct {
	stopOnLoss bool
}

// StopOnLoss makes Run return, with the Leadership's Err (wrapping
// ErrLost), when leadership is lost, instead of campaigning again.
func StopOnLoss() RunOption { return func(o *runOptions) { o.stopOnLoss = true } }

// releaseTimeout bounds the Release after the leader's work returned; Run's
// own context may have ended by then.
const releaseTimeout = 5 * time.Second

// Run campaigns in e with value and calls cb's callbacks as leadership
// comes and goes, until ctx ends, until the leader's work returns by itself,
// or, with StopOnLoss, until leadership is lost. It works with any Election:
// etcd's, Redis' or ZooKeeper's.
//
// When leadership is lost Run cancels the work's context, waits for
// OnStartedLeading to return, calls OnStoppedLeading and campaigns again.
// When ctx ends Run cancels the work's context, waits for OnStartedLeading
// to return, and only then releases leadership, handing it over at once;
// a campaign in progress is withdrawn. Campaign failures that may pass
// (ErrUnavailable, ErrLost) are retried with a backoff of 50 ms doubling up
// to 2 s.
//
// Run returns nil when ctx ended or the work returned by itself and
// leadership, if held, was released. Otherwise its error wraps ErrLost
// (StopOnLoss), ErrUnavailable (the final Release was not confirmed; the
// backend state is removed in the background or expires with the
// session), ErrInvalidConfig (a nil e or OnStartedLeading), or the error of
// a Campaign that cannot succeed later (ErrClosed, for one). When Run has
// returned, no callback runs and its goroutines have ended; no candidacy is
// left, except one whose removal the backend did not confirm, which the
// backend goes on removing or lets expire.
func Run(ctx context.Context, e Election, value []byte, cb Callbacks, opts ...RunOption) error {
	if e == nil || cb.OnStartedLeading == nil {
		return Errorf(ErrInvalidConfig, nil, "run: nil election or OnStartedLeading")
	}
	var o runOptions
	for _, opt := range opts {
		opt(&o)
	}
	if cb.OnNewLeader != nil {
		octx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for l := range e.Observe(octx) {
				cb.OnNewLeader(l)
			}
		})
		defer func() {
			stop()
			wg.Wait()
		}()
	}

	var delay backoff.Backoff
	for {
		l, err := e.Campaign(ctx, value)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrLost) {
				return err
			}
			if !delay.Sleep(ctx) {
				return nil
			}
			continue
		}
		delay.Reset()
		lost, relErr := lead(ctx, l, cb)
		switch {
		case lost != nil && ctx.Err() == nil && !o.stopOnLoss:
			continue // a lost leadership left nothing to release
		case lost != nil && ctx.Err() == nil:
			return lost
		default:
			return relErr
		}
	}
}

// lead runs the leader's work under l and then resigns. lost is l's Err if
// leadership was lost before the work returned; relErr is Release's result.
func lead(ctx context.Context, l Leadership, cb Callbacks) (lost, relErr error) {
	wctx, cancel := LeaseContext(ctx, l)
	cb.OnStartedLeading(wctx, l)
	cancel()
	if err := l.Err(); errors.Is(err, ErrLost) {
		lost = err
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	relErr = l.Release(rctx)
	rcancel()
	if cb.OnStoppedLeading != nil {
		cb.OnStoppedLeading()
	}
	return lost, relErr
}

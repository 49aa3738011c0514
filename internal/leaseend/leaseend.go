// Package leaseend is how every backend's Lease ends: a Done channel closed
// exactly once, the reason, which never changes afterwards, and Release's
// ordering and idempotence (Lifecycle).
package leaseend

import (
	"context"
	"sync"
	"sync/atomic"
)

// End is the ending of one lease; its zero value is a lease not yet ended.
// Embed it to give a Lease its Done and Err. It is safe for concurrent use
// and must not be copied after first use.
type End struct {
	once  sync.Once
	done  chan struct{}
	mu    sync.Mutex
	err   error
	hooks []func(error)
}

func (e *End) ch() chan struct{} {
	e.once.Do(func() { e.done = make(chan struct{}) })
	return e.done
}

// Done returns a channel closed when the lease ends (released or lost).
func (e *End) Done() <-chan struct{} { return e.ch() }

// Err returns nil while the lease is held, then why it ended: an error
// wrapping distsync.ErrReleased or distsync.ErrLost and its cause.
func (e *End) Err() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Set ends the lease with err (non-nil), unless it has already ended, and
// reports whether this call ended it.
func (e *End) Set(err error) bool {
	ch := e.ch()
	e.mu.Lock()
	if e.err != nil {
		e.mu.Unlock()
		return false
	}
	e.err = err
	hooks := e.hooks
	e.hooks = nil
	e.mu.Unlock()
	// The hooks run before Done closes, so that whoever waits on Done
	// sees the end already recorded (metrics, logs).
	for _, f := range hooks {
		f(err)
	}
	close(ch)
	return true
}

// OnEnd calls f with the lease's Err when it ends, in the goroutine that
// ends it, before Done closes (at once, in this one, if it has ended
// already). f must not block. Telemetry records hold times and losses with it.
func (e *End) OnEnd(f func(error)) {
	e.mu.Lock()
	if err := e.err; err != nil {
		e.mu.Unlock()
		f(err)
		return
	}
	e.hooks = append(e.hooks, f)
	e.mu.Unlock()
}

// Lifecycle is how every backend's Lease ends, written once: its End (Done
// and Err), plus the ordering and idempotence of Release and the rule that
// a loss seen during a Release is the release itself. Embed it in a Lease.
// It is safe for concurrent use and must not be copied after first use.
type Lifecycle struct {
	End
	once      sync.Once
	releasing atomic.Bool
	err       error
}

// Release ends the lease once; later calls return the first call's
// result. From the moment it begins, Lose is ignored: what a follower sees
// then is the release itself. It runs remove (delete the lease's backend
// state) before stop (end the lease's follower and wait for it), so the
// next holder is not kept waiting while the follower stops. Then the lease
// ends with final, unless it had ended already. remove's error is the
// result, unless the lease was lost before Release began: its state is
// then gone or being removed, and there is nothing to confirm.
func (c *Lifecycle) Release(ctx context.Context, final error, remove func(context.Context) error, stop func()) error {
	c.once.Do(func() {
		c.releasing.Store(true)
		lost := c.Err() != nil
		err := remove(ctx)
		stop()
		c.Set(final)
		if !lost {
			c.err = err
		}
	})
	return c.err
}

// Lose ends the lease with err (wrapping distsync.ErrLost), unless it has
// ended or a Release has begun, and reports whether it ended it.
func (c *Lifecycle) Lose(err error) bool {
	if c.releasing.Load() {
		return false
	}
	return c.Set(err)
}

// Releasing reports whether Release has begun.
func (c *Lifecycle) Releasing() bool { return c.releasing.Load() }

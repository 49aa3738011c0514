package etcdq

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// A health follows the renewals of one session lease (an epoch) for every
// queue and lease on it, from the lease's grant (or first use) until it
// ends. It knows, at any moment, until when the lease is sure to live: the
// last confirmed renewal plus the TTL, less a margin. Keeping it per lease
// (not per waiter or holder) means that a primitive reused after an idle
// period arms its deadline from a fresh renewal, never from a stale one.
type health struct {
	mu        sync.Mutex
	deadline  time.Time     // zero until the first confirmation
	ttl       time.Duration // the lease's TTL, once known
	keptAlive bool          // a keep-alive response has been seen
	changed   chan struct{} // closed and replaced at every change
	endErr    error         // set once the lease ended
}

func newHealth() *health { return &health{changed: make(chan struct{})} }

// followFixed records the keep-alive responses of a caller's session
// until it ends. The subscription adds a channel to the client's existing
// keep-alive of the lease; it sends no request. Until the first response,
// ask reads the lease's remaining TTL.
func (e *epoch) followFixed(s *concurrency.Session) {
	ka, err := s.Client().KeepAlive(s.Ctx(), s.Lease())
	if err != nil {
		e.finish(distsync.Lost(distsync.LossRenewal, err, "session lease keep-alive halted"), false)
		return
	}
	go e.ask(s)
	go func() {
		for {
			select {
			case resp, ok := <-ka:
				if !ok {
					e.finish(distsync.Lost(distsync.LossSessionEnded, nil, "session lease keep-alive ended: the lease expired or was revoked"), false)
					return
				}
				ttl := time.Duration(resp.TTL) * time.Second
				e.h.set(time.Now().Add(ttl-margin(ttl)), ttl, true)
			case <-s.Done():
				e.finish(distsync.Lost(distsync.LossSessionEnded, nil, "etcd session ended"), false)
				return
			}
		}
	}()
}

// ask reads the lease's remaining TTL, for a session this package did not
// grant, until a keep-alive response confirms the lease. etcd gives the
// remaining TTL in whole seconds, rounded down: the lease lives at least
// that long after the request was sent, which needs no further margin. As
// that may end before the client's next keep-alive (sent every TTL/3 on a
// 500 ms tick), ask reads it again shortly before its deadline, for as
// long as no keep-alive response came.
func (e *epoch) ask(s *concurrency.Session) {
	h := e.h
	var b backoff.Backoff
	for {
		h.mu.Lock()
		done := h.keptAlive || h.endErr != nil
		h.mu.Unlock()
		if done {
			return
		}
		sent := time.Now()
		ctx, cancel := context.WithTimeout(e.ctx, attemptTimeout)
		resp, err := s.Client().TimeToLive(ctx, s.Lease())
		cancel()
		wait := b.Next()
		switch {
		case e.ctx.Err() != nil:
			return
		case errors.Is(err, rpctypes.ErrLeaseNotFound), err == nil && resp.TTL < 0:
			e.finish(distsync.Lost(distsync.LossSessionEnded, err, "session lease %x has expired", s.Lease()), false)
			return
		case Denied(err):
			// Never retried; the client's own keep-alive goes on.
			return
		case err == nil && resp.TTL > 0:
			rem := time.Duration(resp.TTL) * time.Second
			h.set(sent.Add(rem), time.Duration(resp.GrantedTTL)*time.Second, false)
			b.Reset()
			wait = max(rem-askAhead, 0)
		}
		select {
		case <-e.ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// askAhead is how long before a deadline known from a TTL query ask reads
// the TTL again, if no keep-alive response came in between.
const askAhead = 300 * time.Millisecond

// set moves the deadline forward (never back) and wakes the subscribers.
func (h *health) set(deadline time.Time, ttl time.Duration, keepAlive bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.keptAlive = h.keptAlive || keepAlive
	if h.endErr != nil || !deadline.After(h.deadline) {
		return
	}
	h.deadline, h.ttl = deadline, ttl
	close(h.changed)
	h.changed = make(chan struct{})
}

func (h *health) end(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.endErr == nil {
		h.endErr = err
		close(h.changed)
	}
}

// state returns the deadline (zero while unknown), a channel closed at the
// next change, and the error once the keep-alive ended.
func (h *health) state() (time.Time, <-chan struct{}, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deadline, h.changed, h.endErr
}

// grantedTTL returns the session lease's TTL, or 0 while unknown.
func (h *health) grantedTTL() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ttl
}

// check returns an error wrapping ErrLost when the lease can no longer be
// trusted at now: its keep-alive ended, or its deadline passed.
func (h *health) check(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.endErr != nil:
		return h.endErr
	case !h.deadline.IsZero() && !now.Before(h.deadline):
		return distsync.Lost(distsync.LossRenewal, nil, "session lease renewal not confirmed for %v (TTL %v)", h.ttl-margin(h.ttl), h.ttl)
	}
	return nil
}

// ready blocks until the lease's deadline is known (at once, but for the
// first use of a session this package did not grant), and fails when the
// lease can no longer be trusted.
func (h *health) ready(ctx context.Context) error {
	for {
		d, changed, err := h.state()
		switch {
		case err != nil:
			return err
		case !d.IsZero():
			return h.check(time.Now())
		}
		select {
		case <-ctx.Done():
			return distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for the session lease's first renewal")
		case <-changed:
		}
	}
}

// A renewalWatch is one waiter's or holder's view of its session's health:
// its channels fire when the health changed or the deadline passed, and
// check then says whether the lease is still to be trusted.
type renewalWatch struct {
	h       *health
	timer   *time.Timer
	expiry  <-chan time.Time // the timer's channel once a deadline is known
	changed <-chan struct{}
}

func (e *epoch) watchRenewal() *renewalWatch {
	w := &renewalWatch{h: e.h, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	_ = w.check()
	return w
}

// check re-arms the watch from the current health, and returns an error
// wrapping ErrLost when the lease can no longer be trusted.
func (w *renewalWatch) check() error {
	d, changed, err := w.h.state()
	w.changed = changed
	if err == nil {
		err = w.h.check(time.Now())
	}
	if err != nil {
		w.timer.Stop()
		w.expiry, w.changed = nil, nil
		return err
	}
	if !d.IsZero() {
		w.timer.Reset(time.Until(d))
		w.expiry = w.timer.C
	}
	return nil
}

// deadline returns the current deadline (zero while unknown).
func (w *renewalWatch) deadline() time.Time {
	d, _, _ := w.h.state()
	return d
}

// stop releases the timer; nil-safe.
func (w *renewalWatch) stop() {
	if w != nil {
		w.timer.Stop()
	}
}

// margin is how long before a possible expiry a lease counts as lost. A
// quarter of the TTL leaves room for a slow round trip; renewals every
// TTL/3 keep a healthy lease ahead of it.
func margin(ttl time.Duration) time.Duration { return ttl / 4 }

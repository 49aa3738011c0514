package etcdq

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
)

// A renewer renews an epoch's lease every TTL/3 from its last confirmed
// renewal, each attempt bounded by the lease's deadline, until the epoch
// ends. A renewal not confirmed by the deadline ends the epoch: its leases
// are lost, and the next acquisition grants a new lease. It is the
// Session's own loop rather than clientv3's (which sends every TTL/3 on a
// 500 ms tick), so that a short TTL keeps its full margin.
//
// It runs on a timer, not in a goroutine of its own: each attempt runs in
// the timer's goroutine, which ends with it. A Session spends almost all
// of its life between renewals, and a parked goroutine per Session (its
// stack grown by the renewal's gRPC call) was about 4 KiB of every waiter
// of a benchmark that opens a Session per waiter.
//
// Every request is recorded (renewal duration and failures). A renewal
// confirmed more than lateAfter(ttl) past its due time (TTL/3 after the
// previous confirmation, before any retry) is logged at Warn, with the
// time then left before the lease would have counted as lost.
type renewer struct {
	e     *epoch
	b     backoff.Backoff // only the attempt in progress touches b, next, due
	next  time.Time       // when the next attempt is due
	due   time.Time       // when the current renewal was due, whatever the retries
	timer *time.Timer

	mu      sync.Mutex
	stopped bool // the epoch ended: no more attempts
	pending bool // the timer is set; its firing owns the Session's wg slot
}

// startRenewals arms the first renewal of e, a lease confirmed at
// confirmed. It reports false, arming nothing, once the Session is closed.
// The renewals hold one slot of the Session's wait group from here until
// they stop, so that Close waits for an attempt in progress.
func (e *epoch) startRenewals(confirmed time.Time) bool {
	s := e.src
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.mu.Unlock()
	r := &renewer{e: e, next: confirmed.Add(s.ttl / 3)}
	r.due = r.next
	// finish stops a timer that has not fired; one that has sees the end
	// in fire and stops there. (An epoch whose client closed under it ends
	// without finish: its timer fires once more, sees that, and stops.)
	// Set before the timer runs, which may call finish.
	e.renew = r
	r.mu.Lock()
	r.pending = true
	r.timer = time.AfterFunc(r.wait(), r.fire)
	r.mu.Unlock()
	return true
}

// wait returns how long until the next attempt, or until the deadline if
// that comes first (the attempt then ends the epoch); 0 once it ended.
func (r *renewer) wait() time.Duration {
	deadline, _, err := r.e.h.state()
	if err != nil {
		return 0
	}
	return time.Until(minTime(r.next, deadline))
}

// stop ends the renewals: a timer not fired yet never fires, and gives
// back its slot of the wait group. It is nil-safe and idempotent.
func (r *renewer) stop() {
	if r == nil {
		return
	}
	r.mu.Lock()
	r.stopped = true
	release := r.pending && r.timer.Stop()
	if release {
		r.pending = false
	}
	r.mu.Unlock()
	if release {
		r.e.src.wg.Done()
	}
}

// fire runs one attempt, then arms the next one or gives back the slot.
func (r *renewer) fire() {
	r.mu.Lock()
	r.pending = false
	stopped := r.stopped
	r.mu.Unlock()
	if stopped || !r.attempt() {
		r.e.src.wg.Done()
		return
	}
	r.mu.Lock()
	if r.stopped {
		r.mu.Unlock()
		r.e.src.wg.Done()
		return
	}
	r.pending = true
	r.timer.Reset(r.wait())
	r.mu.Unlock()
}

// attempt renews the lease once if it is due (the timer may fire early
// for the deadline) and reports whether the renewals go on.
func (r *renewer) attempt() bool {
	e := r.e
	ttl := e.src.ttl
	deadline, _, err := e.h.state()
	if err != nil || e.ctx.Err() != nil || e.isOrphaned() {
		return false
	}
	if !time.Now().Before(deadline) {
		e.finish(distsync.Lost(distsync.LossRenewal, nil, "session lease renewal not confirmed for %v (TTL %v)", ttl-margin(ttl), ttl), true)
		return false
	}
	if time.Now().Before(r.next) {
		return true // armed for a deadline that a renewal has since moved: re-arm
	}
	rec := e.src.Recorder()
	actx, cancel := context.WithDeadline(e.ctx, deadline)
	sent := time.Now()
	resp, err := e.src.c.KeepAliveOnce(actx, e.id)
	cancel()
	if e.ctx.Err() != nil || e.isOrphaned() {
		return false
	}
	now := time.Now()
	rec.Renewal(e.ctx, now.Sub(sent), err, slog.Int64("lease", int64(e.id)))
	switch {
	case err == nil:
		got := time.Duration(resp.TTL) * time.Second
		e.h.set(sent.Add(got-margin(got)), got, true)
		r.b.Reset()
		if late := now.Sub(r.due); late > lateAfter(ttl) {
			rec.RenewalLate(e.ctx, late, deadline.Sub(now), slog.Int64("lease", int64(e.id)))
		}
		r.next = sent.Add(ttl / 3)
		r.due = r.next
	case isLeaseGone(err):
		e.finish(distsync.Lost(distsync.LossSessionEnded, err, "session lease expired or was revoked"), false)
		return false
	case Denied(err):
		e.finish(distsync.Lost(distsync.LossRenewal, Flat(err), "session lease renewal denied"), true)
		return false
	default:
		r.next = time.Now().Add(r.b.Next())
	}
	return true
}

// lateAfter is how long past its due time a renewal may be confirmed
// before it is reported late: a sixth of the TTL, half the renewal period.
// A renewal that needed a retry, or a round trip that long, is late.
func lateAfter(ttl time.Duration) time.Duration { return ttl / 6 }

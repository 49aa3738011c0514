package etcdq

import (
	"context"
	"sync"
	"time"

	"github.com/distsync/distsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A renewalWatch follows the session lease's keep-alives for one waiter or
// holder, and says when the lease can no longer be trusted: its keep-alive
// channel closed (expired, revoked, client closed) or no renewal was
// confirmed for the TTL less a margin. Subscribing adds a channel to the
// client's existing keep-alive of the lease; it sends no request.
type renewalWatch struct {
	q      *Queue
	ka     <-chan *clientv3.LeaseKeepAliveResponse
	timer  *time.Timer
	expiry <-chan time.Time // timer.C once a deadline is known, else nil
	cancel context.CancelFunc
}

func (q *Queue) watchRenewal() (*renewalWatch, error) {
	ctx, cancel := context.WithCancel(q.c.Ctx())
	ka, err := q.c.KeepAlive(ctx, q.s.Lease())
	if err != nil {
		cancel()
		return nil, distsync.Errorf(distsync.ErrLost, err, "session lease keep-alive halted")
	}
	w := &renewalWatch{q: q, ka: ka, cancel: cancel, timer: time.NewTimer(time.Hour)}
	w.timer.Stop()
	w.arm()
	return w, nil
}

func (w *renewalWatch) arm() {
	if d, ok := w.q.renew.deadline(); ok {
		w.timer.Reset(time.Until(d))
		w.expiry = w.timer.C
	}
}

// renewed handles a receive from ka; it returns an error wrapping ErrLost
// when the channel closed.
func (w *renewalWatch) renewed(resp *clientv3.LeaseKeepAliveResponse, ok bool) error {
	if !ok {
		return distsync.Errorf(distsync.ErrLost, nil, "session lease keep-alive ended: the lease expired or was revoked")
	}
	w.q.renew.update(time.Duration(resp.TTL) * time.Second)
	w.arm()
	return nil
}

// expired is the error for a fired expiry.
func (w *renewalWatch) expired() error {
	ttl := w.q.renew.ttlNow()
	return distsync.Errorf(distsync.ErrLost, nil, "session lease renewal not confirmed for %v (TTL %v)", ttl-margin(ttl), ttl)
}

// stop ends the subscription; nil-safe.
func (w *renewalWatch) stop() {
	if w != nil {
		w.cancel()
		w.timer.Stop()
	}
}

// renewal is the latest confirmed renewal of a session lease, on the
// monotonic clock.
type renewal struct {
	mu  sync.Mutex
	at  time.Time
	ttl time.Duration
}

func (r *renewal) update(ttl time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at, r.ttl = time.Now(), ttl
}

func (r *renewal) ttlNow() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ttl
}

// deadline is when the lease could have expired, less a margin: the server
// renewed it no later than the response arrived, so it lives at least until
// about then plus its TTL, minus the time the request spent in flight.
func (r *renewal) deadline() (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ttl <= 0 {
		return time.Time{}, false
	}
	return r.at.Add(r.ttl - margin(r.ttl)), true
}

// margin is how long before a possible expiry a lease counts as lost. A
// quarter of the TTL leaves room for two missed keep-alives (sent every
// TTL/3) and a slow round trip.
func margin(ttl time.Duration) time.Duration { return ttl / 4 }

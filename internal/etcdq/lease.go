package etcdq

import (
	"context"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/leaseend"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A Lease is one held key of a Queue. It follows the key from acquisition
// to release: it ends as lost when the key is deleted (by anyone, or by the
// session lease's revocation or expiry), when the session lease ends for
// the Session (closed, given up), or when the session lease's renewal has
// not been confirmed for its TTL less a margin.
// It is safe for concurrent use.
type Lease struct {
	q   *Queue
	e   *epoch // the session lease the key is on
	key string
	rev int64

	leaseend.Lifecycle // Done, Err and how Release ends the lease

	ctx    context.Context    // the follower's; Release cancels it
	cancel context.CancelFunc // to interrupt a watch being set up
	stopc  chan struct{}      // closed by Release: the follower exits
	exited chan struct{}      // closed when the follower has exited, or by a Release before it started

	// A lease acquired without waiting starts its follower late (see
	// startLater): once decides between the follower's start, the end
	// of the session lease and a Release, whichever comes first.
	once  sync.Once
	timer *time.Timer
}

// newLease starts following key; it fails with ErrClosed once the
// Session is closed.
func newLease(q *Queue, e *epoch, key string, rev int64, own *keyWatch, from int64) (*Lease, error) {
	l := &Lease{
		q: q, e: e, key: key, rev: rev,
		stopc: make(chan struct{}), exited: make(chan struct{}),
	}
	l.ctx, l.cancel = context.WithCancel(e.ctx)
	if own == nil && !q.src.Closed() {
		l.startLater(from)
		return l, nil
	}
	started := false
	l.once.Do(func() { started = q.src.Go(func() { l.follow(own, from) }) })
	if !started {
		l.cancel()
		return nil, errClosed()
	}
	return l, nil
}

// startLater starts the follower of a lease acquired without waiting
// followDelay after the acquisition, or at the renewal deadline if that
// comes first. A lock released before then costs no goroutine, no watch
// and no timer firing: most uncontended locks are released within a
// round trip or two. Until the follower starts, nothing is lost unseen:
// it reads the key when it starts if anything was written since (see
// follow), a renewal not confirmed in time passes the deadline, and the
// end of the session lease ends the lease from its epoch (see finish).
func (l *Lease) startLater(from int64) {
	if !l.e.addLate(l) {
		l.endUnstarted() // the session lease has ended for us
		return
	}
	delay := l.q.followDelay()
	if d, _, _ := l.e.h.state(); !d.IsZero() {
		delay = max(min(delay, time.Until(d)), 0)
	}
	l.timer = time.AfterFunc(delay, func() {
		l.e.dropLate(l)
		l.once.Do(func() {
			if !l.q.src.Go(func() { l.follow(nil, from) }) {
				l.end() // the Session closed: its lease, and the key, are revoked
			}
		})
	})
}

// endUnstarted ends a lease whose follower has not started, as the end of
// its session lease (or a follower) would.
func (l *Lease) endUnstarted() { l.once.Do(l.end) }

// end ends the lease as its session lease's end does, in place of a
// follower.
func (l *Lease) end() {
	l.fail(l.e.endErr())
	l.cancel()
	close(l.exited)
}

// stopFollower makes the follower exit, or never start, and waits for it.
func (l *Lease) stopFollower() {
	if l.timer != nil {
		l.timer.Stop()
		l.e.dropLate(l)
	}
	l.once.Do(func() { close(l.exited) }) // no follower started: none will
	close(l.stopc)
	l.cancel()
	<-l.exited
}

// Token returns the fencing token: the create revision of the key, which
// etcd makes strictly greater for every later acquisition of any key.
func (l *Lease) Token() uint64 { return uint64(l.rev) }

// Key returns the etcd key that holds this lease.
func (l *Lease) Key() string { return l.key }

// Session returns the Session whose session lease the key is on.
func (l *Lease) Session() *Session { return l.q.src }

// Revision returns the create revision of Key (equal to Token).
func (l *Lease) Revision() int64 { return l.rev }

// IsOwner returns a Txn comparison that holds only while this lease's key
// exists as created: put it in the If of a Txn to make a write conditional
// on still holding the lease.
func (l *Lease) IsOwner() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(l.key), "=", l.rev)
}

// Release deletes the lease's key if it is still the one this lease created
// (never a later holder's) and ends the lease. It is idempotent; later
// calls return the first call's result. An error wraps ErrUnavailable: the
// deletion was not confirmed and goes on in the background until it
// succeeds or the session ends.
func (l *Lease) Release(ctx context.Context) error {
	clean := false // this Release deleted the key: its name may be reused
	return l.Lifecycle.Release(ctx, distsync.ErrReleased,
		func(ctx context.Context) error {
			deleted, err := l.q.removeOwn(ctx, l.e, l.key, l.rev)
			clean = deleted && err == nil
			return err
		},
		func() {
			l.stopFollower()
			if clean {
				l.q.spareKey(l.key, keyPrefixOf(l.key, l.e.id), l.e)
			}
		})
}

// deleted ends the lease as lost because its key is gone: force-released
// by an operator if ForceRelease left its marker, gone with its session
// lease, or else deleted (see forced.go and deletedErr). During a Release the deletion is the release itself, and
// nothing is read.
func (l *Lease) deleted() {
	if l.Releasing() {
		return
	}
	l.fail(l.q.deletedErr(l.ctx, l.e, l.key, "key"))
}

// fail ends the lease as the follower saw it end, unless a Release is
// under way (what the follower sees is then the release itself).
func (l *Lease) fail(err error) { l.Lose(err) }

// How long a lease acquired without waiting goes before its follower
// starts and sets up the watch on its key (see startLater): three round
// trips of the queue's last acquisition request, so that a lock released
// within a round trip or two (its Release is one) starts no follower and
// sets up no watch, however slow the server or the machine is; within
// these bounds.
const (
	minFollowDelay = time.Millisecond
	maxFollowDelay = 10 * time.Millisecond
)

// noteRTT records the round trip of an acquisition request sent at sent.
func (q *Queue) noteRTT(sent time.Time) { q.rtt.Store(int64(time.Since(sent))) }

// followDelay returns how long a lease acquired without waiting goes
// before its follower watches its key.
func (q *Queue) followDelay() time.Duration {
	return min(max(3*time.Duration(q.rtt.Load()), minFollowDelay), maxFollowDelay)
}

// follow watches for the lease's end until Release stops it.
//
// own, when the acquirer hands one over, reports every event of the key
// since the acquirer last knew it there: a watch of the key, or a
// semaphore's prefix watch of deletions, whose other keys' events are
// skipped. Without own, it first sets up a synced watch on the key (one
// started at a past revision would be served by the etcd server's 100 ms
// catch-up loop, delaying the news of a loss), and reads the key only if
// something was written since revision from-1, up to which the acquirer
// knew the key was there.
func (l *Lease) follow(own *keyWatch, from int64) {
	defer close(l.exited)
	defer l.cancel()
	ctx := l.ctx
	defer func() { own.stop() }()
	rw := l.e.watchRenewal()
	defer rw.stop()
	if err := rw.check(); err != nil {
		l.fail(err)
		return
	}

	var (
		ownCh   clientv3.WatchChan
		known   = from - 1 // the key is known to exist up to this revision
		rewatch <-chan time.Time
		b       backoff.Backoff
	)
	if own != nil {
		ownCh = own.ch
	} else {
		// Started late (see startLater): watch the key now, and read it
		// if anything was written since the acquisition, so a deletion
		// in between is reported now.
		rewatch = time.After(0)
	}
	for {
		select {
		case <-l.stopc:
			return
		case <-l.e.ctx.Done():
			l.fail(l.e.endErr())
			return
		case <-rw.changed:
			if err := rw.check(); err != nil {
				l.fail(err)
				return
			}
		case <-rw.expiry:
			if err := rw.check(); err != nil {
				l.fail(err)
				return
			}
		case <-rewatch:
			rewatch = nil
			// The set-up must not outlast the session's deadline: the
			// loop has to be back here to report the loss in time.
			w, gone, err := l.reattach(ctx, known, rw.deadline())
			if err := rw.check(); err != nil {
				w.stop()
				l.fail(err)
				return
			}
			switch {
			case l.ctx.Err() != nil:
				// Release interrupted the set-up (fail then does
				// nothing), or the session lease ended.
				w.stop() // the watch may have come up just before
				l.fail(l.e.endErr())
				return
			case gone:
				l.deleted()
				return
			case err != nil:
				rewatch = time.After(b.Next())
			default:
				own, ownCh = w, w.ch
				b.Reset()
			}
		case wr, ok := <-ownCh:
			if l.ctx.Err() != nil {
				// Release cancelled the watch, or the session lease ended.
				l.fail(l.e.endErr())
				return
			}
			if !ok || wr.Err() != nil {
				// Compaction, a lost leader or a reconnect: watch again
				// and re-read the key, since the gap may hold its delete.
				own.stop()
				ownCh, rewatch = nil, time.After(0)
				continue
			}
			for _, ev := range wr.Events {
				if string(ev.Kv.Key) != l.key {
					continue // a semaphore waiter's prefix watch (see waitWeight)
				}
				if ev.Type == clientv3.EventTypeDelete {
					l.deleted()
					return
				}
				if ev.Kv.CreateRevision != l.rev {
					l.fail(distsync.Lost(distsync.LossDeleted, nil, "%q: key %q was re-created at revision %d", l.q.name, l.key, ev.Kv.CreateRevision))
					return
				}
			}
			known = max(known, wr.Header.Revision)
		}
	}
}

// reattach starts a synced watch on the key and, unless the watch starts
// right after known (nothing written in between), reads the key: gone is
// true when it no longer exists as this lease created it.
func (l *Lease) reattach(ctx context.Context, known int64, deadline time.Time) (w *keyWatch, gone bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	if !deadline.IsZero() {
		var cancelD context.CancelFunc
		ctx, cancelD = context.WithDeadline(ctx, deadline)
		defer cancelD()
	}
	w, start, err := l.q.watchOpts(ctx, l.e, l.key)
	if err != nil || start <= known {
		return w, false, err
	}
	resp, err := l.q.c.Get(ctx, l.key)
	if err != nil {
		w.stop()
		return nil, false, err
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != l.rev {
		w.stop()
		return nil, true, nil
	}
	return w, false, nil
}

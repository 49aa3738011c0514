package etcdq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/telemetry"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// attemptTimeout bounds one round trip of a waiter, which then retries.
const attemptTimeout = 2 * time.Second

// nearHead is how many keys a waiter's wait range may hold (its own and
// newer ones included) for the waiter to watch, besides its predecessor,
// the key before that (see waitFirst). In a longer queue a waiter watches
// its predecessor only, so that a long queue costs one watch less per
// waiter; the few near its head still skip the round trip.
const nearHead = 8

// waitFirst blocks until key is older than every key under wait, starting
// from v, the read of the queue that enqueued key at revision rev. It
// watches its predecessor (for the handoff) and, within nearHead of the
// head (or with confirm), its own key, and returns the own-key watch for
// the Lease (nil if it had none: the Lease then reads the key when it
// starts its own).
//
// A waiter in a short queue (nearHead) also watches the key before its
// predecessor. When that one goes, it asks whether its predecessor is now
// the oldest key; if so, it holds as soon as the predecessor's deletion
// arrives, with no round trip between the handoff and the return: having
// no older key is monotone, as check explains. That ask happens while the
// predecessor holds, off the handoff's path. With confirm, none of this:
// the waiter watches its predecessor only and holds after a Txn shows its
// key there and no older one (Class.Confirm).
//
// etcd failures (a leader election, a member restart) are retried until ctx
// ends or the session does: a waiter cut off from the quorum cannot renew
// its session lease, so it fails within the session TTL instead of hanging.
func (q *Queue) waitFirst(ctx context.Context, t *telemetry.Target, e *epoch, key string, rev int64, wait string, confirm bool, v queueView) (*keyWatch, error) {
	rw := e.watchRenewal()
	// own, pw and p2w are stopped on every way out but success, which
	// hands own to the Lease; a plain variable (not a named result, which
	// a return statement would overwrite) keeps the deferred stop on the
	// right watch.
	var own, pw, p2w *keyWatch
	held := false
	var err error
	defer func() {
		rw.stop()
		pw.stop()
		p2w.stop()
		if !held {
			own.stop()
		}
	}()
	var b backoff.Backoff
	seen := int64(0) // the deletion an event reported, for the next check
	// v is current while the predecessor's watch reports every event
	// after v.at; when it may have missed some, v.at is 0: check.
	// ownFrom is the revision after which the own-key watch reports every
	// event.
	ownFrom := int64(0)
	for {
		var start int64
		// The predecessor's watch first: the sooner it starts after v.at,
		// the likelier that nothing was written in between and no check
		// is needed.
		pred := v.pred()
		if pw == nil || pw.key != pred {
			pw.stop()
			// A synced watch sees every delete after its creation; a
			// read at or after its start covers the time before.
			if pw, start, err = q.watchOpts(ctx, e, pred); err != nil {
				if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
					return nil, err
				}
				continue
			}
			if start > v.at {
				v.at = 0
			}
		}
		// The own key's watch only near the head: further back, a waiter
		// whose key was deleted learns it at its next check, when the key
		// before it goes, and a long queue costs one watch (and its
		// goroutine in the client) less per waiter.
		near := !confirm && v.count <= nearHead
		if own == nil && (near || confirm) {
			if own, ownFrom, err = q.watchOpts(ctx, e, key); err != nil {
				if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
					return nil, err
				}
				continue
			}
			// A deletion of the key between the enqueue and the watch's
			// start is seen by the next check, which every wake-up makes
			// unless ownFrom <= v.at. (A watch that broke may have
			// missed one at any time: v.at is 0, the check comes now.)
		}
		// The second watch only serves to skip a round trip: when it
		// fails, or starts after v.at (it may then miss the delete), the
		// waiter still holds through its predecessor's watch and a check.
		pred2 := v.pred2()
		if pred2 == "" || !near || (p2w != nil && p2w.key != pred2) {
			p2w.stop()
			p2w = nil
		}
		if pred2 != "" && near && p2w == nil && v.at > 0 {
			p2w, _, err = q.watchOpts(ctx, e, pred2)
			if err != nil && !errors.Is(err, distsync.ErrUnavailable) {
				return nil, err
			}
		}
		if v.at == 0 {
			// After a deletion a watch reported, a read at its revision
			// answers without a quorum round (see check); any error there
			// goes to the full check.
			// A failed check leaves v as it was (with v.at 0): the watches
			// stay on the keys it showed until a check succeeds.
			next, err := q.checkWithin(ctx, key, rev, wait, seen)
			if seen > 0 && err != nil {
				next, err = q.checkWithin(ctx, key, rev, wait, 0)
			}
			seen = 0
			if err != nil {
				if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
					return nil, err
				}
				continue
			}
			v = next
			b.Reset()
			if v.pred() == "" {
				held = true
				return own, nil
			}
			continue // watch what v shows, and wait
		}
		gone, at, err := q.waitDelete(ctx, e, key, rw, own, pw, p2w)
		if err != nil {
			return nil, err
		}
		if gone == pw && at > 0 && v.pred2() == "" && own != nil && ownFrom <= v.at && !confirm {
			// The predecessor was the oldest key at v.at and is gone:
			// none older is left. The own-key watch, which reports every
			// event after v.at, tells of a deletion of ours that came
			// first, if one is already in.
			if err := q.ownDeleted(e, key, own); err != nil {
				return nil, err
			}
			held = true
			return own, nil
		}
		if at > 0 && q.src.Recorder().Enabled(ctx, slog.LevelDebug) {
			t.Debug(ctx, "handoff: older key gone", slog.String("key", gone.key), slog.Int64("revision", at))
		}
		seen, v.at = at, 0
		if own != nil && own.broken {
			own.stop()
			own = nil
		}
		if pw.broken {
			pw.stop()
			pw = nil
		}
		if p2w != nil && p2w.broken {
			p2w.stop()
			p2w = nil
		}
	}
}

// ownDeleted reports, without waiting, a deletion of key that its watch
// own has already received: the waiter's key went before its predecessor.
func (q *Queue) ownDeleted(e *epoch, key string, own *keyWatch) error {
	for {
		select {
		case wr, ok := <-own.ch:
			if !ok || wr.Err() != nil {
				// The Lease's follower re-watches and re-reads the key.
				return nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return q.waiterDeleted(e, key)
				}
			}
		default:
			return nil
		}
	}
}

// retryAfter waits before the next attempt after err, if err is an etcd
// failure worth retrying; it returns an error when the wait should end.
func (q *Queue) retryAfter(ctx context.Context, t *telemetry.Target, e *epoch, rw *renewalWatch, b *backoff.Backoff, err error) error {
	if !errors.Is(err, distsync.ErrUnavailable) {
		return err // ErrDenied among them: never retried
	}
	next := b.Next()
	if q.src.Recorder().Enabled(ctx, slog.LevelDebug) {
		t.Debug(ctx, "retrying", slog.Duration("after", next), slog.Any("error", err))
	}
	pause := time.NewTimer(next)
	defer pause.Stop()
	for {
		select {
		case <-ctx.Done():
			return distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), Flat(err)), "")
		case <-e.ctx.Done():
			return e.waitErr()
		case <-rw.changed:
			if rerr := rw.check(); rerr != nil {
				return fmt.Errorf("%w (while retrying: %w)", rerr, Flat(err))
			}
		case <-rw.expiry:
			if rerr := rw.check(); rerr != nil {
				return fmt.Errorf("%w (while retrying: %w)", rerr, Flat(err))
			}
		case <-pause.C:
			return nil
		}
	}
}

// checkWithin is check bounded by attemptTimeout: a member cut off from its
// leader may hold a linearizable read for its whole request timeout (5 s).
func (q *Queue) checkWithin(ctx context.Context, key string, rev int64, wait string, at int64) (queueView, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	v, err := q.check(actx, key, rev, wait, at)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		err = distsync.Errorf(distsync.ErrUnavailable, Flat(err), "queue check not answered within %v", attemptTimeout)
	}
	return v, err
}

// waitDelete blocks until the key of pw or of p2w (nil: none) is deleted,
// and returns that watch and the revision of the deletion, or until one of
// the watches breaks (marked broken, and returned with revision 0; the
// caller re-creates it and re-checks).
func (q *Queue) waitDelete(ctx context.Context, e *epoch, key string, rw *renewalWatch, own, pw, p2w *keyWatch) (*keyWatch, int64, error) {
	var p2ch, ownCh clientv3.WatchChan
	if p2w != nil {
		p2ch = p2w.ch
	}
	if own != nil {
		ownCh = own.ch
	}
	for {
		select {
		case <-rw.changed:
			if err := rw.check(); err != nil {
				return nil, 0, err
			}
		case <-rw.expiry:
			if err := rw.check(); err != nil {
				return nil, 0, err
			}
		case <-ctx.Done():
			return nil, 0, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for %q", pw.key)
		case <-e.ctx.Done():
			return nil, 0, e.waitErr()
		case wr, ok := <-ownCh:
			if !ok || wr.Err() != nil {
				own.broken = true
				return own, 0, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return nil, 0, q.waiterDeleted(e, key)
				}
			}
		case wr, ok := <-pw.ch:
			if at, gone := deletion(pw, wr, ok); gone {
				return pw, at, nil
			}
		case wr, ok := <-p2ch:
			if at, gone := deletion(p2w, wr, ok); gone {
				return p2w, at, nil
			}
		}
	}
}

// deletion reads one response of w's channel (ok false: closed): gone is
// true when the key was deleted, at that revision, or when the watch broke
// (marked broken, revision 0).
func deletion(w *keyWatch, wr clientv3.WatchResponse, ok bool) (at int64, gone bool) {
	if !ok || wr.Err() != nil {
		w.broken = true
		return 0, true
	}
	for _, ev := range wr.Events {
		if ev.Type == clientv3.EventTypeDelete {
			return ev.Kv.ModRevision, true
		}
	}
	return 0, false
}

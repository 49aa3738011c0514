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
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// attemptTimeout bounds one round trip of a waiter, which then retries.
const attemptTimeout = 2 * time.Second

// waitFirst blocks until key is older than every key under wait. It watches only
// its predecessor (for the handoff) and its own key (a deleted waiter key
// must not wait forever), and returns the own-key watch for the Lease.
//
// etcd failures (a leader election, a member restart) are retried until ctx
// ends or the session does: a waiter cut off from the quorum cannot renew
// its session lease, so it fails within the session TTL instead of hanging.
func (q *Queue) waitFirst(ctx context.Context, t *telemetry.Target, e *epoch, key string, rev int64, wait string, pred *mvccpb.KeyValue) (*keyWatch, error) {
	rw := e.watchRenewal()
	// own and pw are stopped on every way out but success, which hands own
	// to the Lease; a plain variable (not a named result, which a return
	// statement would overwrite) keeps the deferred stop on the right watch.
	var own, pw *keyWatch
	held := false
	var err error
	defer func() {
		rw.stop()
		pw.stop()
		if !held {
			own.stop()
		}
	}()
	var b backoff.Backoff
	seen := int64(0) // the predecessor's deletion, once a watch reported it
	for {
		if own == nil {
			if own, err = q.watch(ctx, e, key); err != nil {
				if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		if pw == nil || pw.key != string(pred.Key) {
			pw.stop()
			// A synced watch sees every delete after its creation; the
			// check below covers the time before it.
			if pw, err = q.watch(ctx, e, string(pred.Key)); err != nil {
				if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
					return nil, err
				}
				continue
			}
		}
		// After a deletion the watch reported, a read at its revision
		// answers without a quorum round (see check); any error there goes
		// to the full check.
		first, next, err := q.checkWithin(ctx, key, rev, wait, seen)
		if seen > 0 && err != nil {
			first, next, err = q.checkWithin(ctx, key, rev, wait, 0)
		}
		seen = 0
		if err != nil {
			if err = q.retryAfter(ctx, t, e, rw, &b, err); err != nil {
				return nil, err
			}
			continue
		}
		b.Reset()
		if first {
			held = true
			return own, nil
		}
		if pred = next; pw.key != string(pred.Key) {
			continue
		}
		if seen, err = q.waitDelete(ctx, e, key, rw, own, pw); err != nil {
			return nil, err
		}
		if seen > 0 && q.src.Recorder().Enabled(ctx, slog.LevelDebug) {
			t.Debug(ctx, "handoff: predecessor gone", slog.String("predecessor", pw.key), slog.Int64("revision", seen))
		}
		if own.broken {
			own.stop()
			own = nil
		}
		if pw.broken {
			pw.stop()
			pw = nil
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
func (q *Queue) checkWithin(ctx context.Context, key string, rev int64, wait string, at int64) (bool, *mvccpb.KeyValue, error) {
	actx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	first, pred, err := q.check(actx, key, rev, wait, at)
	if err != nil && ctx.Err() == nil && actx.Err() != nil {
		err = distsync.Errorf(distsync.ErrUnavailable, Flat(err), "queue check not answered within %v", attemptTimeout)
	}
	return first, pred, err
}

// waitDelete blocks until pw's key is deleted, and returns the revision of
// the deletion, or until one of the watches breaks (marked broken; the
// caller re-creates it and re-checks; the revision is then 0).
func (q *Queue) waitDelete(ctx context.Context, e *epoch, key string, rw *renewalWatch, own, pw *keyWatch) (int64, error) {
	for {
		select {
		case <-rw.changed:
			if err := rw.check(); err != nil {
				return 0, err
			}
		case <-rw.expiry:
			if err := rw.check(); err != nil {
				return 0, err
			}
		case <-ctx.Done():
			return 0, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for %q", pw.key)
		case <-e.ctx.Done():
			return 0, e.waitErr()
		case wr, ok := <-own.ch:
			if !ok || wr.Err() != nil {
				own.broken = true
				return 0, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return 0, q.waiterDeleted(e, key)
				}
			}
		case wr, ok := <-pw.ch:
			if !ok || wr.Err() != nil {
				pw.broken = true
				return 0, nil
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return ev.Kv.ModRevision, nil
				}
			}
		}
	}
}

package etcdq

import (
	"context"
	"time"

	"github.com/distsync/distsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A keyWatch is a watch on one key. Its context is its lease's (it ends
// when the lease ends for the Session), not a caller's, because the
// own-key watch outlives the acquire call that made it; WithRequireLeader makes a member that lost its leader close the watch
// instead of leaving it silent.
type keyWatch struct {
	key    string
	ch     clientv3.WatchChan
	cancel context.CancelFunc
	broken bool // the channel closed or failed: re-create and re-check
}

// watch starts a synced watch on key (from the next revision, so the
// server serves it at once) and waits until the server confirms it.
func (q *Queue) watch(ctx context.Context, e *epoch, key string) (*keyWatch, error) {
	w, _, err := q.watchOpts(ctx, e, key)
	return w, err
}

// watchOpts starts a synced watch and returns it with the revision it
// starts after: it reports every event after that revision.
//
// clientv3's Watch call itself blocks until the server confirms the watch
// or the watch's context ends, and a blackholed connection confirms
// nothing. So the watch's context, which must outlive ctx once the watch
// is set up, is cancelled when ctx ends or attemptTimeout passes before
// the confirmation.
func (q *Queue) watchOpts(ctx context.Context, e *epoch, key string, opts ...clientv3.OpOption) (*keyWatch, int64, error) {
	wctx, cancel := context.WithCancel(e.leaderCtx)
	w := &keyWatch{key: key, cancel: cancel}
	timer := time.AfterFunc(attemptTimeout, cancel)
	stopCtx := context.AfterFunc(ctx, cancel)
	w.ch = q.c.Watch(wctx, key, append(opts, clientv3.WithCreatedNotify())...)
	var (
		wr clientv3.WatchResponse
		ok bool
	)
	select {
	case wr, ok = <-w.ch:
	case <-wctx.Done():
	}
	// Both stops must succeed: a cancel that has begun makes the watch
	// unusable even if its confirmation arrived first.
	timerStopped, ctxStopped := timer.Stop(), stopCtx()
	if ok && wr.Created && wr.Err() == nil && timerStopped && ctxStopped {
		return w, wr.Header.Revision, nil
	}
	cancel()
	if !timerStopped || !ctxStopped {
		q.reapStream()
	}
	switch {
	case ctx.Err() != nil:
		return nil, 0, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "watch %q", key)
	case e.ctx.Err() != nil:
		return nil, 0, e.waitErr()
	case !timerStopped:
		return nil, 0, distsync.Errorf(distsync.ErrUnavailable, nil, "watch %q not confirmed within %v", key, attemptTimeout)
	}
	var err error
	if ok {
		err = wr.Err()
	}
	if Denied(err) {
		return nil, 0, distsync.Errorf(distsync.ErrDenied, err, "watch %q", key)
	}
	return nil, 0, distsync.Errorf(distsync.ErrUnavailable, err, "watch %q", key)
}

// stop cancels the watch; nil-safe. The client closes the channel.
func (w *keyWatch) stop() {
	if w != nil {
		w.cancel()
	}
}

// reapStream ends a watch stream that clientv3 may have left open with no
// watch on it. clientv3 opens one gRPC stream per client for our watches
// and closes it when its last watch ends; but a Watch call abandoned
// before the stream took its request (the context ended while the stream
// was being set up) leaves the stream open with none, on the client and
// on the server, until the client closes. A watch set up and cancelled
// through the same stream makes clientv3 close it. It runs in the
// background, once at a time, bounded by attemptTimeout; Close waits for it.
func (q *Queue) reapStream() {
	if !q.reaping.CompareAndSwap(false, true) {
		return
	}
	if !q.src.Go(func() {
		defer q.reaping.Store(false)
		ctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(q.c.Ctx()), attemptTimeout)
		defer cancel()
		select {
		case <-q.c.Watch(ctx, q.prefix, clientv3.WithCreatedNotify(), clientv3.WithFilterPut(), clientv3.WithFilterDelete()):
		case <-ctx.Done():
		}
	}) {
		q.reaping.Store(false)
	}
}

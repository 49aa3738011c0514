package etcdq

import (
	"context"
	"time"

	"github.com/distsync/distsync"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A keyWatch is a watch on one key. Its context is the client's, not a
// caller's, because the own-key watch outlives the acquire call that made
// it; WithRequireLeader makes a member that lost its leader close the watch
// instead of leaving it silent.
type keyWatch struct {
	key    string
	ch     clientv3.WatchChan
	cancel context.CancelFunc
	broken bool // the channel closed or failed: re-create and re-check
}

// watch starts a synced watch on key (from the next revision, so the
// server serves it at once) and waits until the server confirms it.
func (q *Queue) watch(ctx context.Context, key string) (*keyWatch, error) {
	w, _, err := q.watchOpts(ctx, key)
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
func (q *Queue) watchOpts(ctx context.Context, key string, opts ...clientv3.OpOption) (*keyWatch, int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(q.c.Ctx()))
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
	switch {
	case ctx.Err() != nil:
		return nil, 0, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "watch %q", key)
	case !timerStopped:
		return nil, 0, distsync.Errorf(distsync.ErrUnavailable, nil, "watch %q not confirmed within %v", key, attemptTimeout)
	}
	var err error
	if ok {
		err = wr.Err()
	}
	return nil, 0, distsync.Errorf(distsync.ErrUnavailable, err, "watch %q", key)
}

// stop cancels the watch; nil-safe. The client closes the channel.
func (w *keyWatch) stop() {
	if w != nil {
		w.cancel()
	}
}

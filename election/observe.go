package election

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/observe"
	"github.com/distsync/distsync/internal/telemetry"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// attemptTimeout bounds waiting for a watch to be confirmed and for the
// state read after it; the observer then tries again.
const attemptTimeout = 2 * time.Second

// errWatchClosed is the error of a watch channel that closed while the
// observer's context was alive (the etcd client retries what it can, so
// this is a client shutting down or giving up).
var errWatchClosed = errors.New("election: watch closed")

// candidate is one key under the election's prefix.
type candidate struct {
	rev   int64 // create revision: the term, should it lead
	value []byte
}

// An observer keeps a copy of every candidate key of one election, at a
// known revision, and delivers the oldest key's value and term each time
// they change. The copy is read once at the revision a synced watch
// started from, then kept up to date by that watch's events alone.
type observer struct {
	c      *clientv3.Client
	prefix string
	out    chan<- distsync.Leader
	t      *telemetry.Target // logs the re-watches at Debug

	cands map[string]candidate
	rev   int64 // the revision cands reflects; 0 before the first read and after a compaction

	last observe.Dedupe // the last state delivered
}

// run delivers changes until ctx ends or the client is closed, re-watching
// with a backoff when a watch breaks. A denied watch or read ends it: it
// is never retried.
func (o *observer) run(ctx context.Context) {
	defer close(o.out)
	var b backoff.Backoff
	for {
		healthy, err := o.watch(ctx)
		if ctx.Err() != nil || o.c.Ctx().Err() != nil || etcdq.Denied(err) {
			return
		}
		if healthy {
			b.Reset()
		}
		if errors.Is(err, rpctypes.ErrCompacted) && healthy {
			continue // the next watch starts from a fresh read
		}
		if o.t != nil {
			o.t.Debug(ctx, "observer watching again", slog.Any("error", err))
		}
		if !b.Sleep(ctx) {
			return
		}
	}
}

// watch runs one watch on the prefix until it breaks. Before the first read
// (or after a compaction) it starts a synced watch and reads the state at
// the revision the watch starts from, so that nothing falls between the two;
// afterwards it resumes right after the last revision applied, so that no
// change is skipped. healthy reports that etcd confirmed the watch.
func (o *observer) watch(ctx context.Context) (healthy bool, err error) {
	// WithRequireLeader: a member cut off from its cluster closes the watch
	// instead of leaving the observer silently behind.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	fresh := o.rev == 0
	opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
	if !fresh {
		opts = append(opts, clientv3.WithRev(o.rev+1))
	}
	// clientv3's Watch call blocks until etcd confirms the watch, which a
	// blackholed connection never does: the timer cancels it.
	timeout := time.AfterFunc(attemptTimeout, cancel)
	defer timeout.Stop()
	wch := o.c.Watch(wctx, o.prefix, opts...)
	select {
	case wr, ok := <-wch:
		if !timeout.Stop() {
			return false, errors.New("election: watch not confirmed in time")
		}
		if err := o.broken(wr, ok); err != nil {
			return false, err
		}
		if fresh {
			// The watch delivers every event after the revision in the
			// header of its creation (and perhaps a few at or before
			// it, which apply skips), so the state read at that
			// revision plus the events is exact.
			if err := o.read(wctx, wr.Header.Revision); err != nil {
				return false, err
			}
			if !o.emit(ctx) {
				return true, ctx.Err()
			}
		}
	case <-wctx.Done():
		return false, errors.New("election: watch not confirmed in time")
	}
	for {
		wr, ok := <-wch
		if err := o.broken(wr, ok); err != nil {
			return true, err
		}
		if !o.apply(ctx, wr.Events) {
			return true, ctx.Err()
		}
	}
}

// broken returns the error of a watch response, or nil for a usable one.
// A compaction forgets the state, so that the next watch reads it afresh.
func (o *observer) broken(wr clientv3.WatchResponse, ok bool) error {
	if !ok {
		return errWatchClosed
	}
	err := wr.Err()
	if errors.Is(err, rpctypes.ErrCompacted) {
		o.rev = 0
	}
	return err
}

// read replaces the copy of the candidate keys with their state at rev.
func (o *observer) read(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	resp, err := o.c.Get(ctx, o.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return err
	}
	o.cands = make(map[string]candidate, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		if !etcdq.IsContender(o.prefix, kv.Key) {
			continue // a deeper name's key, or a tombstone
		}
		o.cands[string(kv.Key)] = candidate{rev: kv.CreateRevision, value: kv.Value}
	}
	o.rev = rev
	return nil
}

// apply applies events to the copy, one revision at a time (a Txn's writes
// are one change), delivering the state after each revision if it changed.
// Events at or before the copy's revision are already in it: a resumed
// watch may repeat them. It returns false when ctx ended.
func (o *observer) apply(ctx context.Context, evs []*clientv3.Event) bool {
	for i, ev := range evs {
		rev := ev.Kv.ModRevision
		if rev <= o.rev {
			continue
		}
		switch {
		case !etcdq.IsContender(o.prefix, ev.Kv.Key):
			// A deeper name's key or a tombstone: no change.
		case ev.Type == clientv3.EventTypePut:
			o.cands[string(ev.Kv.Key)] = candidate{rev: ev.Kv.CreateRevision, value: ev.Kv.Value}
		case ev.Type == clientv3.EventTypeDelete:
			delete(o.cands, string(ev.Kv.Key))
		}
		if i+1 < len(evs) && evs[i+1].Kv.ModRevision == rev {
			continue
		}
		o.rev = rev
		if !o.emit(ctx) {
			return false
		}
	}
	return true
}

// emit delivers the current state unless it is the one delivered last. It
// returns false when ctx ended first.
func (o *observer) emit(ctx context.Context) bool {
	cur := distsync.Leader{None: true}
	var oldest int64
	for _, c := range o.cands {
		if oldest == 0 || c.rev < oldest {
			oldest = c.rev
			cur = distsync.Leader{Value: c.value, Term: uint64(c.rev)}
		}
	}
	if o.last.Repeats(cur) {
		return true
	}
	// The copy keeps its own bytes: a receiver may modify what it gets.
	cur.Value = bytes.Clone(cur.Value)
	cur.Time = time.Now()
	select {
	case o.out <- cur:
		o.last.Delivered(cur)
		return true
	case <-ctx.Done():
		return false
	}
}

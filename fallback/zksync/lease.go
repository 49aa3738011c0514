package zksync

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/leaseend"
	"github.com/go-zookeeper/zk"
)

// A Lease is one held acquisition: an ephemeral sequential node that holds
// in its queue. It ends as lost when the node is deleted (by anyone, or by
// Session.ForceRelease, which its Err's distsync.LostReason tells), when
// its session ends, when the Session is closed, or, unless the Session has
// a disconnect grace, when the connection drops. A lease lost to a
// disconnection whose session survives deletes its node once the
// connection is back, so it never blocks the name. A Lease is safe for
// concurrent use; it must not be copied.
type Lease struct {
	q     *queue
	path  string
	sid   int64
	czxid int64
	ver   int32 // the node's data version when the lease began
	// writes counts the lease's own writes of its node's data
	// (Proclaim), so that its follower tells them from others'.
	writes atomic.Int64

	end leaseend.Lifecycle // Done, Err and how Release ends the lease

	stopc  chan struct{} // closed by Release: the follower exits
	exited chan struct{} // closed when the follower has exited
}

var _ distsync.Lease = (*Lease)(nil)

// A leaseWatch is what a new lease's follower starts with: the watch on
// its node, or, when there is none, a watch on the name's children set by
// the look that saw the node as created (see lookFresh), or nothing yet
// for a node its create saw alone (fresh, see createNode).
type leaseWatch struct {
	own, kids <-chan zk.Event
	fresh     bool
}

// newLease returns the lease of the node at path, which holds, and starts
// its follower with w.
func newLease(q *queue, path string, sid int64, stat *zk.Stat, e *epoch, w leaseWatch) *Lease {
	l := &Lease{
		q: q, path: path, sid: sid, czxid: stat.Czxid, ver: stat.Version,
		stopc: make(chan struct{}), exited: make(chan struct{}),
	}
	if !q.s.goTracked() {
		close(l.exited)
		l.lose(distsync.Lost(distsync.LossSessionEnded, nil, "zookeeper session closed"))
		_ = q.s.remove(context.Background(), q.name, path, sid)
		return l
	}
	go l.follow(e, w)
	return l
}

// Token returns the fencing token: the node's czxid, the ZooKeeper
// transaction ID that created it. zxids grow with every write to the
// ensemble, so a later acquisition of any name has a greater token.
func (l *Lease) Token() uint64 { return uint64(l.czxid) }

// Done returns a channel that is closed when the lease ends: released or
// lost.
func (l *Lease) Done() <-chan struct{} { return l.end.Done() }

// Err returns nil while the lease is held, then an error wrapping
// distsync.ErrReleased after Release, or distsync.ErrLost and why once the
// lease was lost. Once non-nil it never changes.
func (l *Lease) Err() error { return l.end.Err() }

// Path returns the lease's node. A write through Multi with a
// zk.CheckVersionRequest on Path (version 0 for a node nobody writes to)
// succeeds only while the lease's node exists.
func (l *Lease) Path() string { return l.path }

// SessionID returns the ZooKeeper session that owns the lease's node.
func (l *Lease) SessionID() int64 { return l.sid }

// Release deletes the lease's node (only its own: node names are never
// reused) and ends the lease. It is idempotent; later calls return the
// first call's result. An error wraps distsync.ErrUnavailable: ZooKeeper
// did not confirm the deletion within five seconds, or within
// distsync.CancelGrace after ctx ended, and it goes on in the background
// until it succeeds or the session ends. Done is closed when Release
// returns, whatever the result.
func (l *Lease) Release(ctx context.Context) error {
	// A lost lease's node is gone, or being removed in the background
	// since the loss.
	lost := l.end.Err() != nil
	return l.end.Release(ctx, distsync.Errorf(distsync.ErrReleased, nil, ""),
		func(ctx context.Context) error {
			if lost {
				return nil
			}
			return l.q.s.remove(ctx, l.q.name, l.path, l.sid)
		},
		func() {
			close(l.stopc)
			<-l.exited
		})
}

// errStopped ends the requests of a stopped lease follower.
var errStopped = errors.New("lease follower stopped")

// now is a channel that is always ready: a follower's step due at once.
var now = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// lose ends the lease as the follower saw it end, unless a Release is
// under way (what the follower sees is then the release itself).
func (l *Lease) lose(err error) { l.end.Lose(err) }

// follow watches for the lease's end until Release stops it: the end of
// its epoch (see Session) or an event on its own node. A change of the
// node's data rearms the watch and reads the data: ForceRelease's marker
// ends the lease, and so does a node gone right after a change the lease
// did not make (ForceRelease's deletion won the race with the read).
// A lease that starts with kids, a watch on the name's children, and no
// own watch watches its node only once kids fires: any deletion of the
// node, and ForceRelease's marker, fire kids first. This spares a
// request for a lease that nobody contends. A fresh lease first sets
// that watch with lookFresh, unless it is released by then: its Lock
// returned without a look, and a deletion or marker meanwhile shows in
// that look.
func (l *Lease) follow(e *epoch, w leaseWatch) {
	s := l.q.s
	defer s.bg.Done()
	defer close(l.exited)
	// A request ends with the lease's follower, or with its epoch: the
	// loop then reports the end. Neither waits for an answer (see call):
	// a read leaves nothing to undo, and Release must not wait.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(errStopped)
	go func() {
		select {
		case <-l.stopc:
			cancel(errStopped)
		case <-e.done:
			cancel(errSessionEnded)
		case <-l.exited:
		}
	}()
	own, kids := w.own, w.kids
	var rearm, verify <-chan time.Time
	switch {
	case own != nil, kids != nil:
	case w.fresh:
		verify = now
	default:
		rearm = now
	}
	var (
		b       backoff.Backoff
		writes  int64 // l.writes when the watch was armed
		changed bool  // the data changed, not by this lease's Proclaim
	)
	for {
		select {
		case <-l.stopc:
			return
		case <-e.done:
			l.lose(e.err)
			s.removeLater(l.path, l.sid)
			return
		case ev, ok := <-kids:
			kids = nil
			switch {
			case l.end.Releasing():
				// Most likely the release's own deletion: the
				// follower is about to be stopped.
			case ok && ev.Type == zk.EventNotWatching:
				l.lose(distsync.Lost(distsync.LossSessionEnded, ev.Err, "%q: watch on the children of %s ended", l.q.name, l.q.path))
				s.removeLater(l.path, l.sid)
				return
			default:
				// A child came or went, maybe this node: watch it.
				rearm = now
			}
		case ev, ok := <-own:
			own = nil
			switch {
			case ok && ev.Type == zk.EventNodeDeleted:
				l.lose(errDeleted(l.q.name, l.path, false))
				s.untrack(l.path)
				return
			case ok && ev.Type == zk.EventNotWatching:
				l.lose(distsync.Lost(distsync.LossSessionEnded, ev.Err, "%q: watch on node %s ended", l.q.name, l.path))
				s.removeLater(l.path, l.sid)
				return
			}
			// The data changed (Proclaim, a SetLimit's touch, or
			// ForceRelease's marker): read it and watch again.
			changed = l.writes.Load() == writes
			rearm = now
		case <-verify:
			verify = nil
			if l.end.Releasing() {
				break // the release deletes the node: nothing to watch
			}
			lk, err := l.q.lookFresh(ctx, l.path, l.sid, l.czxid, nil)
			switch {
			case ctx.Err() != nil:
				continue // stopped, or the epoch ended: see above
			case err != nil:
				s.o.rec.Debug(ctx, "watching own node", opAttrs(l.q.name, "list "+l.q.path, err)...)
				rearm = time.After(b.Next()) // watch the node itself
			case !lk.own.ok:
				l.lose(errDeleted(l.q.name, l.path, false))
				s.untrack(l.path)
				return
			case isForced(lk.own.data):
				l.lose(errForced(l.q.name, l.path))
				s.removeLater(l.path, l.sid)
				return
			case lk.kids != nil:
				kids = lk.kids
			default:
				own = lk.ownCh
			}
		case <-rearm:
			rearm = nil
			writes = l.writes.Load()
			r, ch, err := s.existsW(ctx, l.path)
			switch {
			case ctx.Err() != nil:
				continue // stopped, or the epoch ended: see above
			case err != nil && permanent(err):
				l.lose(distsync.Lost(distsync.LossOther, err, "%q: cannot watch node %s", l.q.name, l.path))
				s.removeLater(l.path, l.sid)
				return
			case err != nil:
				s.o.rec.Debug(ctx, "rewatching own node", opAttrs(l.q.name, "watch "+l.path, err)...)
				rearm = time.After(b.Next())
			case !r.ok:
				l.lose(errDeleted(l.q.name, l.path, changed))
				s.untrack(l.path)
				return
			case isForced(r.data):
				l.lose(errForced(l.q.name, l.path))
				s.removeLater(l.path, l.sid)
				return
			default:
				own, changed = ch, false
			}
		}
	}
}

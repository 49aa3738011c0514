package zksync

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/leaseend"
	"github.com/go-zookeeper/zk"
)

// A Lease is one held acquisition: an ephemeral sequential node that is
// first in its queue. It ends as lost when the node is deleted (by anyone),
// when its session expires or is replaced, when the Session is closed, or,
// unless the Session was dialled WithDisconnectGrace, when the connection
// drops. A lease lost to a disconnection whose session survives deletes its
// node once the connection is back, so it never blocks the name. A Lease is
// safe for concurrent use.
type Lease struct {
	q     *queue
	path  string
	sid   int64
	czxid int64
	ver   int32 // the node's data version when the lease began

	leaseend.End // Done and Err

	stopc  chan struct{} // closed by Release: the follower exits
	exited chan struct{} // closed when the follower has exited

	releasing  atomic.Bool // Release has begun: what the follower sees is the release
	release    sync.Once
	releaseErr error
}

func newLease(q *queue, path string, sid int64, stat *zk.Stat, e *epoch, own <-chan zk.Event) *Lease {
	l := &Lease{
		q: q, path: path, sid: sid, czxid: stat.Czxid, ver: stat.Version,
		stopc: make(chan struct{}), exited: make(chan struct{}),
	}
	if !q.s.goTracked() {
		close(l.exited)
		l.lose(distsync.Errorf(distsync.ErrClosed, nil, "zookeeper session closed"))
		return l
	}
	go l.follow(e, own)
	return l
}

// Token returns the fencing token: the node's czxid, the ZooKeeper
// transaction ID that created it. zxids grow with every write to the
// ensemble, so a later acquisition of any name has a greater token.
func (l *Lease) Token() uint64 { return uint64(l.czxid) }

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
// until it succeeds or the session ends.
func (l *Lease) Release(ctx context.Context) error {
	l.release.Do(func() {
		// The delete goes first, so the next holder is not kept waiting
		// while the follower stops; the follower ignores what it sees of
		// the release itself. A lost lease's node is gone, or being
		// removed in the background since the loss.
		l.releasing.Store(true)
		if l.Err() == nil {
			l.releaseErr = l.q.remove(ctx, l.path, l.sid)
		}
		close(l.stopc)
		<-l.exited
		l.end(distsync.Errorf(distsync.ErrReleased, nil, ""))
	})
	return l.releaseErr
}

// end records why the lease ended, once, and closes Done.
func (l *Lease) end(err error) { l.Set(err) }

// lose ends the lease as the follower saw it end, unless a Release is
// under way (what the follower sees is then the release itself).
func (l *Lease) lose(err error) {
	if !l.releasing.Load() {
		l.end(err)
	}
}

// follow watches for the lease's end until Release stops it: the end of
// its epoch (see Session) or an event on its own node.
func (l *Lease) follow(e *epoch, own <-chan zk.Event) {
	defer l.q.s.bg.Done()
	defer close(l.exited)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-l.stopc:
		case <-l.exited:
		}
		cancel()
	}()
	var rearm <-chan time.Time
	if own == nil {
		rearm = time.After(0)
	}
	b := newBackoff()
	for {
		select {
		case <-l.stopc:
			return
		case <-e.done:
			l.lose(e.err)
			l.q.s.removeLater(l.path, l.sid)
			return
		case ev, ok := <-own:
			own = nil
			switch {
			case ok && ev.Type == zk.EventNodeDeleted:
				l.lose(distsync.Errorf(distsync.ErrLost, nil, "node %s was deleted", l.path))
				return
			case ok && ev.Type == zk.EventNotWatching:
				l.lose(distsync.Errorf(distsync.ErrLost, ev.Err, "watch on %s ended", l.path))
				l.q.s.removeLater(l.path, l.sid)
				return
			}
			rearm = time.After(0) // the data changed (Proclaim): watch again
		case <-rearm:
			rearm = nil
			exists, _, ch, err := l.q.existsW(ctx, l.path)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				rearm = time.After(b.next())
			case !exists:
				l.lose(distsync.Errorf(distsync.ErrLost, nil, "node %s was deleted", l.path))
				return
			default:
				own = ch
			}
		}
	}
}

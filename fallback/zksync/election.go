package zksync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/backoff"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/go-zookeeper/zk"
)

// Election elects one leader among its candidates on ZooKeeper, opened by
// Session.Election. Each Campaign is an ephemeral sequential node under the
// election's node, holding the candidate's value. The candidate with the
// lowest node leads, so leadership passes in campaign order; the term is
// the leader node's czxid. It is safe for concurrent use. Each Campaign
// call is a separate candidacy: two calls exclude each other even through
// one Election or one Session.
type Election struct {
	q *queue
	t *telemetry.Target
}

var _ distsync.Election = (*Election)(nil)

// Campaign creates this candidate's node, with value as its data, and
// blocks until it leads or ctx ends. It watches only the next older
// candidate's node, so a resignation wakes one candidate. On success it
// returns the held *Leadership, whose Token is the term.
//
// Campaign reports leadership only once its own node is known first: from
// the answer to its create when it was the only candidate, else from a
// listing read after a watch on the node was set. Either is read while the
// node's session is the connection's current one, so Campaign never
// reports leadership its session no longer has.
//
// On failure or cancellation nothing is left behind: the node is deleted
// and no goroutine remains. When ctx ends, Campaign goes on for at most
// distsync.CancelGrace to delete the node; if ZooKeeper does not answer by
// then, the deletion goes on in the background until it does or the
// session ends. The errors are those of Mutex.Lock: in particular
// distsync.ErrLost when the node was deleted or its session ended while
// waiting (the candidacy is then gone; campaign again), and
// distsync.ErrDenied, which distsync.Run returns at once.
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	if value == nil {
		value = []byte{}
	}
	l, err := take(ctx, e.t, e.q, exclusive(latchKind), value, false)
	if err != nil {
		return nil, err
	}
	return &Leadership{l: l, ver: l.ver}, nil
}

// Leader returns the current leader: the data and czxid of the lowest node
// under the election's node. It returns an error wrapping
// distsync.ErrNoLeader when nobody campaigns, distsync.ErrUnavailable
// (joined with ctx.Err() when ctx ended) when ZooKeeper did not answer,
// distsync.ErrClosed when the Session was closed, or distsync.ErrDenied. A
// lost connection is waited out until ctx ends.
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	var b backoff.Backoff
	// retry waits out a lost connection, within ctx.
	retry := func(err error) error {
		if !connLost(err) || ctx.Err() != nil {
			return e.readErr(ctx, err)
		}
		e.q.s.o.rec.Debug(ctx, "retrying after a connection loss", opAttrs(e.q.name, "read the leader", err)...)
		if _, rerr := e.q.s.reconnected(ctx, nil); rerr != nil {
			return e.readErr(ctx, errors.Join(rerr, err))
		}
		if !b.Sleep(ctx) {
			return e.readErr(ctx, err)
		}
		return nil
	}
	for {
		children, err := call(ctx, e.q.s, func() ([]string, error) {
			ch, _, err := e.q.s.conn.Children(e.q.path)
			return ch, err
		}, nil)
		if errors.Is(err, zk.ErrNoNode) {
			return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.q.name)
		}
		if err != nil {
			if err := retry(err); err != nil {
				return distsync.Leader{}, err
			}
			continue
		}
		nodes := sortNodes(children)
		if len(nodes) == 0 {
			return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.q.name)
		}
		type res struct {
			data []byte
			stat *zk.Stat
		}
		r, err := call(ctx, e.q.s, func() (res, error) {
			data, stat, err := e.q.s.conn.Get(e.q.path + "/" + nodes[0].name)
			return res{data, stat}, err
		}, nil)
		switch {
		case errors.Is(err, zk.ErrNoNode):
			continue // the leader resigned since the listing
		case err != nil:
			if err := retry(err); err != nil {
				return distsync.Leader{}, err
			}
			continue
		}
		return distsync.Leader{Value: r.data, Term: uint64(r.stat.Czxid), Time: time.Now()}, nil
	}
}

// readErr turns the error of a read into a contract error.
func (e *Election) readErr(ctx context.Context, err error) error {
	return e.q.s.classify(ctx, err, distsync.ErrUnavailable, fmt.Sprintf("read the leader of %q", e.q.name))
}

// Observe returns a channel that delivers the election's state now and
// then its changes, in ZooKeeper's order: each new leader, each value a
// leader proclaims, and "no leader" (Leader.None). ZooKeeper's watches
// fire once and keep no history, so a state that lasted shorter than a
// round trip may be skipped: a leader that resigned at once, a value
// proclaimed and replaced quickly, or whatever happened while the
// connection was down (see the package documentation). What it delivers
// is always a state that held, in term order, never an older state after
// a newer one, and it converges to the current state.
//
// The channel is unbuffered; a slow reader delays the observer, and it
// then delivers the state current when it reads again. The channel is
// closed, and its goroutine ends, only when ctx ends: a disconnection or a
// session expiry is waited out, and after the Session is closed the
// channel stays open, delivering nothing more.
func (e *Election) Observe(ctx context.Context) <-chan distsync.Leader {
	out := make(chan distsync.Leader)
	o := &observer{q: e.q, out: out}
	go o.run(ctx)
	return out
}

// Path returns the election's node, whose children are its candidates.
func (e *Election) Path() string { return e.q.path }

// Session returns the Session the Election was opened from.
func (e *Election) Session() *Session { return e.q.s }

// Leadership is a held leadership, returned by Campaign as a
// distsync.Leadership: the lease of the leader node, whose Token is the
// term, and Proclaim. It is lost like any Lease (see Lease and Session).
// It is safe for concurrent use.
type Leadership struct {
	l *Lease

	mu  sync.Mutex // serialises Proclaim
	ver int32      // the leader node's data version; -1 when unknown
}

var _ distsync.Leadership = (*Leadership)(nil)

// Token returns the term: the leader node's czxid, strictly greater for
// every later leader.
func (l *Leadership) Token() uint64 { return l.l.Token() }

// Done returns a channel that is closed when leadership ends: resigned or
// lost.
func (l *Leadership) Done() <-chan struct{} { return l.l.Done() }

// Err returns nil while leadership is held, then why it ended (see
// Lease.Err).
func (l *Leadership) Err() error { return l.l.Err() }

// Release resigns: it deletes the leader node, as Lease.Release does.
func (l *Leadership) Release(ctx context.Context) error { return l.l.Release(ctx) }

// Path returns the leader node.
func (l *Leadership) Path() string { return l.l.Path() }

// SessionID returns the ZooKeeper session that owns the leader node.
func (l *Leadership) SessionID() int64 { return l.l.SessionID() }

// Proclaim sets the leader node's data to value, so that observers see it
// as the leader's value; the term does not change. The write is
// conditional on the data version this Leadership last wrote, so it never
// lands on a node that was deleted (a later leader's node is another
// node). When leadership has ended it writes
// nothing and returns an error wrapping distsync.ErrLost (or
// distsync.ErrReleased). An error wrapping distsync.ErrUnavailable
// (joined with ctx.Err() when ctx ended) means ZooKeeper did not confirm
// the write, which may or may not have happened; Proclaim may be retried.
func (l *Leadership) Proclaim(ctx context.Context, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.Err(); err != nil {
		return err
	}
	s := l.l.q.s
	path := l.l.path
	if l.ver < 0 {
		// An earlier Proclaim's outcome is unknown: learn the version.
		stat, err := call(ctx, s, func() (*zk.Stat, error) {
			_, stat, err := s.conn.Get(path)
			return stat, err
		}, nil)
		if err != nil {
			return l.proclaimErr(ctx, err)
		}
		l.ver = stat.Version
	}
	ver := l.ver
	l.ver = -1 // unknown until the answer arrives
	l.l.writes.Add(1)
	stat, err := call(ctx, s, func() (*zk.Stat, error) {
		return s.conn.Set(path, value, ver)
	}, nil)
	if err != nil {
		return l.proclaimErr(ctx, err)
	}
	l.ver = stat.Version
	return nil
}

// proclaimErr turns the error of Proclaim's request into a contract error.
func (l *Leadership) proclaimErr(ctx context.Context, err error) error {
	path := l.l.path
	if errors.Is(err, zk.ErrNoNode) || errors.Is(err, zk.ErrBadVersion) {
		// Deleted, or written by another client: ForceRelease's marker
		// does both. The follower learns why from its watch within a
		// round trip; the write saw it first.
		t := time.NewTimer(settleTimeout)
		select {
		case <-l.Done():
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
	switch {
	case l.Err() != nil:
		return l.Err()
	case errors.Is(err, zk.ErrNoNode):
		l.l.lose(errDeleted(l.l.q.name, path, false))
		return l.Err()
	case ctx.Err() == nil && errors.Is(err, zk.ErrBadVersion):
		return distsync.Errorf(distsync.ErrUnavailable, err, "proclaim on %q (node %s): its data was written by another client", l.l.q.name, path)
	}
	return l.l.q.s.classify(ctx, err, distsync.ErrUnavailable, fmt.Sprintf("proclaim on %q (node %s)", l.l.q.name, path))
}

// settleTimeout bounds how long Proclaim waits for the follower to tell
// why its write found the node deleted or changed.
const settleTimeout = time.Second

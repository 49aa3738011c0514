package zksync

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/go-zookeeper/zk"
)

// latchKind is the kind in an Election's node names, the one Curator's
// LeaderLatch uses ("_c_<guid>-latch-NNNNNNNNNN").
const latchKind = "latch"

// candidate is the class of a campaign: it waits for the next older node,
// like a Mutex, but a campaign whose session ends while it waits fails
// with distsync.ErrLost rather than queueing again unseen.
var candidate = class{kind: latchKind, blockers: exclusive(latchKind).blockers, oneSession: true}

// Election elects one leader among its candidates on ZooKeeper. Each
// Campaign is an ephemeral sequential node under the election's node,
// holding the candidate's value; the candidate with the lowest node
// leads, so leadership passes in campaign order, and the term is the
// leader node's czxid. It is safe for concurrent use; each Campaign call is
// a separate candidacy, so two calls exclude each other even through one
// Election or one Session.
type Election struct {
	q *queue
}

var _ distsync.Election = (*Election)(nil)

// NewElection returns the Election called name on session s. It does no
// I/O. The caller keeps ownership of s: when its session ends, leadership
// taken through it is lost. It fails with an error wrapping
// distsync.ErrInvalidName for a name that breaks distsync.ValidateName, or
// distsync.ErrInvalidConfig for a nil session.
func NewElection(s *Session, name string) (*Election, error) {
	q, err := newQueue(s, name)
	if err != nil {
		return nil, err
	}
	return &Election{q: q}, nil
}

// Campaign creates this candidate's node, with value as its data, and
// blocks until it leads or ctx ends. It watches only the next older
// candidate's node, so a resignation wakes one candidate. On success it
// returns the held *Leadership, whose Token is the term.
//
// Campaign reports leadership only after a read of the election's children
// has shown its own node first, taken after a watch on that node was set
// and while the node's session is the connection's current one: it never
// reports leadership its session no longer has.
//
// On failure or cancellation nothing is left behind: the node is deleted
// and no goroutine remains. When ctx ends, Campaign goes on for at most
// distsync.CancelGrace to delete the node; if ZooKeeper does not answer by
// then, the deletion goes on in the background until it does or the
// session ends. The error wraps
// distsync.ErrNotAcquired and ctx.Err() when ctx ended, distsync.ErrLost
// when the node was deleted or its session ended while waiting (the
// candidacy is then gone; campaign again), distsync.ErrClosed when the
// Session was closed, or distsync.ErrUnavailable when ZooKeeper failed a
// request. A waiting candidate follows its session as a Lease does: it
// fails with ErrLost as soon as a lease of the session would be lost (see
// Session), without waiting for go-zookeeper to reconnect. By default
// that includes a disconnection; with WithDisconnectGrace, a shorter one
// is waited out. A node left behind by a mere disconnection is deleted
// once the connection is back.
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	if value == nil {
		value = []byte{}
	}
	l, err := e.q.acquire(ctx, candidate, value, false)
	if err != nil {
		return nil, err
	}
	return &Leadership{Lease: l, ver: l.ver}, nil
}

// Leader returns the current leader: the data and czxid of the lowest node
// under the election's node. It returns an error wrapping
// distsync.ErrNoLeader when nobody campaigns, or distsync.ErrUnavailable
// (joined with ctx.Err() when ctx ended, distsync.ErrClosed when the
// Session was closed) when ZooKeeper did not answer. A lost connection is
// waited out until ctx ends.
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	b := newBackoff()
	// retry waits out a lost connection, within ctx.
	retry := func(err error) error {
		if !connLost(err) || ctx.Err() != nil {
			return e.readErr(ctx, err)
		}
		if _, rerr := e.q.reconnected(ctx); rerr != nil {
			return e.readErr(ctx, errors.Join(rerr, err))
		}
		select {
		case <-ctx.Done():
			return e.readErr(ctx, err)
		case <-time.After(b.next()):
			return nil
		}
	}
	for {
		children, err := call(ctx, e.q.s, func() ([]string, error) {
			ch, _, err := e.q.s.conn.Children(e.q.path)
			return ch, err
		}, nil)
		if errors.Is(err, zk.ErrNoNode) {
			return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.q.path)
		}
		if err != nil {
			if err := retry(err); err != nil {
				return distsync.Leader{}, err
			}
			continue
		}
		nodes := sortNodes(children)
		if len(nodes) == 0 {
			return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.q.path)
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
	switch {
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), ignoreCtx(ctx, err)), "read leader of %q", e.q.path)
	case errors.Is(err, distsync.ErrClosed):
		return err
	case errors.Is(err, zk.ErrClosing):
		return distsync.Errorf(distsync.ErrClosed, err, "read leader of %q", e.q.path)
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, "read leader of %q", e.q.path)
}

// Observe returns a channel that delivers the election's state now and
// then its changes, in ZooKeeper's order: each new leader, each value a
// leader proclaims, and "no leader" (Leader.None). See observer for how
// it follows them, and the package documentation for what it may
// coalesce: ZooKeeper's watches fire once and keep no history, so a state
// that lasted shorter than a round trip (a leader that resigned at once, a
// value proclaimed and replaced quickly, or whatever happened while the
// connection was down) may be skipped. What it delivers is always a state
// that held, in term order, never an older state after a newer one, and
// it converges to the current state.
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

// Session returns the session the election's nodes belong to.
func (e *Election) Session() *Session { return e.q.s }

// Leadership is a held leadership, returned by Campaign as a
// distsync.Leadership: the *Lease of the leader node (its Token is the
// term, its Path the leader node) and Proclaim. It is lost like any Lease
// (see Lease and Session). It is safe for concurrent use.
type Leadership struct {
	*Lease

	mu  sync.Mutex // serialises Proclaim
	ver int32      // the leader node's data version; -1 when unknown
}

var _ distsync.Leadership = (*Leadership)(nil)

// Proclaim sets the leader node's data to value, so that observers see it
// as the leader's value; the term does not change. The write is
// conditional on the node's data version being the one this Leadership
// last wrote, so it never lands on a node that was deleted (and the node
// of a later leader is another node). When leadership has ended it writes
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
	s := l.q.s
	if l.ver < 0 {
		// An earlier Proclaim's outcome is unknown: learn the version.
		stat, err := call(ctx, s, func() (*zk.Stat, error) {
			_, stat, err := s.conn.Get(l.path)
			return stat, err
		}, nil)
		if err != nil {
			return l.proclaimErr(ctx, err)
		}
		l.ver = stat.Version
	}
	ver := l.ver
	l.ver = -1 // unknown until the answer arrives
	stat, err := call(ctx, s, func() (*zk.Stat, error) {
		return s.conn.Set(l.path, value, ver)
	}, nil)
	if err != nil {
		return l.proclaimErr(ctx, err)
	}
	l.ver = stat.Version
	return nil
}

// proclaimErr turns the error of Proclaim's request into a contract error.
func (l *Leadership) proclaimErr(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, zk.ErrNoNode):
		// The follower learns of the deletion from its watch; the
		// write saw it first.
		l.lose(distsync.Errorf(distsync.ErrLost, nil, "node %s was deleted", l.path))
		return l.Err()
	case l.Err() != nil:
		return l.Err()
	case ctx.Err() != nil:
		return distsync.Errorf(distsync.ErrUnavailable, errors.Join(context.Cause(ctx), ignoreCtx(ctx, err)), "proclaim on %s", l.path)
	case errors.Is(err, zk.ErrBadVersion):
		return distsync.Errorf(distsync.ErrUnavailable, err, "proclaim on %s: its data was written by another client", l.path)
	case errors.Is(err, distsync.ErrClosed):
		return err
	}
	return distsync.Errorf(distsync.ErrUnavailable, err, "proclaim on %s", l.path)
}

package election

import (
	"context"
	"fmt"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	"github.com/distsync/distsync/internal/telemetry"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

func init() {
	etcdq.RegisterLeaseOf(func(l distsync.Lease) *etcdq.Lease {
		if x, ok := l.(*Leadership); ok && x != nil {
			return x.l
		}
		return nil
	})
	etcdq.RegisterElection(func(q *etcdq.Queue) distsync.Election { return newElection(q) })
}

// Election is a leader election on etcd: among the candidates campaigning
// under one name, the one that campaigned first (the oldest key) leads.
// Open it with etcdsync.Session.Election (or New, over a session of your
// own). It is safe for concurrent use; each Campaign call is a separate
// candidacy, so two calls exclude each other even through one Election or
// one Session.
type Election struct {
	name string
	q    *etcdq.Queue
	src  *etcdq.Session
	c    *clientv3.Client
	t    *telemetry.Target // its attributes, computed once
}

var _ distsync.Election = (*Election)(nil)

func newElection(q *etcdq.Queue) *Election {
	src := q.Session()
	return &Election{q: q, src: src, c: src.Client(), t: src.Recorder().Target(telemetry.Election, "", q.Name())}
}

// New returns the Election called name on s, an etcd session of your own.
// It does no I/O. s is never renewed: when it ends (closed, expired or
// revoked), leadership taken through it is lost. Later Campaign calls then
// fail with distsync.ErrClosed, while Leader and Observe, which need no
// lease, go on while s's client is open. It fails with distsync.ErrInvalidName for a
// name that breaks distsync.ValidateName, or distsync.ErrInvalidConfig for
// a nil session.
func New(s *concurrency.Session, name string) (*Election, error) {
	src, err := etcdq.Fixed(s)
	if err != nil {
		return nil, err
	}
	q, err := etcdq.NewQueue(src, name)
	if err != nil {
		return nil, err
	}
	return newElection(q), nil
}

// Campaign enqueues this candidate with value and blocks until it leads or
// ctx ends. On success it returns the held *Leadership, whose Token is the
// term: the create revision of the candidate's key, strictly greater than
// the term of every earlier leader of the name.
//
// Campaign never reports leadership after its session lease died. It
// returns only after one etcd transaction has confirmed that its own key
// (and so the lease) still exists, and that no older candidate is left.
//
// On failure or cancellation nothing is left behind. The candidate key is
// deleted (if etcd does not answer, in the background until it does or
// the session lease ends), no goroutine remains, and other candidates are
// not affected. The error wraps distsync.ErrNotAcquired and ctx.Err() when
// ctx ended. It wraps distsync.ErrLost when the session lease or the
// candidate key went away while waiting (the next Campaign uses a new
// lease), and distsync.ErrClosed after the Session's Close. It wraps
// distsync.ErrDenied when etcd refused the permission, or
// distsync.ErrUnavailable when etcd failed the enqueue request. While waiting, etcd failures such as an etcd leader
// election are retried for as long as the session lease lives.
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	l, err := e.q.Acquire(ctx, e.t, etcdq.Candidate, string(value))
	if err != nil {
		return nil, err
	}
	return &Leadership{l: l, c: e.c}, nil
}

// Leader returns the current leader: the value and term of the oldest
// candidate key, read linearizably. It returns an error wrapping
// distsync.ErrNoLeader when nobody campaigns, distsync.ErrClosed after the
// Session's Close, distsync.ErrDenied, or distsync.ErrUnavailable (joined
// with ctx.Err() when ctx ended) when etcd did not answer.
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	if e.src.Closed() {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrClosed, nil, "etcd session closed")
	}
	// The oldest direct child: keys of deeper names are skipped.
	kv, err := etcdq.Scan(ctx, e.c, e.q.Prefix(), false, 0)
	if err != nil {
		return distsync.Leader{}, etcdq.RPCError(ctx, e.c, err, fmt.Sprintf("read leader of %q", e.q.Name()))
	}
	if kv == nil {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.q.Name())
	}
	return distsync.Leader{Value: kv.Value, Term: uint64(kv.CreateRevision), Time: time.Now()}, nil
}

// Observe returns a channel that delivers the election's state now and
// then every change of it, in etcd's order: each new leader, each value a
// leader proclaims, and "no leader" (Leader.None). A proclamation of the
// value already held is not a change. The first value describes the state
// when the observer started. It needs no session lease, so it follows the
// election across the Session's lease changes.
//
// Nothing is skipped while the observer keeps up with etcd's history: a
// broken watch (a reconnect, an etcd member that lost its leader) resumes
// after the last revision seen. If etcd compacted that history first, the
// observer reads the current state and delivers it if it differs from the
// last one delivered; the changes in the compacted gap are gone from etcd
// and cannot be delivered.
//
// The channel is unbuffered and a slow reader loses nothing: the etcd
// client buffers the events meanwhile. It is closed, and its goroutine
// ends, when ctx ends, when the Session is closed (or, with New, the
// client), or when etcd denies the watch (Leader then tells why).
func (e *Election) Observe(ctx context.Context) <-chan distsync.Leader {
	ch := make(chan distsync.Leader)
	o := &observer{c: e.c, prefix: e.q.Prefix(), out: ch, t: e.t}
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.src.Context(), cancel)
	if !e.src.Go(func() {
		defer cancel()
		defer stop()
		o.run(ctx)
	}) {
		stop()
		cancel()
		close(ch)
	}
	return ch
}

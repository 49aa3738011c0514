package election

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultTTL is the session TTL of NewWithClient when WithTTL is not given.
const DefaultTTL = etcdq.DefaultTTL

// MinTTL is the shortest session TTL etcd grants with its default settings.
const MinTTL = etcdq.MinTTL

// Election is a leader election on etcd: among the candidates campaigning
// under one name, the one that campaigned first (the oldest key) leads. It
// is safe for concurrent use; each Campaign call is a separate candidacy,
// so two calls exclude each other even through one Election or one session.
type Election struct {
	name   string
	c      *clientv3.Client
	prefix string
	ttl    time.Duration
	owned  bool // NewWithClient made the session: Close ends it, Campaign renews it

	mu       sync.Mutex
	q        *etcdq.Queue
	closed   bool
	renewing chan struct{}  // closed when the session renewal in progress ends
	retired  sync.WaitGroup // closing of queues whose session ended
}

var _ distsync.Election = (*Election)(nil)

// New returns the Election called name on session s. It does no I/O. The
// caller keeps ownership of s: when s ends (closed, expired or revoked),
// leadership taken through it is lost and later Campaign calls fail with
// distsync.ErrClosed. It fails with an error wrapping
// distsync.ErrInvalidName for a name that breaks distsync.ValidateName, or
// distsync.ErrInvalidConfig for a nil session.
func New(s *concurrency.Session, name string) (*Election, error) {
	q, err := etcdq.New(s, name)
	if err != nil {
		return nil, err
	}
	return &Election{name: name, c: s.Client(), prefix: q.Prefix(), q: q}, nil
}

// Option configures NewWithClient.
type Option = etcdq.Option

// WithTTL sets the TTL of the sessions NewWithClient creates: a whole
// number of seconds, at least MinTTL (default DefaultTTL). A crashed
// leader is replaced after about this long.
func WithTTL(ttl time.Duration) Option { return func(o *etcdq.Options) { o.TTL = ttl } }

// NewWithClient returns the Election called name on a new session of
// client c, which the Election owns: Close ends it. When that session ends
// (its lease expired or was revoked), the next Campaign starts a new one,
// so a candidate that lost leadership can campaign again. It grants the
// session lease under ctx. It fails with distsync.ErrInvalidName,
// distsync.ErrInvalidConfig (a nil client, a TTL below MinTTL or not whole
// seconds, or a server that grants another TTL) or distsync.ErrUnavailable;
// nothing is left behind.
func NewWithClient(ctx context.Context, c *clientv3.Client, name string, opts ...Option) (*Election, error) {
	ttl := etcdq.Apply(opts).TTL
	q, err := etcdq.Open(ctx, c, name, ttl)
	if err != nil {
		return nil, err
	}
	return &Election{name: name, c: c, prefix: q.Prefix(), ttl: ttl, owned: true, q: q}, nil
}

// Campaign enqueues this candidate with value and blocks until it leads or
// ctx ends. On success it returns the held *Leadership, whose Token is the
// term: the create revision of the candidate's key, strictly greater than
// the term of every earlier leader of the name.
//
// Campaign never reports leadership after the session died: it returns
// only after a single etcd transaction has confirmed that its own key (and
// so the session lease) still exists and that no older candidate is left.
//
// On failure or cancellation nothing is left behind: the candidate key is
// deleted (if etcd does not answer, in the background until it does or the
// session ends), no goroutine remains, and other candidates are not
// affected. The error wraps distsync.ErrNotAcquired and ctx.Err() when ctx
// ended, distsync.ErrLost when the session or the candidate key went away
// while waiting, distsync.ErrClosed when the Election or its client was
// closed or its caller-provided session had ended, or
// distsync.ErrUnavailable when etcd failed the enqueue request (while
// waiting, etcd failures such as an etcd leader election are retried for
// as long as the session lives).
func (e *Election) Campaign(ctx context.Context, value []byte) (distsync.Leadership, error) {
	q, err := e.queue(ctx, nil)
	if err != nil {
		return nil, err
	}
	l, err := q.Acquire(ctx, etcdq.Exclusive, string(value))
	if e.owned && errors.Is(err, rpctypes.ErrLeaseNotFound) {
		// The session lease was revoked or expired, and the session
		// learns of it only at its next keep-alive, up to a third of
		// the TTL later: replace it now.
		if q, err = e.queue(ctx, q); err != nil {
			return nil, err
		}
		l, err = q.Acquire(ctx, etcdq.Exclusive, string(value))
	}
	if err != nil {
		return nil, err
	}
	return &Leadership{l: l, c: e.c}, nil
}

// queue returns the queue to campaign on. An owned session that ended, or
// whose queue is stale (its lease is known to be gone), is replaced by a
// new one, by one caller at a time while the others wait (each under its
// own ctx); the old queue is closed in the background (its revoke may
// wait for an unreachable etcd) and waited for by Close.
func (e *Election) queue(ctx context.Context, stale *etcdq.Queue) (*etcdq.Queue, error) {
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, distsync.Errorf(distsync.ErrClosed, nil, "election %q closed", e.name)
		}
		q := e.q
		if !e.owned || (q != stale && q.Session().Ctx().Err() == nil) {
			e.mu.Unlock()
			return q, nil // with a caller's session, Acquire reports an ended one
		}
		if wait := e.renewing; wait != nil {
			e.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, distsync.Errorf(distsync.ErrNotAcquired, context.Cause(ctx), "waiting for a new session")
			}
		}
		done := make(chan struct{})
		e.renewing = done
		e.mu.Unlock()
		return e.renew(ctx, q, done)
	}
}

// renew opens a queue on a new session to replace old, and then closes
// done. If Close came meanwhile, the new queue is closed at once.
func (e *Election) renew(ctx context.Context, old *etcdq.Queue, done chan struct{}) (*etcdq.Queue, error) {
	defer close(done)
	var q *etcdq.Queue
	err := distsync.Errorf(distsync.ErrClosed, nil, "election %q: etcd client closed", e.name)
	if e.c.Ctx().Err() == nil {
		q, err = etcdq.Open(ctx, e.c, e.name, e.ttl)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.renewing = nil
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, distsync.Errorf(distsync.ErrNotAcquired, errors.Join(context.Cause(ctx), etcdq.Flat(err)), "renew session")
	case err != nil:
		return nil, err
	case e.closed:
		_ = q.Close()
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "election %q closed", e.name)
	}
	e.q = q
	e.retired.Go(func() { _ = old.Close() })
	return q, nil
}

// Leader returns the current leader: the value and term of the oldest
// candidate key, read linearizably. It returns an error wrapping
// distsync.ErrNoLeader when nobody campaigns, or distsync.ErrUnavailable
// (joined with ctx.Err() when ctx ended) when etcd did not answer.
func (e *Election) Leader(ctx context.Context) (distsync.Leader, error) {
	resp, err := e.c.Get(ctx, e.prefix, clientv3.WithFirstCreate()...)
	if err != nil {
		if ctx.Err() != nil {
			err = errors.Join(context.Cause(ctx), err)
		}
		return distsync.Leader{}, distsync.Errorf(distsync.ErrUnavailable, err, "read leader of %q", e.name)
	}
	if len(resp.Kvs) == 0 {
		return distsync.Leader{}, distsync.Errorf(distsync.ErrNoLeader, nil, "election %q", e.name)
	}
	kv := resp.Kvs[0]
	return distsync.Leader{Value: kv.Value, Term: uint64(kv.CreateRevision), Time: time.Now()}, nil
}

// Observe returns a channel that delivers the election's state now and
// then every change of it, in etcd's order: each new leader, each value a
// leader proclaims, and "no leader" (Leader.None). A proclamation of the
// value already held is not a change. The first value describes the state
// when the observer started.
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
// ends, when ctx ends or when the Election's client is closed.
func (e *Election) Observe(ctx context.Context) <-chan distsync.Leader {
	ch := make(chan distsync.Leader)
	o := &observer{c: e.c, prefix: e.prefix, out: ch}
	go o.run(ctx)
	return ch
}

// Session returns the session new candidacies are bound to. With
// NewWithClient it is replaced when it ends; see NewWithClient.
func (e *Election) Session() *concurrency.Session {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.q.Session()
}

// Close makes later Campaign calls fail with distsync.ErrClosed. If
// NewWithClient created the session, Close ends it, revoking its lease:
// leadership held through it ends (is lost) and etcd hands it to the next
// candidate at once. It then waits for background removals of candidate
// keys; with a caller's session they end when their key is gone or the
// session ends. Observers are not affected: they end with their context.
func (e *Election) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	q, renewing := e.q, e.renewing
	e.mu.Unlock()
	if renewing != nil {
		<-renewing // the renewal sees closed and closes its new queue
	}
	err := q.Close()
	e.retired.Wait()
	return err
}

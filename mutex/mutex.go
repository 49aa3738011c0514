package mutex

import (
	"context"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/etcdq"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultTTL is the session TTL of NewWithClient when WithTTL is not given.
const DefaultTTL = etcdq.DefaultTTL

// MinTTL is the shortest session TTL etcd grants with its default settings.
const MinTTL = etcdq.MinTTL

// Lease is a held lock. Lock and TryLock return a *Lease as a
// distsync.Lease; assert it to reach the etcd key and revision:
//
//	l := lease.(*mutex.Lease)
//	client.Txn(ctx).If(l.IsOwner()).Then(clientv3.OpPut(k, v)).Commit()
type Lease = etcdq.Lease

// Mutex is a distributed mutual-exclusion lock on etcd. It is safe for
// concurrent use; each Lock or TryLock call is a separate acquisition, so
// two calls exclude each other even through one Mutex or one session.
type Mutex struct {
	q *etcdq.Queue
}

var _ distsync.Mutex = (*Mutex)(nil)

// New returns the Mutex called name on session s. It does no I/O. The
// caller keeps ownership of s: when s ends (closed, expired or revoked),
// every lease taken through it is lost. It fails with an error wrapping
// distsync.ErrInvalidName for a name that breaks distsync.ValidateName, or
// distsync.ErrInvalidConfig for a nil session.
func New(s *concurrency.Session, name string) (*Mutex, error) {
	q, err := etcdq.New(s, name)
	if err != nil {
		return nil, err
	}
	return &Mutex{q: q}, nil
}

// Option configures NewWithClient.
type Option = etcdq.Option

// WithTTL sets the TTL of the session NewWithClient creates: a whole number
// of seconds, at least MinTTL (default DefaultTTL). A crashed holder's lock
// passes on after about this long.
func WithTTL(ttl time.Duration) Option { return func(o *etcdq.Options) { o.TTL = ttl } }

// NewWithClient returns the Mutex called name on a new session of client
// c, which the Mutex owns: Close ends it. It grants the session lease
// under ctx. It fails with distsync.ErrInvalidName, distsync.ErrInvalidConfig
// (a nil client, a TTL below MinTTL or not whole seconds, or a server that
// grants another TTL) or distsync.ErrUnavailable; nothing is left behind.
func NewWithClient(ctx context.Context, c *clientv3.Client, name string, opts ...Option) (*Mutex, error) {
	q, err := etcdq.Open(ctx, c, name, etcdq.Apply(opts).TTL)
	if err != nil {
		return nil, err
	}
	return &Mutex{q: q}, nil
}

// Lock blocks until the lock is held or ctx ends, and returns the held
// *Lease. On failure nothing is left behind: the waiter key is deleted
// (if etcd does not answer, in the background until it does or the session
// ends) and no goroutine remains. The error wraps distsync.ErrNotAcquired
// and ctx.Err() when ctx ended, distsync.ErrLost when the session or the
// waiter key went away, distsync.ErrClosed when the session had ended
// before the call, or distsync.ErrUnavailable when etcd failed the enqueue
// request (while waiting, etcd failures such as a leader election are
// retried for as long as the session lives).
func (m *Mutex) Lock(ctx context.Context) (distsync.Lease, error) {
	l, err := m.q.Acquire(ctx, etcdq.Exclusive, "")
	if err != nil {
		return nil, err
	}
	return l, nil
}

// TryLock takes the lock only if nobody holds or waits for it, in one
// round trip. Otherwise it returns an error wrapping distsync.ErrWouldBlock
// and writes nothing.
func (m *Mutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	l, err := m.q.TryAcquire(ctx, etcdq.Exclusive, "")
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Session returns the session the Mutex's keys are bound to.
func (m *Mutex) Session() *concurrency.Session { return m.q.Session() }

// Close ends the session if NewWithClient created it (revoking its lease,
// which releases every lease taken through it), then waits for background
// removals to end. With a caller's session it only waits for those; they
// end when their key is gone or the session ends.
func (m *Mutex) Close() error { return m.q.Close() }

package rwmutex

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

// Lease is a held read or write lease; RLock, Lock and their Try forms
// return a *Lease as a distsync.Lease.
type Lease = etcdq.Lease

var (
	// writer keys wait for every older key.
	writer = etcdq.Class{Sub: "w/", Wait: ""}
	// reader keys wait for older writer keys only.
	reader = etcdq.Class{Sub: "r/", Wait: "w/"}
)

// RWMutex is a distributed reader/writer lock on etcd. It is safe for
// concurrent use; every call is a separate acquisition, so a write lease
// excludes read leases taken through the same RWMutex or session.
type RWMutex struct {
	q *etcdq.Queue
}

var _ distsync.RWMutex = (*RWMutex)(nil)

// New returns the RWMutex called name on session s. It does no I/O. The
// caller keeps ownership of s: when s ends, every lease taken through it
// is lost. It fails with distsync.ErrInvalidName or
// distsync.ErrInvalidConfig (a nil session).
func New(s *concurrency.Session, name string) (*RWMutex, error) {
	q, err := etcdq.New(s, name)
	if err != nil {
		return nil, err
	}
	return &RWMutex{q: q}, nil
}

// Option configures NewWithClient.
type Option = etcdq.Option

// WithTTL sets the TTL of the session NewWithClient creates: a whole number
// of seconds, at least MinTTL (default DefaultTTL).
func WithTTL(ttl time.Duration) Option { return func(o *etcdq.Options) { o.TTL = ttl } }

// NewWithClient returns the RWMutex called name on a new session of client
// c, which the RWMutex owns: Close ends it. It fails with
// distsync.ErrInvalidName, distsync.ErrInvalidConfig or
// distsync.ErrUnavailable, and leaves nothing behind then.
func NewWithClient(ctx context.Context, c *clientv3.Client, name string, opts ...Option) (*RWMutex, error) {
	q, err := etcdq.Open(ctx, c, name, etcdq.Apply(opts).TTL)
	if err != nil {
		return nil, err
	}
	return &RWMutex{q: q}, nil
}

// Lock blocks until the write lease is held or ctx ends: until every older
// reader and writer has released. On failure nothing is left behind (see
// mutex.Mutex.Lock for the errors).
func (rw *RWMutex) Lock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, writer, ""))
}

// TryLock takes the write lease only if no reader or writer holds or waits
// for it; otherwise it returns an error wrapping distsync.ErrWouldBlock and
// writes nothing.
func (rw *RWMutex) TryLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, writer, ""))
}

// RLock blocks until a read lease is held or ctx ends: until every older
// writer has released (readers do not wait for each other). On failure
// nothing is left behind.
func (rw *RWMutex) RLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.Acquire(ctx, reader, ""))
}

// TryRLock takes a read lease only if no writer holds or waits for the
// lock; otherwise it returns an error wrapping distsync.ErrWouldBlock and
// writes nothing.
func (rw *RWMutex) TryRLock(ctx context.Context) (distsync.Lease, error) {
	return lease(rw.q.TryAcquire(ctx, reader, ""))
}

// lease keeps a nil *Lease from becoming a non-nil distsync.Lease.
func lease(l *etcdq.Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Session returns the session the RWMutex's keys are bound to.
func (rw *RWMutex) Session() *concurrency.Session { return rw.q.Session() }

// Close ends the session if NewWithClient created it, then waits for
// background removals to end (see mutex.Mutex.Close).
func (rw *RWMutex) Close() error { return rw.q.Close() }

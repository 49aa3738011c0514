package semaphore

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

// Lease is a held permit (or n permits, from AcquireN); the acquire calls
// return a *Lease as a distsync.Lease.
type Lease = etcdq.Lease

// Semaphore is a distributed counting semaphore on etcd. It is safe for
// concurrent use; every call is a separate acquisition.
type Semaphore struct {
	q     *etcdq.Queue
	limit int64
}

var _ distsync.Semaphore = (*Semaphore)(nil)

// New returns the semaphore called name with the given limit on session s.
// It does no I/O: a limit that differs from the stored one is reported by
// the first acquisition. The caller keeps ownership of s: when s ends,
// every permit taken through it is lost. It fails with
// distsync.ErrInvalidName, or distsync.ErrInvalidConfig for a nil session or
// a limit below 1.
func New(s *concurrency.Session, name string, limit int64) (*Semaphore, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q, err := etcdq.New(s, name)
	if err != nil {
		return nil, err
	}
	return &Semaphore{q: q, limit: limit}, nil
}

// Option configures NewWithClient.
type Option = etcdq.Option

// WithTTL sets the TTL of the session NewWithClient creates: a whole number
// of seconds, at least MinTTL (default DefaultTTL). A crashed holder's
// permit comes back after about this long.
func WithTTL(ttl time.Duration) Option { return func(o *etcdq.Options) { o.TTL = ttl } }

// NewWithClient returns the semaphore called name with the given limit on
// a new session of client c, which the Semaphore owns: Close ends it. It
// stores the limit if none is stored and fails with
// distsync.ErrLimitMismatch if another one is; it also fails with
// distsync.ErrInvalidName, distsync.ErrInvalidConfig or
// distsync.ErrUnavailable. Nothing is left behind on failure (a limit it
// stored stays: it is the semaphore's configuration).
func NewWithClient(ctx context.Context, c *clientv3.Client, name string, limit int64, opts ...Option) (*Semaphore, error) {
	if err := checkLimit(limit); err != nil {
		return nil, err
	}
	q, err := etcdq.Open(ctx, c, name, etcdq.Apply(opts).TTL)
	if err != nil {
		return nil, err
	}
	if err := q.EnsureLimit(ctx, limit); err != nil {
		_ = q.Close()
		return nil, err
	}
	return &Semaphore{q: q, limit: limit}, nil
}

func checkLimit(limit int64) error {
	if limit < 1 {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d, want at least 1", limit)
	}
	return nil
}

// Limit returns the limit the semaphore was opened with.
func (s *Semaphore) Limit() int64 { return s.limit }

// Acquire blocks until a permit is held or ctx ends. On failure nothing is
// left behind: the waiter key is deleted and no goroutine remains. The
// error wraps distsync.ErrNotAcquired and ctx.Err() when ctx ended,
// distsync.ErrLimitMismatch when the stored limit differs, distsync.ErrLost
// when the session or the waiter key went away, distsync.ErrClosed when the
// session had ended, or distsync.ErrUnavailable.
func (s *Semaphore) Acquire(ctx context.Context) (distsync.Lease, error) {
	return s.AcquireN(ctx, 1)
}

// TryAcquire takes a permit only if one is free and nobody waits; otherwise
// it returns an error wrapping distsync.ErrWouldBlock and writes nothing.
func (s *Semaphore) TryAcquire(ctx context.Context) (distsync.Lease, error) {
	return s.TryAcquireN(ctx, 1)
}

// AcquireN blocks until n permits are held together, as one Lease, or ctx
// ends; as Acquire otherwise. n must be between 1 and the limit
// (distsync.ErrInvalidConfig otherwise). Waiters are served in arrival
// order: a waiting AcquireN holds back later acquisitions until it fits.
func (s *Semaphore) AcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	if err := s.checkN(n); err != nil {
		return nil, err
	}
	return lease(s.q.AcquireWeighted(ctx, s.limit, n))
}

// TryAcquireN takes n permits only if they are free and nobody waits;
// otherwise it returns an error wrapping distsync.ErrWouldBlock and writes
// nothing.
func (s *Semaphore) TryAcquireN(ctx context.Context, n int64) (distsync.Lease, error) {
	if err := s.checkN(n); err != nil {
		return nil, err
	}
	return lease(s.q.TryAcquireWeighted(ctx, s.limit, n))
}

func (s *Semaphore) checkN(n int64) error {
	if n < 1 || n > s.limit {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "cannot acquire %d permits of a semaphore with limit %d", n, s.limit)
	}
	return nil
}

// lease keeps a nil *Lease from becoming a non-nil distsync.Lease.
func lease(l *etcdq.Lease, err error) (distsync.Lease, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Session returns the session the semaphore's keys are bound to.
func (s *Semaphore) Session() *concurrency.Session { return s.q.Session() }

// Close ends the session if NewWithClient created it, then waits for
// background removals to end (see mutex.Mutex.Close).
func (s *Semaphore) Close() error { return s.q.Close() }

// LimitKey returns the etcd key that stores the limit of the semaphore
// called name.
func LimitKey(name string) string { return etcdq.LimitKey(name) }

// SetLimit stores a new limit for the semaphore called name, whatever was
// stored before (see the package documentation for what follows). It
// fails with distsync.ErrInvalidName, distsync.ErrInvalidConfig for a limit
// below 1 or a nil client, or distsync.ErrUnavailable.
func SetLimit(ctx context.Context, c *clientv3.Client, name string, limit int64) error {
	if err := distsync.ValidateName(name); err != nil {
		return err
	}
	if err := checkLimit(limit); err != nil {
		return err
	}
	if c == nil {
		return errNilClient
	}
	return etcdq.SetLimit(ctx, c, name, limit)
}

var errNilClient = distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil etcd client")

// DeleteLimit removes the stored limit of the semaphore called name; the
// next client to use it stores its own. It fails with
// distsync.ErrInvalidName, distsync.ErrInvalidConfig for a nil client, or
// distsync.ErrUnavailable.
func DeleteLimit(ctx context.Context, c *clientv3.Client, name string) error {
	if err := distsync.ValidateName(name); err != nil {
		return err
	}
	if c == nil {
		return errNilClient
	}
	if _, err := c.Delete(ctx, LimitKey(name)); err != nil {
		return distsync.Errorf(distsync.ErrUnavailable, err, "delete limit")
	}
	return nil
}

// SetLimit is not implemented yet (TODO(issue 13)).
func (s *Semaphore) SetLimit(ctx context.Context, limit int64) error {
	return distsync.Errorf(distsync.ErrInvalidConfig, nil, "SetLimit not implemented")
}

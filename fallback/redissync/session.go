package redissync

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/redisq"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"
)

// DefaultTTL is the TTL of a Session when WithTTL is not given.
const DefaultTTL = 10 * time.Second

// A Session is one process's identity on Redis, and opens the Mutex,
// RWMutex, Semaphore and Election primitives on it. Every holder and
// waiter it creates carries its random id, and all its waiters and
// observers share one pub/sub connection. Any number of primitives and
// acquisitions may share a Session; each acquisition is separate, so two
// Locks through one Session exclude each other. It is safe for concurrent
// use.
//
// Each lease is renewed on its own. When a renewal fails or comes too
// late, that lease ends with distsync.ErrLost; the Session and its
// primitives go on, and the next acquisition works. A waiting acquisition
// whose entry expired (its re-checks did not get through in time) or was
// removed fails with distsync.ErrLost; the next call enqueues anew.
// Inspect and ForceRelease work on any name under the Session's prefix,
// whoever holds it.
//
// Close ends every lease of the Session (their Err wraps
// distsync.ErrLost, and their Redis state is deleted), makes waiting and
// later calls fail with distsync.ErrClosed, and closes the pub/sub
// connection. It closes the client only if Dial created it. It returns
// within about a second even when Redis does not answer; what it could
// not delete then expires within the TTL.
type Session struct {
	s       *redisq.Session
	own     redis.UniversalClient // created by Dial, closed by Close
	ownOnce sync.Once
}

var _ distsync.Session = (*Session)(nil)

func init() {
	redisq.Register(
		func(s distsync.Session) *redisq.Session {
			if rs, ok := s.(*Session); ok && rs != nil {
				return rs.s
			}
			return nil
		},
		func(l distsync.Lease) *redisq.Lease {
			switch v := l.(type) {
			case *Lease:
				return v.l
			case *Leadership:
				return v.l
			}
			return nil
		})
}

// An Option configures NewSession and Dial.
type Option func(*options)

type options struct {
	ttl            time.Duration
	replicas       int
	replicaTimeout time.Duration
	prefix         string
	identity       string
	logger         *slog.Logger
	meter          metric.MeterProvider
	names          bool
}

func apply(opts []Option) redisq.Options {
	o := options{ttl: DefaultTTL, prefix: DefaultPrefix, identity: distsync.DefaultIdentity()}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return redisq.Options{TTL: o.ttl, Replicas: o.replicas, ReplicaTimeout: o.replicaTimeout,
		Prefix: o.prefix, Identity: o.identity,
		Telemetry: telemetry.New(telemetry.Config{Logger: o.logger, Meter: o.meter, Names: o.names, Backend: "redis", Identity: o.identity})}
}

// DefaultPrefix starts every key and channel when WithPrefix is not given.
const DefaultPrefix = "distsync:"

// WithPrefix makes p, instead of DefaultPrefix, the start of every key
// and pub/sub channel the Session uses. Sessions with different prefixes
// share a server without seeing each other, and an ACL can confine a
// user to one prefix (see "Permissions" in the package documentation).
// p must not be empty, nor longer than 256 bytes. It must not hold '{'
// or '}' (they would move the Cluster hash tag), the glob characters '*',
// '?', '[', ']' and '\' (so that the ACL pattern p+"*" means p
// literally), spaces or control characters. Otherwise NewSession fails
// with distsync.ErrInvalidConfig.
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithIdentity sets the identity recorded with every holder and waiter of
// the Session, so that an operator can tell who holds a name (see
// "Holder identity" in the package documentation). The default is
// distsync.DefaultIdentity(), "host:pid". An identity that
// distsync.ValidateIdentity rejects makes NewSession fail with
// distsync.ErrInvalidConfig.
func WithIdentity(id string) Option { return func(o *options) { o.identity = id } }

// WithLogger sets the logger the Session writes to (default none: it logs
// nothing). Debug records acquisitions, releases and retries; Warn records
// late or failed renewals, losses, background cleanups that retry,
// permanent errors and ForceRelease. Records carry the name, backend,
// primitive, token and identity as attributes. A level the logger does not
// enable costs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMeterProvider sets the OpenTelemetry MeterProvider the Session's
// instruments come from (default otel.GetMeterProvider(), a no-op unless
// the application set one). The instruments are listed in the README,
// under "Metrics".
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithNameAttribute adds the name of the primitive to every metric, as
// the distsync.name attribute. It is off by default: each name becomes a
// time series of its own, which only suits a bounded set of names.
func WithNameAttribute() Option { return func(o *options) { o.names = true } }

// WithTTL sets how long a holder's (or waiter's) state outlives its last
// renewal on the server: a crashed holder's lock passes on after about
// this long. It must be whole milliseconds (Redis' PX) and at least
// 100 ms; the default is DefaultTTL. Redis keeps exactly what is given,
// so there is nothing to negotiate.
//
// Renewal runs every TTL/3, and a lease is reported lost when no renewal
// was confirmed within TTL-TTL/5 of being sent. That margin of TTL/5 must
// absorb the server clock's millisecond steps, a late timer and a
// scheduling delay of this process. Below 100 ms it is under 20 ms, which
// a busy machine exceeds: a holder could learn of its loss after the lock
// passed on.
func WithTTL(ttl time.Duration) Option { return func(o *options) { o.ttl = ttl } }

// WithReplicas makes every acquisition and renewal wait (Redis WAIT) until
// n replicas have acknowledged it, at most timeout (whole milliseconds,
// positive, below TTL/2). An acquisition fewer replicas acknowledged fails
// with an error wrapping distsync.ErrUnavailable and releases what it
// took. A renewal fewer replicas acknowledged counts as a failed renewal:
// it is retried, and the lease is lost if none is acknowledged before its
// deadline. n = 0 (the default) waits for nothing. On a Cluster, WAIT goes
// to the name's master.
//
// This is not consensus. WAIT makes a lost acknowledged write less likely,
// not impossible: a failover can still promote a replica that had not
// received it, and a replica's copy expires by its own clock. Rely on the
// fencing token.
func WithReplicas(n int, timeout time.Duration) Option {
	return func(o *options) { o.replicas, o.replicaTimeout = n, timeout }
}

// NewSession opens a Session on c, the caller's client: a single server, a
// Sentinel failover client or a Cluster client. It loads the scripts and
// subscribes the Session's pub/sub connection, bounded by ctx. On failure
// it leaves nothing behind. Its error wraps distsync.ErrInvalidConfig (a
// nil client, an option out of range), distsync.ErrDenied (Redis refused
// the user, or cannot run scripts) or distsync.ErrUnavailable (Redis did
// not answer before ctx ended). Close does not close c.
//
// Calls return when their context ends, whatever c's options (see
// "Contexts and unresponsive servers" in the package documentation). A
// request abandoned that way ends at c's ReadTimeout, so keep one (the
// default is 3 s).
func NewSession(ctx context.Context, c redis.UniversalClient, opts ...Option) (*Session, error) {
	if c == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil redis client")
	}
	s, err := redisq.NewSession(ctx, c, apply(opts))
	if err != nil {
		return nil, err
	}
	return &Session{s: s}, nil
}

// Dial creates a client from o (redis.NewUniversalClient: one address for
// a single server, a MasterName for Sentinel, several addresses for a
// Cluster) and opens a Session on it, as NewSession does. The Session
// owns the client: Close closes it. The client gives up at a context's
// deadline (ContextTimeoutEnabled is set, see "Contexts and unresponsive
// servers" in the package doc); Dial does not change *o.
func Dial(ctx context.Context, o *redis.UniversalOptions, opts ...Option) (*Session, error) {
	if o == nil {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil redis options")
	}
	ro := apply(opts)
	if err := ro.Validate(); err != nil {
		return nil, err
	}
	cp := *o
	cp.ContextTimeoutEnabled = true
	c := redis.NewUniversalClient(&cp)
	s, err := redisq.NewSession(ctx, c, ro)
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Session{s: s, own: c}, nil
}

// Close ends the Session: see Session. It is idempotent.
func (s *Session) Close() error {
	err := s.s.Close()
	if s.own != nil {
		s.ownOnce.Do(func() { _ = s.own.Close() })
	}
	return err
}

// open returns the queue of name for a new primitive of s of kind prim.
func (s *Session) open(name string, limit int64, prim telemetry.Primitive) (*redisq.Queue, error) {
	if err := distsync.ValidateName(name); err != nil {
		return nil, err
	}
	if s.s.Closed() {
		return nil, distsync.Errorf(distsync.ErrClosed, nil, "session closed")
	}
	return redisq.NewQueue(s.s, name, limit, prim)
}

// Mutex returns the Mutex called name, a *Mutex. It does no I/O. It fails
// with distsync.ErrInvalidName for a name that breaks distsync's name
// rules, and with distsync.ErrClosed after Close.
func (s *Session) Mutex(name string) (distsync.Mutex, error) {
	q, err := s.open(name, 0, telemetry.Mutex)
	if err != nil {
		return nil, err
	}
	return &Mutex{q: q}, nil
}

// RWMutex returns the RWMutex called name, a *RWMutex. It does no I/O and
// fails as Mutex does.
func (s *Session) RWMutex(name string) (distsync.RWMutex, error) {
	q, err := s.open(name, 0, telemetry.RWMutex)
	if err != nil {
		return nil, err
	}
	return &RWMutex{q: q}, nil
}

// Semaphore returns the Semaphore called name with limit permits, a
// *Semaphore. It compares limit with the stored one, bounded by ctx. It
// fails with distsync.ErrLimitMismatch when the semaphore is in use with
// another limit, distsync.ErrInvalidConfig for a limit below 1,
// distsync.ErrDenied or distsync.ErrUnavailable, and as Mutex does.
func (s *Session) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	if limit < 1 {
		return nil, distsync.Errorf(distsync.ErrInvalidConfig, nil, "semaphore limit %d below 1", limit)
	}
	q, err := s.open(name, limit, telemetry.Semaphore)
	if err != nil {
		return nil, err
	}
	if err := q.CheckLimit(ctx); err != nil {
		return nil, err
	}
	return &Semaphore{q: q}, nil
}

// Election returns the Election called name, an *Election. It does no I/O
// and fails as Mutex does.
func (s *Session) Election(name string) (distsync.Election, error) {
	q, err := s.open(name, 0, telemetry.Election)
	if err != nil {
		return nil, err
	}
	return &Election{q: q}, nil
}

package redissync

import (
	"context"
	"time"

	"github.com/distsync/distsync/internal/redisq"
)

// DefaultTTL is the TTL of a session when WithTTL is not given.
const DefaultTTL = redisq.DefaultTTL

// MinTTL is the shortest TTL a session accepts.
const MinTTL = redisq.MinTTL

// Client is what the primitives need of a go-redis client: Lua scripts and
// a pub/sub connection. A redis.UniversalClient (*redis.Client, a
// Sentinel failover client or *redis.ClusterClient) satisfies it. Calls
// return when their context ends whatever the client's options (see
// "Contexts and unresponsive servers" in the package documentation); a
// request abandoned that way ends at the client's ReadTimeout, so keep
// one (the default is 3 s).
type Client = redisq.Client

// Session is one process's identity on Redis: every holder and waiter it
// creates carries its random id, and all its waiters and observers share
// one pub/sub connection. Any number of primitives and acquisitions may
// share a session; each acquisition is separate, so two Locks through one
// session exclude each other. It is safe for concurrent use.
//
// Close ends every lease of the session (their Err wraps distsync.ErrLost
// and distsync.ErrClosed, and their Redis state is deleted), makes waiting
// calls fail with distsync.ErrClosed, and closes the pub/sub connection,
// not the client. It returns within about a second even when Redis does
// not answer; what it could not delete then expires within the TTL.
type Session = redisq.Session

// Lease is a held lock, read lock, permit or leadership. Lock, RLock,
// Acquire and Campaign return a *Lease (inside a distsync.Lease or a
// distsync.Leadership). Its Token is a per-name counter bumped by the
// script that granted it.
type Lease = redisq.Lease

// An Option configures NewSession.
type Option func(*redisq.Options)

// WithTTL sets how long a holder's (or waiter's) state outlives its last
// renewal on the server: a crashed holder's lock passes on after about
// this long. Whole milliseconds, at least MinTTL; default DefaultTTL.
// Renewal runs every TTL/3, and a lease is reported lost when no renewal
// was confirmed within TTL-TTL/5 of being sent.
func WithTTL(ttl time.Duration) Option { return func(o *redisq.Options) { o.TTL = ttl } }

// WithReplicas makes every acquisition and renewal wait (Redis WAIT) until
// n replicas have acknowledged it, at most timeout (whole milliseconds,
// positive, below TTL/2). An acquisition fewer replicas acknowledged fails
// with an error wrapping distsync.ErrUnavailable and releases what it
// took; a renewal fewer replicas acknowledged counts as a failed renewal:
// it is retried, and the lease is lost if none is acknowledged before its
// deadline. n = 0 (the default) waits for nothing. It needs a client with
// Pipeline (every go-redis client has it), so that WAIT follows the write
// on the same connection; on a Cluster it goes to the name's master.
//
// This is not consensus. WAIT makes a lost acknowledged write less likely,
// not impossible: a failover can still promote a replica that had not
// received it (WAIT does not make Redis strongly consistent), and a
// replica's copy expires by its own clock. Rely on the fencing token.
func WithReplicas(n int, timeout time.Duration) Option {
	return func(o *redisq.Options) { o.Replicas, o.ReplicaTimeout = n, timeout }
}

func apply(opts []Option) redisq.Options {
	o := redisq.Options{TTL: DefaultTTL}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// NewSession opens a session on c: it subscribes its pub/sub connection
// under ctx. It fails with an error wrapping distsync.ErrInvalidConfig (a
// nil client, a TTL below MinTTL or not whole milliseconds, a WithReplicas
// out of range) or
// distsync.ErrUnavailable (Redis did not answer), leaving nothing behind.
// The caller must Close the session.
func NewSession(ctx context.Context, c Client, opts ...Option) (*Session, error) {
	return redisq.NewSession(ctx, c, apply(opts))
}

// primitive is what every primitive shares: its queue, and whether it
// owns its session.
type primitive struct {
	q   *redisq.Queue
	own bool
}

func open(ctx context.Context, c Client, opts []Option, mk func(*Session) (*redisq.Queue, error)) (primitive, error) {
	o := apply(opts)
	if err := o.Validate(); err != nil {
		return primitive{}, err
	}
	s, err := redisq.NewSession(ctx, c, o)
	if err != nil {
		return primitive{}, err
	}
	q, err := mk(s)
	if err != nil {
		s.Close()
		return primitive{}, err
	}
	return primitive{q: q, own: true}, nil
}

// Name returns the primitive's name.
func (p primitive) Name() string { return p.q.Name() }

// Session returns the session the primitive's leases belong to.
func (p primitive) Session() *Session { return p.q.Session() }

// Close closes the session if the primitive's constructor created it,
// ending its leases (see Session); with a caller's session it does
// nothing. It is idempotent.
func (p primitive) Close() error {
	if p.own {
		return p.q.Session().Close()
	}
	return nil
}

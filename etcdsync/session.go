package etcdsync

import (
	"context"
	"log/slog"
	"time"

	"github.com/distsync/distsync"
	_ "github.com/distsync/distsync/election" // registers the constructor Election opens
	"github.com/distsync/distsync/internal/etcdq"
	_ "github.com/distsync/distsync/mutex"     // registers the constructor Mutex opens
	_ "github.com/distsync/distsync/rwmutex"   // registers the constructor RWMutex opens
	_ "github.com/distsync/distsync/semaphore" // registers the constructor Semaphore opens
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.opentelemetry.io/otel/metric"
)

func init() {
	etcdq.RegisterSessionOf(func(s distsync.Session) *etcdq.Session {
		if s, ok := s.(*Session); ok {
			return s.src
		}
		return nil
	})
}

// Session is a process's identity on etcd: a lease, kept alive, that the
// keys of its acquisitions are bound to. It opens the four primitives;
// their dynamic types are *mutex.Mutex, *rwmutex.RWMutex,
// *semaphore.Semaphore and *election.Election.
//
// A Session lives until Close. When its lease ends (expired, revoked, or
// its renewal not confirmed in time), the leases taken under it end with
// distsync.ErrLost, and acquisitions waiting under it fail with
// distsync.ErrLost. The next call grants a new lease, bounded by that
// call's context: the Session and every primitive opened from it go on.
// Nothing runs in the background between uses but the renewal of the
// current lease.
//
// A Session is safe for concurrent use by multiple goroutines.
type Session struct {
	src   *etcdq.Session
	owned *clientv3.Client // Dial's client, closed by Close
}

var _ distsync.Session = (*Session)(nil)

// defaultTTL is the lease TTL when WithTTL is not given.
const defaultTTL = 10 * time.Second

type options struct {
	ttl      time.Duration
	prefix   string
	identity string
	logger   *slog.Logger
	meter    metric.MeterProvider
	names    bool
}

// config returns the engine's configuration of o, with its telemetry
// recorder.
func (o options) config() etcdq.Config {
	return etcdq.Config{Prefix: o.prefix, Identity: o.identity, Recorder: o.recorder()}
}

// An Option configures NewSession and Dial.
type Option func(*options)

// WithTTL sets the TTL of the Session's leases (default 10 s). A crashed
// holder's lock passes on after about this long. etcd counts leases in
// whole seconds: ttl must be a whole number of seconds, at least one, or
// the constructor fails with distsync.ErrInvalidConfig. The server must grant it as
// asked: a default etcd grants no less than 2 s.
func WithTTL(ttl time.Duration) Option { return func(o *options) { o.ttl = ttl } }

// WithPrefix sets the root prefix of every key of the Session (default
// none): the keys of name N become p + N + "/…", so a role on the prefix
// p covers every name. Two Sessions with different prefixes, neither a
// prefix of the other, never see each other's keys. The primitives of a
// Session only see names under its prefix; etcd's namespace.NewKV (and
// namespace.NewWatcher, namespace.NewLease) on the client does the same
// for a whole client. A prefix usually ends in '/', as in "app1/".
func WithPrefix(p string) Option { return func(o *options) { o.prefix = p } }

// WithIdentity sets the holder identity recorded in the value of every
// key the Session's Mutexes, RWMutexes and Semaphores write (default
// distsync.DefaultIdentity(), "host:pid"). A mutex or rwmutex key's value
// is the identity; a semaphore key's value is its weight, a space and the
// identity ("2 host:4711"). A candidate key's value stays the campaign
// value. An identity that breaks distsync.ValidateIdentity makes the
// constructor fail with distsync.ErrInvalidConfig.
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

func apply(opts []Option) options {
	o := options{ttl: defaultTTL, identity: distsync.DefaultIdentity()}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// check validates o beyond its TTL.
func (o options) check() error {
	return distsync.ValidateIdentity(o.identity)
}

// NewSession returns a Session on c, the caller's client, which stays the
// caller's: Close does not close it. It grants the first lease under ctx,
// which bounds it (an unreachable etcd makes it fail when ctx ends). It
// fails with distsync.ErrInvalidConfig for a nil client, a bad TTL or an
// identity that breaks distsync.ValidateIdentity. So
// it does when the server grants another TTL than asked (the error names
// both). Other errors wrap distsync.ErrDenied, distsync.ErrClosed (a
// closed client) or distsync.ErrUnavailable, joined with ctx.Err() when
// ctx ended. Nothing is left behind then.
func NewSession(ctx context.Context, c *clientv3.Client, opts ...Option) (*Session, error) {
	o := apply(opts)
	if err := o.check(); err != nil {
		return nil, err
	}
	src, err := etcdq.NewSession(ctx, c, o.ttl, o.config())
	if err != nil {
		return nil, err
	}
	return &Session{src: src}, nil
}

// Dial creates a client from cfg and returns a Session on it, which owns
// the client: Close closes it. Creating the client is bounded by
// cfg.DialTimeout; granting the first lease by ctx. It fails as
// NewSession does (distsync.ErrUnavailable when the client cannot be
// created, distsync.ErrDenied when its credentials are refused), and
// closes the client then.
func Dial(ctx context.Context, cfg clientv3.Config, opts ...Option) (*Session, error) {
	o := apply(opts)
	if err := etcdq.CheckTTL(o.ttl); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		if etcdq.Denied(err) {
			return nil, distsync.Errorf(distsync.ErrDenied, err, "etcd client")
		}
		return nil, distsync.Errorf(distsync.ErrUnavailable, err, "etcd client")
	}
	src, err := etcdq.NewSession(ctx, c, o.ttl, o.config())
	if err != nil {
		_ = c.Close()
		return nil, err
	}
	return &Session{src: src, owned: c}, nil
}

// Client returns the Session's etcd client, for reads and writes of your
// own (a Txn conditional on Lease.IsOwner, for instance).
func (s *Session) Client() *clientv3.Client { return s.src.Client() }

// Mutex returns the *mutex.Mutex called name. It does no I/O; it fails
// with distsync.ErrInvalidName for a name that breaks
// distsync.ValidateName, or distsync.ErrClosed after Close.
func (s *Session) Mutex(name string) (distsync.Mutex, error) { return s.src.Mutex(name) }

// RWMutex returns the *rwmutex.RWMutex called name, as Mutex does.
func (s *Session) RWMutex(name string) (distsync.RWMutex, error) { return s.src.RWMutex(name) }

// Semaphore returns the *semaphore.Semaphore called name with the given
// limit. It reads the stored limit under ctx and fails with
// distsync.ErrLimitMismatch when the semaphore is in use with another one.
// It stores nothing: the first acquisition of an idle semaphore stores the
// limit. It also fails with distsync.ErrInvalidConfig (a limit below 1),
// distsync.ErrInvalidName, distsync.ErrClosed, distsync.ErrDenied or
// distsync.ErrUnavailable.
func (s *Session) Semaphore(ctx context.Context, name string, limit int64) (distsync.Semaphore, error) {
	return s.src.Semaphore(ctx, name, limit)
}

// Election returns the *election.Election called name, as Mutex does.
func (s *Session) Election(name string) (distsync.Election, error) { return s.src.Election(name) }

// Close ends the Session. It revokes the current lease, waiting at most
// one second for etcd (the lease then expires after its TTL), which ends
// every lease taken under it and hands the locks to their next waiters.
// Waiting acquisitions fail, and later calls through the Session and its
// primitives fail, with distsync.ErrClosed; observers' channels close. It
// deletes the stored limits of the semaphores its Close left idle. It
// returns once every goroutine of the Session has ended, and closes the
// client if Dial made it. An error wraps distsync.ErrUnavailable: the
// revocation was not confirmed. Close is idempotent: later calls return
// the first one's result.
func (s *Session) Close() error {
	err := s.src.Close()
	if s.owned != nil {
		_ = s.owned.Close()
	}
	return err
}

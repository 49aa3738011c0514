package zksync

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/distsync/distsync"
	"github.com/distsync/distsync/internal/telemetry"
	"github.com/go-zookeeper/zk"
	"go.opentelemetry.io/otel/metric"
)

// DefaultTTL is the session timeout Dial asks for when WithTTL is not given.
const DefaultTTL = 10 * time.Second

// DefaultPrefix is the node under which names live when WithPrefix is not
// given.
const DefaultPrefix = "/distsync"

// An Option configures Dial or NewSession. Options marked "Dial only" make
// NewSession fail with distsync.ErrInvalidConfig: the caller configured its
// connection already.
type Option func(*options)

type options struct {
	ttl    time.Duration // 0 with NewSession: the connection's own
	grace  time.Duration
	root   string
	id     string // the holder identity: the data of acquisition nodes
	acl    []zk.ACL
	auth   []credential
	logger *slog.Logger
	meter  metric.MeterProvider
	names  bool
	dialer zk.Dialer
	rec    *telemetry.Recorder

	dialOnly []string // the Dial-only options given
}

// A credential is one WithAuth.
type credential struct {
	scheme string
	auth   []byte
}

// WithTTL sets the ZooKeeper session timeout (default DefaultTTL with Dial):
// a holder that crashes keeps its leases for about this long. Dial asks the
// server for it and fails with distsync.ErrInvalidConfig, naming both values,
// when the server grants another (servers clamp it between their
// minSessionTimeout and maxSessionTimeout). NewSession checks it against the
// timeout the connection negotiated. It must be a whole number of
// milliseconds, ZooKeeper's unit.
func WithTTL(d time.Duration) Option { return func(o *options) { o.ttl = d } }

// WithDisconnectGrace keeps leases through a disconnection of up to d, if the
// client reconnects within d to the same session; a longer disconnection ends
// them as lost. The default, 0, ends leases as soon as the connection drops.
// d may be at most a third of the session timeout. go-zookeeper notices a
// silent server only after two thirds of it, and the server may expire the
// session a third of it later.
func WithDisconnectGrace(d time.Duration) Option { return func(o *options) { o.grace = d } }

// WithPrefix sets the root path under which each name gets its node
// (default DefaultPrefix). It must be an absolute ZooKeeper path other than
// "/". Sessions with different prefixes never see each other's nodes. The
// prefix's nodes are created on first use with the Session's ACL, unless
// they exist (see WithACL).
func WithPrefix(path string) Option { return func(o *options) { o.root = path } }

// WithIdentity sets the holder identity the Session records (default
// distsync.DefaultIdentity(), "host:pid"). It is the data of every node a
// Mutex, RWMutex or Semaphore acquisition creates, so that zkCli's get
// shows who holds or waits. An Election node's data stays the candidate's
// value. It must pass distsync.ValidateIdentity, else Dial and NewSession
// fail with distsync.ErrInvalidConfig.
func WithIdentity(id string) Option { return func(o *options) { o.id = id } }

// WithACL sets the ACL of the nodes the Session creates (default
// zk.WorldACL(zk.PermAll)). With a digest ACL, give the Session the matching
// credentials (WithAuth, or AddAuth on the connection given to NewSession).
func WithACL(acl []zk.ACL) Option { return func(o *options) { o.acl = acl } }

// WithAuth adds credentials to the connection, as zk.Conn.AddAuth does, before
// Dial returns (Dial only; may be given more than once). go-zookeeper sends
// them again on every reconnection, also after a session expiry. A server
// that refuses them makes Dial fail with distsync.ErrDenied.
func WithAuth(scheme string, auth []byte) Option {
	return func(o *options) {
		o.auth = append(o.auth, credential{scheme, append([]byte(nil), auth...)})
		o.dialOnly = append(o.dialOnly, "WithAuth")
	}
}

// WithLogger sets the logger the Session writes to (default none: it logs
// nothing). With Dial, go-zookeeper's own messages go to it at Debug.
// Debug records acquisitions, releases, waits and retries after a
// connection loss. Warn records losses, disconnections that end leases,
// background cleanups that retry, permanent errors and ForceRelease.
// Records carry the name, backend, primitive, token and identity as
// attributes. A level the logger does not enable costs nothing.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMeterProvider sets the OpenTelemetry MeterProvider the Session's
// instruments come from (default otel.GetMeterProvider(), a no-op unless
// the application set one). The instruments are listed in the README,
// under "Metrics". The renewal instruments record nothing on ZooKeeper:
// go-zookeeper keeps the session alive itself, out of distsync's sight.
func WithMeterProvider(mp metric.MeterProvider) Option { return func(o *options) { o.meter = mp } }

// WithNameAttribute adds the name of the primitive to every metric, as
// the distsync.name attribute. It is off by default: each name becomes a
// time series of its own, which only suits a bounded set of names.
func WithNameAttribute() Option { return func(o *options) { o.names = true } }

// WithDialer sets how go-zookeeper dials a server (Dial only; default
// net.DialTimeout), for a proxy or a tunnel.
func WithDialer(d zk.Dialer) Option {
	return func(o *options) {
		o.dialer = d
		o.dialOnly = append(o.dialOnly, "WithDialer")
	}
}

// zkLogger passes go-zookeeper's messages to the Session's logger at
// Debug; without a logger they are dropped (go-zookeeper's own default
// logs every connection attempt).
type zkLogger struct{ l *slog.Logger }

func (z zkLogger) Printf(format string, args ...any) {
	if z.l != nil && z.l.Enabled(context.Background(), slog.LevelDebug) {
		z.l.Debug(fmt.Sprintf(format, args...), slog.String("backend", "zookeeper"), slog.String("source", "go-zookeeper"))
	}
}

// newOptions applies opts over the defaults of Dial (dial) or NewSession.
func newOptions(dial bool, opts []Option) (options, error) {
	o := options{root: DefaultPrefix, id: distsync.DefaultIdentity(), acl: zk.WorldACL(zk.PermAll), dialer: net.DialTimeout}
	if dial {
		o.ttl = DefaultTTL
	}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case !dial && len(o.dialOnly) > 0:
		return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "%s applies to Dial only; configure the connection given to NewSession instead", o.dialOnly[0])
	case dial && o.ttl == 0, o.ttl < 0, o.ttl%time.Millisecond != 0, o.ttl > time.Duration(1<<31-1)*time.Millisecond:
		return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "TTL %v, want a positive whole number of milliseconds", o.ttl)
	case o.grace < 0 || o.ttl > 0 && o.grace > o.ttl/3:
		return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "disconnect grace %v, want 0 to a third of the session timeout %v", o.grace, o.ttl)
	case o.dialer == nil:
		return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "nil dialer")
	case len(o.acl) == 0:
		return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "empty ACL")
	}
	for _, c := range o.auth {
		if c.scheme == "" {
			return o, distsync.Errorf(distsync.ErrInvalidConfig, nil, "WithAuth with an empty scheme")
		}
	}
	if err := distsync.ValidateIdentity(o.id); err != nil {
		return o, err
	}
	o.rec = telemetry.New(telemetry.Config{Logger: o.logger, Meter: o.meter, Names: o.names, Backend: "zookeeper", Identity: o.id})
	return o, validRoot(o.root)
}

func validRoot(root string) error {
	if root == "" || root[0] != '/' || root == "/" || strings.HasSuffix(root, "/") || strings.Contains(root, "//") {
		return distsync.Errorf(distsync.ErrInvalidConfig, nil, "prefix %q, want an absolute path like %q", root, DefaultPrefix)
	}
	for _, seg := range strings.Split(root[1:], "/") {
		if seg == "." || seg == ".." || encodeName(seg) != seg {
			return distsync.Errorf(distsync.ErrInvalidConfig, nil, "prefix %q has a segment ZooKeeper cannot store: %q", root, seg)
		}
	}
	return nil
}

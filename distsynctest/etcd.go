package distsynctest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distsync/distsync/etcdsync"
	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

const (
	// etcdStartTimeout bounds a member's start, and a cluster's agreeing
	// on a leader: a few election timeouts, plus margin for -race on a
	// loaded two-core machine.
	etcdStartTimeout = 30 * time.Second
	// dialTimeout is the DialTimeout of every client the kit makes.
	dialTimeout = 5 * time.Second
)

// EtcdServer is an etcd cluster of one or more members embedded in the
// test process, on free loopback ports, with its data in a temporary
// directory. Members tick every 10 ms with a 100 ms election timeout, so
// etcd grants leases of one second (etcdsync.WithTTL(time.Second)), and a
// lost leader is replaced within a few hundred milliseconds. Writes skip
// fsync.
//
// Clients reach each member through a [Proxy] of its own, so a test can cut
// a member's clients off ([EtcdServer.Blackhole]) while the member stays in
// the cluster. Members are numbered from 0 to Size()-1 and can be stopped,
// restarted and isolated from each other.
//
// The client methods are safe for concurrent use. The fault methods (Stop,
// Restart, Isolate, Heal, Blackhole, Unblackhole) are too, but a test
// usually calls them from its own goroutine, one at a time.
type EtcdServer struct {
	tick time.Duration
	lg   *zap.Logger

	mu      sync.Mutex
	members []*etcdMember
	closed  bool
}

// etcdMember is one member: its fixed addresses, its data directory, its
// clients' proxy, and what the test did to it.
type etcdMember struct {
	name       string
	dir        string
	peer       url.URL // listened on
	peerFront  url.URL // advertised: peerProxy's
	client     url.URL
	proxy      *Proxy      // clients'
	peerProxy  *Proxy      // other members' (nil for a single member)
	srv        *embed.Etcd // nil while stopped
	id         types.ID    // known once it first started
	isolated   bool
	blackholed bool
}

// An EtcdOption configures [StartEtcd], [Etcd] and their cluster variants.
type EtcdOption func(*EtcdServer)

// WithTick sets the members' heartbeat interval (default 10 ms); the
// election timeout is ten of them. etcd's smallest lease TTL follows: one
// and a half election timeouts, rounded up to whole seconds. So 100 ms,
// etcd's own default, makes it 2 s, as on a production cluster.
func WithTick(d time.Duration) EtcdOption { return func(e *EtcdServer) { e.tick = d } }

// WithEtcdLogger sends the members' logs to lg (default: none, or stderr
// at the level DISTSYNC_TEST_LOG names; [Etcd] logs errors to the test).
func WithEtcdLogger(lg *zap.Logger) EtcdOption { return func(e *EtcdServer) { e.lg = lg } }

// StartEtcd starts a one-member etcd cluster and returns once it serves.
// It needs no *testing.T, for TestMain and for programs. The caller must
// call [EtcdServer.Close].
func StartEtcd(opts ...EtcdOption) (*EtcdServer, error) { return StartEtcdCluster(1, opts...) }

// StartEtcdCluster starts an etcd cluster of size members and returns once
// they agree on a leader. The caller must call [EtcdServer.Close].
func StartEtcdCluster(size int, opts ...EtcdOption) (*EtcdServer, error) {
	if size < 1 {
		return nil, fmt.Errorf("distsynctest: etcd cluster of %d members, want at least 1", size)
	}
	e := &EtcdServer{tick: 10 * time.Millisecond, lg: envLogger()}
	for _, o := range opts {
		o(e)
	}
	if err := e.start(size); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// Etcd starts a one-member etcd cluster for t, closed when t's test ends
// (after the clients and Sessions made with t). It fails t when the member
// cannot start.
func Etcd(t testing.TB, opts ...EtcdOption) *EtcdServer { return EtcdCluster(t, 1, opts...) }

// EtcdCluster starts an etcd cluster of size members for t, as [Etcd].
func EtcdCluster(t testing.TB, size int, opts ...EtcdOption) *EtcdServer {
	t.Helper()
	opts = append([]EtcdOption{WithEtcdLogger(testLogger(t))}, opts...)
	e, err := StartEtcdCluster(size, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// start makes size members with fixed ports and starts them together.
func (e *EtcdServer) start(size int) error {
	var initial []string
	for i := range size {
		m := &etcdMember{name: "m" + strconv.Itoa(i)}
		e.members = append(e.members, m)
		dir, err := os.MkdirTemp("", "distsync-etcd-")
		if err != nil {
			return fmt.Errorf("distsynctest: etcd data dir: %w", err)
		}
		m.dir = dir
		// A single member never dials its own peer URL, so port 0 does;
		// members of a cluster must know each other's ports beforehand.
		// Members reach each other through proxies too: closing them at
		// Close ends the idle peer connections that etcd's transports
		// would otherwise keep open (and their goroutines with them).
		peer, client := "127.0.0.1:0", "127.0.0.1:0"
		if size > 1 {
			if peer, err = freeAddr(); err != nil {
				return err
			}
			if m.peerProxy, err = StartProxy(peer); err != nil {
				return fmt.Errorf("distsynctest: etcd peer proxy: %w", err)
			}
		}
		if client, err = freeAddr(); err != nil {
			return err
		}
		m.peer = url.URL{Scheme: "http", Host: peer}
		m.peerFront = m.peer
		if m.peerProxy != nil {
			m.peerFront = url.URL{Scheme: "http", Host: m.peerProxy.Addr()}
		}
		m.client = url.URL{Scheme: "http", Host: client}
		if m.proxy, err = StartProxy(client); err != nil {
			return fmt.Errorf("distsynctest: etcd proxy: %w", err)
		}
		initial = append(initial, m.name+"="+m.peerFront.String())
	}
	// One after the other: a new member first asks the members it knows
	// whether it was bootstrapped already, and one whose server is not
	// serving yet keeps it waiting for a second; one that has not started
	// refuses at once. So each starts before the next, and only then do
	// they all wait for a leader together.
	for _, m := range e.members {
		if err := e.launch(m, strings.Join(initial, ","), false); err != nil {
			return err
		}
	}
	for _, m := range e.members {
		if err := e.ready(m); err != nil {
			return err
		}
	}
	if size > 1 {
		return e.waitLeader()
	}
	return nil
}

// launch starts member m's server (again, after a Stop, from its data)
// and, with ready, waits until it serves.
func (e *EtcdServer) launch(m *etcdMember, initial string, ready bool) error {
	cfg := embed.NewConfig()
	cfg.Name = m.name
	cfg.Dir = m.dir
	cfg.ListenPeerUrls = []url.URL{m.peer}
	cfg.AdvertisePeerUrls = []url.URL{m.peerFront}
	cfg.ListenClientUrls = []url.URL{m.client}
	cfg.AdvertiseClientUrls = []url.URL{m.client}
	cfg.InitialCluster = initial
	cfg.InitialClusterToken = "distsynctest"
	cfg.TickMs = uint(e.tick / time.Millisecond)
	cfg.ElectionMs = 10 * cfg.TickMs
	cfg.UnsafeNoFsync = true
	// The HTTP gateway would add a loopback gRPC client of the server's
	// own; nothing here speaks JSON to etcd.
	cfg.EnableGRPCGateway = false
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(e.lg.Named(m.name))
	srv, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("distsynctest: start etcd member %s: %w", m.name, err)
	}
	e.mu.Lock()
	m.srv, m.id = srv, srv.Server.MemberID()
	e.mu.Unlock()
	if !ready {
		return nil
	}
	return e.ready(m)
}

// ready waits until member m's server serves; when it fails to, it stops
// it.
func (e *EtcdServer) ready(m *etcdMember) error {
	e.mu.Lock()
	srv := m.srv
	e.mu.Unlock()
	var err error
	select {
	case <-srv.Server.ReadyNotify():
		return nil
	case err = <-srv.Err():
		err = fmt.Errorf("distsynctest: etcd member %s failed while starting: %w", m.name, err)
	case <-time.After(etcdStartTimeout):
		err = fmt.Errorf("distsynctest: etcd member %s not ready after %v", m.name, etcdStartTimeout)
	}
	e.stopServer(m)
	return err
}

// freeAddr returns a loopback address with a port that was free a moment
// ago. Another process could take it before the member binds it; the
// member then fails to start, loudly.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("distsynctest: pick a port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Size returns the number of members.
func (e *EtcdServer) Size() int { return len(e.members) }

// Endpoints returns every member's client endpoint, "127.0.0.1:PORT", in
// member order, for clientv3.Config.Endpoints. They stay the same across
// Stop and Restart.
func (e *EtcdServer) Endpoints() []string {
	eps := make([]string, len(e.members))
	for i := range e.members {
		eps[i] = e.Endpoint(i)
	}
	return eps
}

// Endpoint returns member i's client endpoint (see [EtcdServer.Endpoints]).
func (e *EtcdServer) Endpoint(i int) string { return e.members[i].proxy.Addr() }

// NewClient returns a new client of every member. The caller closes it.
func (e *EtcdServer) NewClient() (*clientv3.Client, error) { return newEtcdClient(e.Endpoints()) }

// Client returns a new client of every member, closed when t's test ends.
// It fails t when the client cannot be made.
func (e *EtcdServer) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return clientFor(t, e.Endpoints())
}

// MemberClient returns a new client that talks to member i only, closed
// when t's test ends: the client of "a process whose member was stopped,
// isolated or cut off".
func (e *EtcdServer) MemberClient(t testing.TB, i int) *clientv3.Client {
	t.Helper()
	return clientFor(t, []string{e.Endpoint(i)})
}

// Session returns an etcdsync Session with opts on a new client of every
// member, closed (Session, then client) when t's test ends. The members
// grant a one-second TTL: etcdsync.WithTTL(time.Second) makes an expiry
// test quick. It fails t when the Session cannot open within 20 s.
func (e *EtcdServer) Session(t testing.TB, opts ...etcdsync.Option) *etcdsync.Session {
	t.Helper()
	return etcdSessionOn(t, e.Endpoints(), opts...)
}

// MemberSession is Session on a client of member i only.
func (e *EtcdServer) MemberSession(t testing.TB, i int, opts ...etcdsync.Option) *etcdsync.Session {
	t.Helper()
	return etcdSessionOn(t, []string{e.Endpoint(i)}, opts...)
}

func etcdSessionOn(t testing.TB, endpoints []string, opts ...etcdsync.Option) *etcdsync.Session {
	t.Helper()
	c, err := newEtcdClient(endpoints)
	if err != nil {
		t.Fatalf("distsynctest: etcd client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	defer cancel()
	s, err := etcdsync.NewSession(ctx, c, opts...)
	if err != nil {
		c.Close()
		t.Fatalf("distsynctest: etcd session: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		_ = c.Close()
	})
	return s
}

func clientFor(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := newEtcdClient(endpoints)
	if err != nil {
		t.Fatalf("distsynctest: etcd client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// newEtcdClient returns a client of endpoints that redials quickly once a
// member is back (within 200 ms, rather than after gRPC's default backoff
// of a second and more), so that tests of faults are quick.
func newEtcdClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: dialTimeout,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
}

// Close stops every member, its proxy, and removes the data directories.
// It returns once the servers' goroutines have ended. Close clients first:
// a member waits up to about five seconds for their open streams. Close is
// idempotent.
func (e *EtcdServer) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	e.mu.Unlock()
	for _, m := range e.members {
		e.stopServer(m)
	}
	for _, m := range e.members {
		for _, p := range []*Proxy{m.proxy, m.peerProxy} {
			if p != nil {
				p.Close()
			}
		}
		if m.dir != "" {
			os.RemoveAll(m.dir)
		}
	}
}

// stopServer stops m's server, if it runs, and waits for its goroutines.
func (e *EtcdServer) stopServer(m *etcdMember) {
	e.mu.Lock()
	srv := m.srv
	m.srv = nil
	e.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	// Close has waited for the server's goroutines; draining Err confirms
	// it (Close closes the channel last).
	for range srv.Err() {
	}
}

// envLogger is the members' logger without a test: none, or stderr at the
// level DISTSYNC_TEST_LOG names.
func envLogger() *zap.Logger {
	v := os.Getenv("DISTSYNC_TEST_LOG")
	if v == "" {
		return zap.NewNop()
	}
	lvl, err := zapcore.ParseLevel(v)
	if err != nil {
		lvl = zapcore.DebugLevel
	}
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	lg, err := cfg.Build()
	if err != nil {
		return zap.NewNop()
	}
	return lg
}
